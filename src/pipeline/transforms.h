// SPDX-License-Identifier: Apache-2.0
//
// The pure transforms between decode and store: unit conversion, validation, anomaly
// flags and per-device sequence-gap tracking. No I/O and no clocks (callers pass
// "now"), so every rule here is unit-tested with exact inputs. Decisions, documented in
// docs/payload-formats.md: a non-finite value, an unknown metric or a time the store
// cannot hold rejects that reading (dead letter with reason); a value outside the valid
// range is kept and flagged.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline/metrics.h"
#include "pipeline/types.h"

namespace sluice::pipeline {

// Bits of telemetry.flags (smallint).
namespace flag {
constexpr int16_t out_of_range = 1 << 0;  // outside [valid_min, valid_max]
constexpr int16_t threshold = 1 << 1;     // below warn_low or above warn_high
constexpr int16_t zscore = 1 << 2;        // rolling z-score beyond the threshold
constexpr int16_t future_time = 1 << 3;   // timestamp later than now + tolerance
constexpr int16_t after_gap = 1 << 4;     // payload came right after a sequence gap
}  // namespace flag

struct anomaly_config {
    double zscore_threshold = 4.0;  // |x - mean| / stddev beyond this flags
    uint32_t window = 100;          // EWMA span in samples: alpha = 2 / (window + 1)
    uint32_t min_samples = 30;      // no z-score flag before this many samples
    int64_t future_tolerance_ms = 60'000;
    // Readings outside [min_time_ms, max_time_ms) are rejected: the store only takes
    // times in [1970-01-01, 2200-01-01) and would otherwise refuse the whole batch.
    int64_t min_time_ms = 0;
    int64_t max_time_ms = 7'258'118'400'000;  // 2200-01-01T00:00:00Z
};

// Rolling z-score per series (device, metric), as an exponentially weighted mean and
// variance (exact running mean/variance until `window` samples, then EWMA): O(1) memory
// per series, no window buffer. Values flagged out of range are
// not fed in (call observe only for values that should shape the baseline).
class zscore_detector {
public:
    explicit zscore_detector(const anomaly_config& cfg);
    // Scores `value` against the series' history, then folds it in. True when the
    // series has min_samples and the value is beyond the threshold.
    bool observe(uint32_t device_id, uint32_t metric_id, double value);
    std::size_t series() const { return state_.size(); }

private:
    struct ewma {
        double mean = 0;
        double var = 0;
        uint64_t n = 0;
    };
    double alpha_;
    double threshold_;
    uint32_t min_samples_;
    std::unordered_map<uint64_t, ewma> state_;
};

// Detects lost payloads from each device's sequence numbers.
//  - first payload of a device: baseline, no gap;
//  - seq == last + 1: in order; seq > last + 1: a gap of (seq - last - 1) payloads;
//  - seq <= last and within reorder_window behind: late or duplicate, no gap, last kept;
//  - seq 0 (devices count from 0 after boot), further behind than reorder_window, the
//    payload's restart flag, or a forward jump beyond max_gap: the device restarted
//    (or its counter wrapped): resynchronise, no gap.
class sequence_tracker {
public:
    struct config {
        uint64_t reorder_window = 1024;
        uint64_t max_gap = 1'000'000;
    };
    struct counters {
        uint64_t payloads = 0;
        uint64_t in_order = 0;
        uint64_t gaps = 0;     // gap events
        uint64_t missing = 0;  // payloads missing, summed over gaps
        uint64_t late_or_duplicate = 0;
        uint64_t restarts = 0;
        uint64_t devices = 0;
    };

    sequence_tracker() : sequence_tracker(config{}) {}
    explicit sequence_tracker(config cfg) : cfg_(cfg) {}
    // Returns the number of payloads missing just before this one (0 when none).
    uint64_t observe(std::string_view device_key, uint64_t seq, bool restart_flag = false);
    const counters& totals() const { return totals_; }

private:
    struct key_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    config cfg_;
    counters totals_;
    std::unordered_map<std::string, uint64_t, key_hash, std::equal_to<>> last_;
};

// A reading ready for the telemetry table.
struct telemetry_row {
    int64_t time_ms;
    uint32_t device_id;
    uint32_t metric_id;
    double value;  // in the metric's canonical unit
    int16_t flags;
};

// A reading that must not be stored, with the dead-letter reason.
struct rejected_reading {
    std::size_t index;  // position in decoded_payload::readings
    std::string reason;
};

// Applies the transforms to every reading of a decoded payload. One per pipeline
// worker (it owns per-series state); not thread-safe.
class transformer {
public:
    transformer(const metric_dictionary& metrics, anomaly_config cfg = {}, sequence_tracker::config seq_cfg = {});

    // Called for a metric *name* the dictionary does not know (JSON payloads). It may
    // register the metric (e.g. store::registry::ensure_metric, then add it to the
    // dictionary) and return its definition; nullptr rejects the reading as unknown.
    // Not called for unknown binary ids: those always reject. Unset: unknown rejects.
    using unknown_metric_fn = std::function<const metric_def*(std::string_view name)>;
    void on_unknown_metric(unknown_metric_fn fn) { unknown_metric_ = std::move(fn); }

    // Converts, validates and flags the readings of `payload` from device
    // (device_id, device_key); appends accepted rows to `rows` and rejected readings
    // (unknown metric, non-finite value) to `rejected`. `now_ms` is the wall clock used
    // for the future-time check. Payloads with a seq go through the gap tracker; when
    // it reports a gap, every row of this payload gets flag::after_gap.
    void apply(uint32_t device_id, std::string_view device_key, const decoded_payload& payload, int64_t now_ms,
               std::vector<telemetry_row>& rows, std::vector<rejected_reading>& rejected);

    const sequence_tracker& sequences() const { return sequences_; }
    const zscore_detector& zscores() const { return zscores_; }

private:
    const metric_dictionary& metrics_;
    unknown_metric_fn unknown_metric_;
    anomaly_config cfg_;
    zscore_detector zscores_;
    sequence_tracker sequences_;
};

}  // namespace sluice::pipeline
