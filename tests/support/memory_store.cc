// SPDX-License-Identifier: Apache-2.0
//
// The in-memory telemetry store (see memory_store.h). Checks happen before anything is
// applied, so a failed batch leaves no trace, as a rolled-back transaction would.
#include "tests/support/memory_store.h"

namespace sluice::doubles {
namespace {

// The storable time range of store::row (store.h): [1970-01-01, 2200-01-01).
constexpr int64_t max_time_us = 7'258'118'400'000'000;

}  // namespace

result<void> memory_store::write_batch(std::span<const store::row> rows,
                                       std::span<const store::dead_letter> dead_letters,
                                       std::span<const store::offset_update> offsets,
                                       std::span<const store::sequence_update> sequences) {
    std::lock_guard lock(mu_);
    ++write_calls_;
    if (!scripted_failures_.empty()) {
        const std::error_code e = scripted_failures_.front();
        scripted_failures_.pop_front();
        return e;
    }
    for (const auto& r : rows) {
        if (r.time_us < 0 || r.time_us >= max_time_us) return store::errc::invalid_data;
        if (refuse_ && refuse_(r)) return store::errc::invalid_data;
    }
    for (const auto& o : offsets) {
        if (o.consumer.empty()) return store::errc::invalid_argument;
        const auto it = offsets_.find({o.consumer, o.partition});
        if (it != offsets_.end() && o.next_offset <= it->second) return store::errc::stale_offset;
    }
    rows_.insert(rows_.end(), rows.begin(), rows.end());
    dead_letters_.insert(dead_letters_.end(), dead_letters.begin(), dead_letters.end());
    for (const auto& o : offsets)
        offsets_[{o.consumer, o.partition}] = o.next_offset;
    for (const auto& s : sequences)
        sequences_[s.device_id] = s.last_seq;
    return {};
}

result<std::vector<store::sequence_update>> memory_store::load_sequences() {
    std::lock_guard lock(mu_);
    std::vector<store::sequence_update> out;
    out.reserve(sequences_.size());
    for (const auto& [device, seq] : sequences_)
        out.push_back(store::sequence_update{device, seq});
    return out;
}

result<std::optional<int64_t>> memory_store::load_offset(std::string_view consumer, int32_t partition) {
    return offset(std::string(consumer), partition);
}

void memory_store::fail_next_writes(std::error_code error, int count) {
    std::lock_guard lock(mu_);
    for (int i = 0; i < count; ++i)
        scripted_failures_.push_back(error);
}

void memory_store::refuse_rows(std::function<bool(const store::row&)> refuse) {
    std::lock_guard lock(mu_);
    refuse_ = std::move(refuse);
}

void memory_store::set_offset(const std::string& consumer, int32_t partition, int64_t next_offset) {
    std::lock_guard lock(mu_);
    offsets_[{consumer, partition}] = next_offset;
}

std::vector<store::row> memory_store::rows() const {
    std::lock_guard lock(mu_);
    return rows_;
}

std::vector<store::dead_letter> memory_store::dead_letters() const {
    std::lock_guard lock(mu_);
    return dead_letters_;
}

std::optional<int64_t> memory_store::offset(const std::string& consumer, int32_t partition) const {
    std::lock_guard lock(mu_);
    const auto it = offsets_.find({consumer, partition});
    if (it == offsets_.end()) return std::nullopt;
    return it->second;
}

int memory_store::write_calls() const {
    std::lock_guard lock(mu_);
    return write_calls_;
}

}  // namespace sluice::doubles
