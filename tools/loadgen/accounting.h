// SPDX-License-Identifier: Apache-2.0
//
// Loss accounting for sluice-loadgen: the part of the load generator whose answer we
// stake promises on ("an acknowledged message is never lost"), so it is pure code with
// no sockets, driven directly by tools/loadgen/tests/accounting_test.cc. Publishers record
// what they sent and what the broker acknowledged, subscribers record what they received,
// and reconcile() compares the two per device and per sequence number.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace sluice::loadgen {

// Sequence numbers above this are not tracked (a foreign publisher on our topics, or a
// corrupt payload); the message is counted as `foreign` instead of growing a bitmap.
inline constexpr uint64_t max_tracked_seq = uint64_t{1} << 26;

// A set of sequence numbers, dense from 0 (one bit each).
class seq_set {
public:
    // Returns false when seq was already present. REQUIRES: seq < max_tracked_seq.
    bool insert(uint64_t seq);
    bool contains(uint64_t seq) const;
    uint64_t size() const { return size_; }
    // One past the highest member, 0 when empty.
    uint64_t end() const { return end_; }

private:
    std::vector<uint64_t> bits_;
    uint64_t size_ = 0;
    uint64_t end_ = 0;
};

// Latency histogram in microseconds: exact below 64 us, then 32 sub-buckets per power of
// two (about 3% resolution). Buckets are atomics so that one writer thread can record
// while the progress thread reads; record() is a relaxed increment.
class histogram {
public:
    static constexpr size_t bucket_count = 64 + 58 * 32;
    histogram() = default;
    histogram(const histogram& other) { merge(other); }
    histogram& operator=(const histogram& other);

    void record(int64_t micros);
    void merge(const histogram& other);
    // Subtracts an earlier snapshot of the same histogram (for per-interval percentiles).
    void subtract(const histogram& earlier);
    void reset();
    uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    // The q-quantile (0 < q <= 1) as the upper bound of its bucket, clamped to max();
    // 0 when empty.
    int64_t percentile(double q) const;
    int64_t max() const { return max_.load(std::memory_order_relaxed); }
    double mean() const;

    static size_t bucket_of(uint64_t micros);
    static uint64_t bucket_upper(size_t index);

private:
    std::array<std::atomic<uint64_t>, bucket_count> buckets_{};
    std::atomic<uint64_t> count_{0};
    std::atomic<uint64_t> sum_{0};
    std::atomic<int64_t> max_{0};
};

// Publisher side: per device, what was sent and what was acknowledged (PUBACK / PUBCOMP).
// Each device is written by one thread only (its owner); sized once before threads start.
class send_ledger {
public:
    explicit send_ledger(uint32_t devices) : sent_(devices), acked_(devices), acked_readings_(devices, 0) {}
    void on_sent(uint32_t device, uint64_t seq);
    // `readings`: how many readings the message carried (counted once per seq).
    void on_acked(uint32_t device, uint64_t seq, uint32_t readings = 1);
    uint32_t devices() const { return static_cast<uint32_t>(sent_.size()); }
    const seq_set& sent(uint32_t device) const { return sent_[device]; }
    const seq_set& acked(uint32_t device) const { return acked_[device]; }
    const std::vector<uint64_t>& acked_readings() const { return acked_readings_; }

private:
    std::vector<seq_set> sent_;
    std::vector<seq_set> acked_;
    std::vector<uint64_t> acked_readings_;
};

// Subscriber side: one per subscribing connection, written by its thread only.
class receive_ledger {
public:
    explicit receive_ledger(uint32_t devices) : seen_(devices) {}
    // Records one received message. latency_us < 0 means "unknown" (not recorded).
    void on_message(uint32_t device, uint64_t seq, int64_t latency_us);
    // A message that carried no usable truth (unparseable, unknown device, huge seq).
    void on_foreign() { ++foreign_; }

    uint64_t received() const { return received_; }
    uint64_t duplicates() const { return duplicates_; }
    uint64_t foreign() const { return foreign_; }
    const seq_set& seen(uint32_t device) const { return seen_[device]; }
    uint32_t devices() const { return static_cast<uint32_t>(seen_.size()); }
    const histogram& latency() const { return latency_; }

private:
    std::vector<seq_set> seen_;
    uint64_t received_ = 0;
    uint64_t duplicates_ = 0;
    uint64_t foreign_ = 0;
    histogram latency_;
};

// The verdict for one subscriber against all publishers.
struct reconciliation {
    uint64_t sent = 0;             // distinct (device, seq) published
    uint64_t acked = 0;            // distinct (device, seq) acknowledged
    uint64_t received = 0;         // every PUBLISH received (duplicates included)
    uint64_t unique_received = 0;  // distinct (device, seq) received
    uint64_t duplicates = 0;       // received - unique_received (foreign excluded)
    uint64_t foreign = 0;          // messages without usable truth
    uint64_t lost = 0;             // acknowledged but never received: must be 0
    uint64_t missing_unacked = 0;  // sent, not acknowledged, not received (QoS 0, in flight at stop)
    uint64_t gaps = 0;             // holes below the highest received seq per device, any cause
    uint64_t unexpected = 0;       // received but never sent by us (should be 0)
};

reconciliation reconcile(const send_ledger& sent, const receive_ledger& received);

}  // namespace sluice::loadgen
