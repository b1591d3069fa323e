// SPDX-License-Identifier: Apache-2.0
//
// Packing and rollup aggregation for write_batch; see store/packing.h.
#include "store/packing.h"

#include <algorithm>

#include "base/assert.h"

namespace sluice::store {

int64_t floor_to(int64_t t, int64_t width) {
    SLUICE_ASSERT(width > 0, "width must be positive");
    int64_t q = t / width;
    if (t % width != 0 && t < 0) --q;
    return q * width;
}

bool prepare_batch(std::span<const row> rows, prepared_batch& out) {
    out.series.clear();
    out.days_us.clear();
    for (const row& r : rows) {
        if (r.time_us < k_min_time_us || r.time_us >= k_max_time_us) return false;
    }
    // Sort keys by value (no indirection in the comparator); idx makes it stable.
    struct sort_key {
        uint64_t series;  // device_id, metric_id as unsigned order-preserving halves
        int64_t time_us;
        uint32_t idx;
    };
    std::vector<sort_key> keys(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        const row& r = rows[i];
        const uint64_t dev = static_cast<uint32_t>(r.device_id) ^ 0x80000000u;
        const uint64_t met = static_cast<uint32_t>(r.metric_id) ^ 0x80000000u;
        keys[i] = {(dev << 32) | met, r.time_us, static_cast<uint32_t>(i)};
    }
    std::sort(keys.begin(), keys.end(), [](const sort_key& a, const sort_key& b) {
        if (a.series != b.series) return a.series < b.series;
        if (a.time_us != b.time_us) return a.time_us < b.time_us;
        return a.idx < b.idx;
    });
    out.series.reserve(rows.size() / 4 + 1);

    constexpr int64_t day_us = 24 * k_hour_us;
    packed_series* cur = nullptr;
    int64_t prev_time = 0;
    for (const sort_key& key : keys) {
        const row& r = rows[key.idx];
        const int64_t window = floor_to(r.time_us, k_window_us);
        if (cur == nullptr || cur->device_id != r.device_id || cur->metric_id != r.metric_id ||
            cur->window_start_us != window) {
            cur = &out.series.emplace_back();
            cur->device_id = r.device_id;
            cur->metric_id = r.metric_id;
            cur->window_start_us = window;
            cur->min = r.value;
            cur->max = r.value;
            prev_time = window;
            out.days_us.push_back(floor_to(window, day_us));
        }
        const int64_t delta = r.time_us - prev_time;
        SLUICE_ASSERT(delta >= 0 && delta < k_window_us, "delta out of window");
        cur->deltas.push_back(static_cast<int32_t>(delta));
        cur->values.push_back(r.value);
        cur->flags.push_back(r.flags);
        cur->any_flag = cur->any_flag || r.flags != 0;
        cur->sum += r.value;
        cur->min = std::min(cur->min, r.value);
        cur->max = std::max(cur->max, r.value);
        // Sorted by time, stable: the last row seen is the latest (ties: later in batch).
        cur->last_offset_us = static_cast<int32_t>(r.time_us - window);
        cur->last_value = r.value;
        prev_time = r.time_us;
    }
    std::sort(out.days_us.begin(), out.days_us.end());
    out.days_us.erase(std::unique(out.days_us.begin(), out.days_us.end()), out.days_us.end());
    return true;
}

}  // namespace sluice::store
