// SPDX-License-Identifier: Apache-2.0
//
// The pure, I/O-free half of write_batch: turning a batch of narrow readings into
// packed rows (one per device, metric and 10-minute window, times delta-encoded),
// each carrying its aggregates (sum, min, max, last) from which the hourly and daily
// rollups are computed. Kept apart from libpq so that unit tests
// check the encoding without a database. The layout is described in docs/storage.md;
// the SQL that decodes it (the telemetry view) is in store/schema.cc: change together.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace sluice::store {

// Width of a packed row's time window. Times inside a window are stored as int4
// microsecond deltas, so a window must stay below 2^31 us (~35 minutes).
inline constexpr int64_t k_window_us = 600'000'000;
inline constexpr int64_t k_hour_us = 3'600'000'000;
static_assert(k_hour_us % k_window_us == 0, "windows must nest in hours (rollups)");
// Accepted reading times: [1970-01-01, 2200-01-01) UTC.
inline constexpr int64_t k_min_time_us = 0;
inline constexpr int64_t k_max_time_us = 7'258'118'400'000'000;

// Floor of t to a multiple of `width` (also for negative t).
int64_t floor_to(int64_t t, int64_t width);

// The readings of one device and metric inside one window, sorted by time (stable:
// equal times keep their batch order). deltas[0] is relative to window_start_us,
// deltas[i] to the time of reading i-1. The aggregates feed the rollup views.
struct packed_series {
    int32_t device_id = 0;
    int32_t metric_id = 0;
    int64_t window_start_us = 0;
    std::vector<int32_t> deltas;
    std::vector<double> values;
    std::vector<int16_t> flags;
    bool any_flag = false;  // false: flags are all zero and are stored as NULL
    double sum = 0;
    double min = 0;
    double max = 0;
    int32_t last_offset_us = 0;  // time of the latest reading - window_start_us
    double last_value = 0;       // its value (ties: the later one in the batch)
};

struct prepared_batch {
    std::vector<packed_series> series;  // sorted by (device, metric, window)
    std::vector<int64_t> days_us;       // distinct UTC days (start) the windows fall in, ascending
};

// Returns false (and leaves `out` unspecified) when a row's time is outside
// [k_min_time_us, k_max_time_us).
bool prepare_batch(std::span<const row> rows, prepared_batch& out);

}  // namespace sluice::store
