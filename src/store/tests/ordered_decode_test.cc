// SPDX-License-Identifier: Apache-2.0
//
// Readings in time order without a sort of the readings (SluiceOrderedDecode,
// pg_module/ordered_decode.c), on both layouts against a real PostgreSQL 15: a query that
// orders a readings view by time is planned with the custom scan and no sort on time;
// it returns, in order, the rows the same query returns without the module
// (sluice_readings.enabled = off): one series and every series, ascending and descending,
// with fragments of one window and a row whose readings are out of time order, under a
// LIMIT, with further sort keys and rescanned with a new parameter; a packed row with a
// reading outside its window is an error, not rows out of order.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/tests/readings_fixture.h"

namespace sluice::store {
namespace {

using result_rows = std::vector<std::vector<std::string>>;

class ordered_decode_test : public readings_test {
protected:
    result_rows rows_in_order(const std::string& query, bool module) {
        auto r = pg_instance::query(url_, (module ? "" : "SET sluice_readings.enabled = off; ") + query);
        EXPECT_TRUE(r) << query;
        return r ? *r : result_rows{};
    }

    // Another fragment of press-1's temperature in two windows from `from`, off the 30 s
    // grid: windows with two packed rows of one series.
    void add_fragments(int64_t from) {
        const int32_t dev = registry_->ensure_device("press-1", "", "")->id;
        const int32_t met = *registry_->ensure_metric("temperature");
        std::vector<row> rows;
        for (int64_t t : {from + 7'000'000, from + 61'000'000, from + 3'000'000, from + 600'000'000 + 59'999'999,
                          from + 600'000'000 + 1})
            rows.push_back({t, dev, met, static_cast<double>(t % 97), 0});
        auto w = store_->write_batch(rows, {}, {});
        ASSERT_TRUE(w) << w.error().message();
    }

    // A packed row written by hand (not by the store) for oven-7's pressure at `window`:
    // `deltas` as given.
    void insert_packed_row(int64_t window, const std::string& deltas, const std::string& vals) {
        const std::string sql =
            "INSERT INTO sluice_telemetry.telemetry_packed (device_id, metric_id, window_start, n, sum, min, max, "
            "last_off, last_value, time_deltas, vals) SELECT d.id, m.id, " +
            ts(window) + ", cardinality(v), 0, 0, 0, 0, 0, '" + deltas +
            "'::int4[], v FROM "
            "sluice_app.devices d, sluice_app.metrics m, (SELECT '" +
            vals +
            "'::float8[] AS v) x "
            "WHERE d.key = 'oven-7' AND m.name = 'pressure'";
        ASSERT_TRUE(pg_instance::query(url_, sql)) << sql;
    }
};

// Each row's first column, as text, never decreases (increases: descending).
void expect_time_order(const result_rows& got, bool descending, const std::string& query) {
    for (size_t i = 1; i < got.size(); ++i) {
        const std::string& a = got[i - 1][0];
        const std::string& b = got[i][0];
        ASSERT_TRUE(descending ? a >= b : a <= b) << "row " << i << ": " << a << " then " << b << "\n" << query;
    }
}

TEST_P(ordered_decode_test, time_order_comes_without_sorting_the_readings) {
    start();
    const int64_t end = today_midnight();
    load(end, 2);
    const int64_t day = end - k_day;
    add_fragments(day + 3 * k_hour_us);
    // Readings out of time order in one row (the store never writes that; the scan orders them).
    insert_packed_row(day + 3 * k_hour_us + 20 * k_minute, "{400000000,-300000000,150000000,1000000}",
                      "{-1.5,-2.5,-3.5,-4.5}");
    const std::string range =
        "time >= " + ts(day + 2 * k_hour_us + 30'000'000) + " AND time < " + ts(day + 4 * k_hour_us);
    const std::string r = " FROM sluice_telemetry.readings WHERE ";
    // One total order: compared row for row with the module off.
    const std::vector<std::string> exact = {
        "SELECT time, value, flags" + r + "device = 'press-1' AND metric = 'temperature' AND " + range +
            " ORDER BY time",
        "SELECT time, value" + r + "device = 'oven-7' AND metric = 'pressure' AND " + range + " ORDER BY time",
        "SELECT time, value" + r + "device = 'press-1' AND metric = 'temperature' AND " + range + " ORDER BY time DESC",
        "SELECT time, value" + r + "device = 'press-1' AND metric = 'temperature' AND " + range +
            " ORDER BY time DESC LIMIT 50",
        // The scan is rescanned for each device with a new parameter.
        "SELECT s.time, g.dev, s.value FROM (VALUES ('press-1'), ('oven-7'), ('press-2')) g(dev) CROSS JOIN LATERAL "
        "(SELECT time, value" +
            r + "device = g.dev AND metric = 'pressure' AND " + range + " ORDER BY time DESC LIMIT 7) s",
    };
    // More sort keys after time: the planner may take the scan under an incremental sort or
    // sort everything (its estimates decide); either way the same rows in the same order.
    const std::vector<std::string> more_keys = {
        "SELECT time, device, metric, value" + r + range + " ORDER BY time, device, metric",
        "SELECT time, device, metric, value" + r + range + " ORDER BY time DESC, device DESC, metric DESC",
    };
    // Ties between series: in time order, the same rows.
    const std::vector<std::pair<std::string, bool>> ordered = {
        {"SELECT time, device, metric, value, flags" + r + range + " ORDER BY time", false},
        {"SELECT time, device_id, metric_id, value FROM sluice_telemetry.telemetry WHERE " + range +
             " ORDER BY time DESC",
         true},
    };
    for (const std::string& q : exact) {
        scanned(q);
        EXPECT_NE(last_plan_.find("Custom Scan (SluiceOrderedDecode)"), std::string::npos) << q << "\n" << last_plan_;
        EXPECT_EQ(last_plan_.find("Sort Key: x.\"time\"\n"), std::string::npos) << q << "\n" << last_plan_;
        const result_rows with = rows_in_order(q, true);
        EXPECT_GT(with.size(), 6u) << q;
        EXPECT_EQ(with, rows_in_order(q, false)) << q;
    }
    std::vector<std::string> ordered_queries;
    for (const auto& [q, descending] : ordered) {
        ordered_queries.push_back(q);
        scanned(q);
        EXPECT_NE(last_plan_.find("Custom Scan (SluiceOrderedDecode)"), std::string::npos) << q << "\n" << last_plan_;
        EXPECT_EQ(last_plan_.find("Sort Key: x.\"time\""), std::string::npos) << q << "\n" << last_plan_;
        expect_time_order(rows_in_order(q, true), descending, q);
    }
    for (const std::string& q : more_keys)
        EXPECT_EQ(rows_in_order(q, true), rows_in_order(q, false)) << q;
    expect_same_rows_with_module_on_and_off("UTC", ordered_queries);
    // The hand-written row's readings (at 400, 100, 250 and 251 s) come back in time order.
    const result_rows window = rows_in_order(
        "SELECT value" + r +
            "device = 'oven-7' AND metric = 'pressure' AND time >= " + ts(day + 3 * k_hour_us + 20 * k_minute) +
            " AND time < " + ts(day + 3 * k_hour_us + 30 * k_minute) + " ORDER BY time",
        true);
    std::string written_by_hand;
    for (const auto& row : window) {
        if (row[0][0] == '-') written_by_hand += row[0] + " ";
    }
    EXPECT_EQ(written_by_hand, "-2.5 -3.5 -4.5 -1.5 ");
}

TEST_P(ordered_decode_test, a_reading_outside_its_window_is_an_error_not_a_wrong_order) {
    start();
    const int64_t end = today_midnight();
    load(end, 1);
    const int64_t window = end - k_day + 6 * k_hour_us;
    insert_packed_row(window, "{1000000,700000000}", "{1,2}");  // the second 701 s after window_start
    pg::connection conn(url_, std::chrono::seconds(10), "test");
    ASSERT_TRUE(conn.ensure());
    ASSERT_TRUE(
        conn.exec("CREATE FUNCTION pg_temp.failure(q text) RETURNS text LANGUAGE plpgsql AS $$ "
                  "BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END $$"));
    const std::string sql =
        "SELECT pg_temp.failure($q$SELECT time FROM sluice_telemetry.readings WHERE device = "
        "'oven-7' AND metric = 'pressure' AND time >= " +
        ts(window - k_hour_us) + " AND time < " + ts(window + k_hour_us) + " ORDER BY time$q$)";
    auto got = conn.query(sql.c_str());
    ASSERT_TRUE(got);
    EXPECT_EQ(std::string(got->get(0, 0)), "a packed row of the window at " + utc(window, "%Y-%m-%d %H:%M:%S+00") +
                                               " has a reading outside the window");
}

INSTANTIATE_TEST_SUITE_P(layouts, ordered_decode_test,
                         ::testing::Values(layout_choice::native, layout_choice::timescale), layout_test_name);

}  // namespace
}  // namespace sluice::store
