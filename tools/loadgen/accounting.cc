// SPDX-License-Identifier: Apache-2.0
//
// Loss accounting (see accounting.h): bitmaps per device and a log-linear histogram.
// Kept free of I/O so that the unit tests can feed it a controlled history.
#include "accounting.h"

#include <algorithm>
#include <bit>

#include "base/assert.h"

namespace sluice::loadgen {

bool seq_set::insert(uint64_t seq) {
    SLUICE_CHECK(seq < max_tracked_seq, "seq %llu beyond the tracked range", static_cast<unsigned long long>(seq));
    const size_t word = static_cast<size_t>(seq / 64);
    if (word >= bits_.size()) bits_.resize(std::max(word + 1, bits_.size() * 2), 0);
    const uint64_t mask = uint64_t{1} << (seq % 64);
    if ((bits_[word] & mask) != 0) return false;
    bits_[word] |= mask;
    ++size_;
    end_ = std::max(end_, seq + 1);
    return true;
}

bool seq_set::contains(uint64_t seq) const {
    const size_t word = static_cast<size_t>(seq / 64);
    if (word >= bits_.size()) return false;
    return (bits_[word] & (uint64_t{1} << (seq % 64))) != 0;
}

histogram& histogram::operator=(const histogram& other) {
    if (this != &other) {
        reset();
        merge(other);
    }
    return *this;
}

size_t histogram::bucket_of(uint64_t v) {
    if (v < 64) return static_cast<size_t>(v);
    const unsigned msb = static_cast<unsigned>(std::bit_width(v)) - 1;  // >= 6
    const unsigned shift = msb - 5;
    const uint64_t top = v >> shift;  // in [32, 64)
    return 64 + size_t{msb - 6} * 32 + static_cast<size_t>(top - 32);
}

uint64_t histogram::bucket_upper(size_t index) {
    if (index < 64) return index;
    const size_t k = (index - 64) / 32;
    const uint64_t top = 32 + (index - 64) % 32;
    const unsigned shift = static_cast<unsigned>(k) + 1;
    return ((top + 1) << shift) - 1;
}

void histogram::record(int64_t micros) {
    const uint64_t v = micros < 0 ? 0 : static_cast<uint64_t>(micros);
    buckets_[bucket_of(v)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
    const auto as_signed = static_cast<int64_t>(v);
    if (as_signed > max_.load(std::memory_order_relaxed)) max_.store(as_signed, std::memory_order_relaxed);
}

void histogram::merge(const histogram& other) {
    for (size_t i = 0; i < bucket_count; ++i) {
        buckets_[i].fetch_add(other.buckets_[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    count_.fetch_add(other.count(), std::memory_order_relaxed);
    sum_.fetch_add(other.sum_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    if (other.max() > max()) max_.store(other.max(), std::memory_order_relaxed);
}

void histogram::subtract(const histogram& earlier) {
    uint64_t top_bucket = 0;
    for (size_t i = 0; i < bucket_count; ++i) {
        const uint64_t now = buckets_[i].load(std::memory_order_relaxed);
        const uint64_t then = earlier.buckets_[i].load(std::memory_order_relaxed);
        const uint64_t left = now >= then ? now - then : 0;
        buckets_[i].store(left, std::memory_order_relaxed);
        if (left > 0) top_bucket = i;
    }
    const uint64_t c = count(), ec = earlier.count();
    count_.store(c >= ec ? c - ec : 0, std::memory_order_relaxed);
    const uint64_t s = sum_.load(std::memory_order_relaxed), es = earlier.sum_.load(std::memory_order_relaxed);
    sum_.store(s >= es ? s - es : 0, std::memory_order_relaxed);
    // The interval's max is not known exactly; its bucket's upper bound is.
    if (count() > 0) {
        max_.store(std::min(max(), static_cast<int64_t>(bucket_upper(static_cast<size_t>(top_bucket)))),
                   std::memory_order_relaxed);
    } else {
        max_.store(0, std::memory_order_relaxed);
    }
}

void histogram::reset() {
    for (auto& b : buckets_)
        b.store(0, std::memory_order_relaxed);
    count_.store(0, std::memory_order_relaxed);
    sum_.store(0, std::memory_order_relaxed);
    max_.store(0, std::memory_order_relaxed);
}

int64_t histogram::percentile(double q) const {
    const uint64_t total = count();
    if (total == 0) return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(total) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, total);
    uint64_t seen = 0;
    for (size_t i = 0; i < bucket_count; ++i) {
        seen += buckets_[i].load(std::memory_order_relaxed);
        if (seen >= rank) return std::min(static_cast<int64_t>(bucket_upper(i)), max());
    }
    return max();
}

double histogram::mean() const {
    const uint64_t c = count();
    return c == 0 ? 0.0 : static_cast<double>(sum_.load(std::memory_order_relaxed)) / static_cast<double>(c);
}

void send_ledger::on_sent(uint32_t device, uint64_t seq) {
    SLUICE_CHECK(device < sent_.size(), "device %u out of range", device);
    sent_[device].insert(seq);
}

void send_ledger::on_acked(uint32_t device, uint64_t seq, uint32_t readings) {
    SLUICE_CHECK(device < acked_.size(), "device %u out of range", device);
    if (acked_[device].insert(seq)) acked_readings_[device] += readings;
}

void receive_ledger::on_message(uint32_t device, uint64_t seq, int64_t latency_us) {
    if (device >= seen_.size() || seq >= max_tracked_seq) {
        ++foreign_;
        return;
    }
    ++received_;
    if (!seen_[device].insert(seq)) ++duplicates_;
    if (latency_us >= 0) latency_.record(latency_us);
}

reconciliation reconcile(const send_ledger& sent, const receive_ledger& received) {
    reconciliation r;
    r.received = received.received();
    r.duplicates = received.duplicates();
    r.foreign = received.foreign();
    const uint32_t n = std::min(sent.devices(), received.devices());
    for (uint32_t d = 0; d < n; ++d) {
        const seq_set& s = sent.sent(d);
        const seq_set& a = sent.acked(d);
        const seq_set& got = received.seen(d);
        r.sent += s.size();
        r.acked += a.size();
        r.unique_received += got.size();
        const uint64_t end = std::max({s.end(), a.end(), got.end()});
        for (uint64_t q = 0; q < end; ++q) {
            const bool was_sent = s.contains(q), was_acked = a.contains(q), was_got = got.contains(q);
            if (was_acked && !was_got) ++r.lost;
            if (was_sent && !was_acked && !was_got) ++r.missing_unacked;
            if (was_got && !was_sent) ++r.unexpected;
            if (!was_got && q < got.end()) ++r.gaps;
        }
    }
    for (uint32_t d = n; d < received.devices(); ++d)
        r.unique_received += received.seen(d).size();
    return r;
}

}  // namespace sluice::loadgen
