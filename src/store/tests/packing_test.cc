// SPDX-License-Identifier: Apache-2.0
//
// Unit tests of the packed encoding and the per-batch rollup aggregation (no database).
#include "store/packing.h"

#include <map>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

namespace sluice::store {
namespace {

constexpr int64_t k_t0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

// Decodes a packed series back into absolute times.
std::vector<int64_t> times_of(const packed_series& s) {
    std::vector<int64_t> out;
    int64_t t = s.window_start_us;
    for (int32_t d : s.deltas) {
        t += d;
        out.push_back(t);
    }
    return out;
}

TEST(floor_to, handles_negative_and_exact) {
    EXPECT_EQ(floor_to(0, 10), 0);
    EXPECT_EQ(floor_to(19, 10), 10);
    EXPECT_EQ(floor_to(20, 10), 20);
    EXPECT_EQ(floor_to(-1, 10), -10);
    EXPECT_EQ(floor_to(-10, 10), -10);
}

TEST(prepare_batch, groups_by_series_and_window_sorted_by_time) {
    // Out of order, two series, one series crossing a window boundary.
    std::vector<row> rows = {
        {k_t0 + 5'000'000, 2, 1, 5.0, 0}, {k_t0 + 1'000'000, 1, 1, 1.0, 0}, {k_t0 + k_window_us + 7, 1, 1, 3.0, 4},
        {k_t0 + 3, 1, 1, 0.5, 0},         {k_t0 + 2'000'000, 1, 1, 2.0, 0},
    };
    prepared_batch b;
    ASSERT_TRUE(prepare_batch(rows, b));
    ASSERT_EQ(b.series.size(), 3u);
    const packed_series& a = b.series[0];
    EXPECT_EQ(a.device_id, 1);
    EXPECT_EQ(a.window_start_us, k_t0);
    EXPECT_EQ(times_of(a), (std::vector<int64_t>{k_t0 + 3, k_t0 + 1'000'000, k_t0 + 2'000'000}));
    EXPECT_EQ(a.deltas, (std::vector<int32_t>{3, 999'997, 1'000'000}));
    EXPECT_EQ(a.values, (std::vector<double>{0.5, 1.0, 2.0}));
    EXPECT_FALSE(a.any_flag);
    const packed_series& c = b.series[1];
    EXPECT_EQ(c.device_id, 1);
    EXPECT_EQ(c.window_start_us, k_t0 + k_window_us);
    EXPECT_EQ(c.deltas, (std::vector<int32_t>{7}));
    EXPECT_TRUE(c.any_flag);
    EXPECT_EQ(c.flags, (std::vector<int16_t>{4}));
    EXPECT_EQ(b.series[2].device_id, 2);
    EXPECT_EQ(b.days_us, (std::vector<int64_t>{k_t0}));
}

TEST(prepare_batch, equal_times_keep_batch_order) {
    std::vector<row> rows = {{k_t0, 1, 1, 1.0, 0}, {k_t0, 1, 1, 2.0, 0}, {k_t0, 1, 1, 3.0, 0}};
    prepared_batch b;
    ASSERT_TRUE(prepare_batch(rows, b));
    ASSERT_EQ(b.series.size(), 1u);
    EXPECT_EQ(b.series[0].values, (std::vector<double>{1.0, 2.0, 3.0}));
    EXPECT_EQ(b.series[0].deltas, (std::vector<int32_t>{0, 0, 0}));
    EXPECT_EQ(b.series[0].last_value, 3.0);  // ties: the later one in the batch
    EXPECT_EQ(b.series[0].last_offset_us, 0);
}

TEST(prepare_batch, refuses_times_out_of_range) {
    prepared_batch b;
    std::vector<row> before = {{-1, 1, 1, 1.0, 0}};
    EXPECT_FALSE(prepare_batch(before, b));
    std::vector<row> after = {{k_max_time_us, 1, 1, 1.0, 0}};
    EXPECT_FALSE(prepare_batch(after, b));
    std::vector<row> edge = {{k_min_time_us, 1, 1, 1.0, 0}, {k_max_time_us - 1, 1, 1, 1.0, 0}};
    EXPECT_TRUE(prepare_batch(edge, b));
    EXPECT_EQ(b.days_us.size(), 2u);
}

TEST(prepare_batch, round_trips_random_rows_and_aggregates_match_recomputation) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int64_t> time(k_t0 - 3 * k_hour_us, k_t0 + 5 * k_hour_us);
    // (windows nest in hours, so per-window aggregates merge into exact hourly rollups)
    std::uniform_int_distribution<int32_t> dev(1, 7);
    std::uniform_int_distribution<int32_t> met(1, 3);
    std::normal_distribution<double> val(20.0, 5.0);
    std::vector<row> rows;
    rows.reserve(20000);
    for (int i = 0; i < 20000; ++i) {
        rows.push_back({time(rng), dev(rng), met(rng), val(rng), static_cast<int16_t>(i % 17 == 0 ? 1 : 0)});
    }
    prepared_batch b;
    ASSERT_TRUE(prepare_batch(rows, b));

    // Every row comes back exactly once, in its series and window.
    using key = std::tuple<int32_t, int32_t, int64_t, double, int16_t>;
    std::multiset<key> want, got;
    for (const row& r : rows)
        want.insert({r.device_id, r.metric_id, r.time_us, r.value, r.flags});
    size_t total = 0;
    for (const packed_series& s : b.series) {
        auto times = times_of(s);
        ASSERT_EQ(times.size(), s.values.size());
        ASSERT_EQ(times.size(), s.flags.size());
        for (size_t i = 0; i < times.size(); ++i) {
            EXPECT_EQ(floor_to(times[i], k_window_us), s.window_start_us);
            if (i > 0) {
                EXPECT_LE(times[i - 1], times[i]);
            }
            got.insert({s.device_id, s.metric_id, times[i], s.values[i], s.flags[i]});
        }
        total += times.size();
    }
    EXPECT_EQ(total, rows.size());
    EXPECT_EQ(got, want);

    // Per-row aggregates (the rollups' input) equal a straightforward recomputation.
    struct agg {
        double sum = 0, min = 1e300, max = -1e300;
        int64_t last_t = INT64_MIN;
        double last = 0;
    };
    std::map<std::tuple<int32_t, int32_t, int64_t>, agg> expect;
    for (const row& r : rows) {
        agg& a = expect[{r.device_id, r.metric_id, floor_to(r.time_us, k_window_us)}];
        a.sum += r.value;
        a.min = std::min(a.min, r.value);
        a.max = std::max(a.max, r.value);
        if (r.time_us > a.last_t) {
            a.last_t = r.time_us;
            a.last = r.value;
        }
    }
    ASSERT_EQ(b.series.size(), expect.size());
    for (size_t i = 0; i < b.series.size(); ++i) {
        const packed_series& d = b.series[i];
        if (i > 0) {
            const packed_series& p = b.series[i - 1];
            EXPECT_LT(std::tie(p.device_id, p.metric_id, p.window_start_us),
                      std::tie(d.device_id, d.metric_id, d.window_start_us));
        }
        const agg& a = expect.at({d.device_id, d.metric_id, d.window_start_us});
        EXPECT_NEAR(d.sum, a.sum, 1e-9 * std::abs(a.sum) + 1e-9);
        EXPECT_EQ(d.min, a.min);
        EXPECT_EQ(d.max, a.max);
        EXPECT_EQ(d.window_start_us + d.last_offset_us, a.last_t);
        EXPECT_EQ(d.last_value, a.last);
    }
}

}  // namespace
}  // namespace sluice::store
