// SPDX-License-Identifier: Apache-2.0
//
// Grouped aggregates over the readings views answered from per-bucket partials
// (bucket_window, pg_module/bucket_partials.c), on both layouts against a real PostgreSQL 15:
// every query shape the rewrite takes returns what the same query returns decoding every
// reading (sluice_readings.enabled = off), its plan calls bucket_window and not
// unpack_window, and still reads only the windows in range; shapes it must not take
// (conditions on value or flags, expressions of value, time itself as a group, date
// bounds) are planned as written and equal too.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/tests/readings_fixture.h"

namespace sluice::store {
namespace {

class bucket_partials_test : public readings_test {
protected:
    // The plan of `query` (EXPLAIN VERBOSE, not run).
    std::string plan_of(const std::string& query, const std::string& setup = "") {
        auto rows = pg_instance::query(url_, setup + "EXPLAIN (VERBOSE, COSTS OFF) " + query);
        EXPECT_TRUE(rows) << query;
        std::string plan;
        for (const auto& r : rows ? *rows : std::vector<std::vector<std::string>>{})
            plan += r[0] + "\n";
        return plan;
    }

    // A second fragment in some windows of press-1's temperature, with readings off the
    // 30 s grid and out of time order: partials of one bucket come from several packed rows
    // and from several runs of one row.
    void add_fragments(int64_t from) {
        std::vector<row> rows;
        const int32_t dev = registry_->ensure_device("press-1", "", "")->id;
        const int32_t met = *registry_->ensure_metric("temperature");
        for (int64_t t : {from + 7'000'000, from + 61'000'000, from + 3'000'000, from + 600'000'000 + 59'999'999,
                          from + 600'000'000 + 1})
            rows.push_back({t, dev, met, static_cast<double>(t % 97), 0});
        auto w = store_->write_batch(rows, {}, {});
        ASSERT_TRUE(w) << w.error().message();
    }
};

TEST_P(bucket_partials_test, grouped_aggregates_equal_decoding_every_reading) {
    start();
    const int64_t end = today_midnight();
    load(end, 2);
    const int64_t day = end - k_day;
    add_fragments(day + 3 * k_hour_us);
    const std::string a = ts(day + 2 * k_hour_us + 30'000'000), b = ts(day + 5 * k_hour_us);
    const std::string r = " FROM sluice_telemetry.readings ";
    const std::string all =
        "count(*), count(value), avg(value), sum(value), min(value), max(value), min(time), "
        "max(time), count(time)";
    // Shapes the rewrite takes.
    std::vector<std::string> taken = {
        "SELECT date_bin('1 minute', time, timestamptz '2000-01-01 00:00+00') AS b, device, metric, " + all + r +
            "WHERE time >= " + a + " AND time < " + b + " GROUP BY 1, 2, 3",
        // A width across windows, an origin off the grid, bounds the other way round.
        "SELECT date_bin('7 minutes 30 seconds', time, timestamptz '2000-01-01 00:00:17+00'), " + all + r +
            "WHERE device = 'press-1' AND time > " + a + " AND " + b + " >= time GROUP BY 1",
        // Grafana's $__timeGroupAlias and $__timeFilter (BETWEEN, RFC 3339).
        "SELECT floor(extract(epoch from time)/300)*300 AS \"time\", device AS metric, avg(value) AS value" + r +
            "WHERE time BETWEEN " + rfc3339(day + k_hour_us) + " AND " + rfc3339(day + 4 * k_hour_us) +
            " AND metric = 'temperature' GROUP BY 1, 2 ORDER BY 1",
        "SELECT floor(extract(epoch from time)/420)*420 AS \"time\", avg(value) AS value" + r + "WHERE time BETWEEN " +
            rfc3339(day + k_hour_us) + " AND " + rfc3339(day + 4 * k_hour_us) + " GROUP BY 1 ORDER BY 1",
        // No bucket: one partial per window (the device dashboard's per-metric summary).
        "SELECT metric, count(*) AS readings, min(time) AS first, max(time) AS last" + r + "WHERE time >= " + a +
            " AND time < " + b + " AND device = 'press-1' GROUP BY 1 ORDER BY 1",
        // No GROUP BY, over an empty range: count 0, the others NULL.
        "SELECT count(*), avg(value), max(time)" + r + "WHERE time >= " + b + " AND time < " + b,
        "SELECT count(*), avg(value), min(value)" + r + "WHERE device = 'oven-7'",
        // HAVING, aggregates inside expressions, a day's buckets, equality, no time bound.
        "SELECT date_bin('1 hour', time, timestamptz '2001-02-03 04:05:06+00') AS h, max(value) - min(value), "
        "sum(value) / count(*)" +
            r + "WHERE time <= " + b + " GROUP BY 1 HAVING count(*) > 10 AND max(value) > 5",
        "SELECT date_bin('1 day', time, timestamptz '2000-01-01'), device, avg(value)" + r + "GROUP BY 1, 2",
        "SELECT device, metric, count(*), avg(value)" + r + "WHERE time = " + ts(day + 3 * k_hour_us) +
            " GROUP BY 1, 2",
        // An origin after every reading: date_bin's edges differ there, each reading alone.
        "SELECT date_bin('1 hour', time, timestamptz '2999-01-01'), count(*), avg(value)" + r + "WHERE time >= " + a +
            " AND time < " + b + " GROUP BY 1",
        // The id-based view, and a grouped query nested in another.
        "SELECT date_bin('10 minutes', time, timestamptz '2000-01-01'), device_id, metric_id, count(*), avg(value) "
        "FROM sluice_telemetry.telemetry WHERE time >= " +
            a + " AND time < " + b + " GROUP BY 1, 2, 3",
        "SELECT max(n) FROM (SELECT device, count(*) AS n" + r + "WHERE time > " + a + " GROUP BY 1) s",
    };
    if (timescale()) {
        taken.push_back("SELECT time_bucket('5 minutes', time) AS b, metric, " + all + r + "WHERE time >= " + a +
                        " AND time < " + b + " GROUP BY 1, 2");
        taken.push_back("SELECT time_bucket('1 day', time), avg(value)" + r + "GROUP BY 1");
        taken.push_back("SELECT time_bucket('7 minutes', time), device, max(value)" + r + "WHERE time > " + a +
                        " GROUP BY 1, 2");
        taken.push_back("SELECT time_bucket('15 minutes', time, timestamptz '2000-01-01 00:03+00'), count(*)" + r +
                        "WHERE time < " + b + " GROUP BY 1");
    }
    // Shapes it must leave as they are.
    std::vector<std::string> left = {
        "SELECT device, count(*)" + r + "WHERE flags <> 0 AND time >= " + a + " AND time < " + b + " GROUP BY 1",
        "SELECT date_bin('1 minute', time, timestamptz '2000-01-01'), avg(value * 2 + 32)" + r + "WHERE time >= " + a +
            " AND time < " + b + " GROUP BY 1",
        "SELECT time, count(*)" + r + "WHERE time >= " + a + " AND time < " + b + " GROUP BY 1",
        "SELECT device, count(*)" + r + "WHERE value > 500 AND time >= " + a + " GROUP BY 1",
        "SELECT device, avg(value)" + r + "WHERE time >= " + date(day) + " AND time < " + b + " GROUP BY 1",
        "SELECT device, count(DISTINCT value)" + r + "WHERE time >= " + a + " AND time < " + b + " GROUP BY 1",
        "SELECT device, count(*)" + r + "WHERE time >= " + a + " AND time >= " + b + " GROUP BY 1",
    };

    for (const char* zone : {"UTC", "America/St_Johns"}) {
        expect_same_rows_with_module_on_and_off(zone, taken);
        expect_same_rows_with_module_on_and_off(zone, left);
    }
    for (const std::string& q : taken) {
        const std::string plan = plan_of(q);
        EXPECT_NE(plan.find("bucket_window"), std::string::npos) << q << "\n" << plan;
        EXPECT_EQ(plan.find("unpack_window"), std::string::npos) << q << "\n" << plan;
    }
    for (const std::string& q : left) {
        const std::string plan = plan_of(q);
        EXPECT_EQ(plan.find("bucket_window"), std::string::npos) << q << "\n" << plan;
    }
    // Without the module's switch, as written.
    EXPECT_EQ(plan_of(taken[0], "SET sluice_readings.enabled = off; ").find("bucket_window"), std::string::npos);
}

TEST_P(bucket_partials_test, partials_read_only_the_windows_in_range) {
    start();
    const int64_t end = today_midnight();
    load(end, 3);
    const std::string from = ts(end - 2 * k_day + 12 * k_hour_us), to = ts(end - 2 * k_day + 13 * k_hour_us);
    const std::string q =
        "SELECT date_bin('1 minute', time, timestamptz '2000-01-01') AS m, avg(value) "
        "FROM sluice_telemetry.readings WHERE device = 'press-1' AND metric = 'pressure' "
        "AND time >= " +
        from + " AND time < " + to + " GROUP BY 1 ORDER BY 1";
    EXPECT_EQ(scanned(q).size(), 1u) << last_plan_;
    EXPECT_NE(last_plan_.find("bucket_window"), std::string::npos) << last_plan_;
    EXPECT_EQ(scalar("SELECT count(*) FROM (" + q + ") s"), "60");
    // A prepared statement with parameters, as drivers send it: pruned at executor start-up.
    EXPECT_EQ(scanned("EXECUTE q(" + from + ", " + to + ")",
                      "PREPARE q(timestamptz, timestamptz) AS SELECT date_bin('5 minutes', time, "
                      "timestamptz '2000-01-01'), count(*) FROM sluice_telemetry.readings "
                      "WHERE time >= $1 AND time < $2 GROUP BY 1; ")
                  .size(),
              1u)
        << last_plan_;
    EXPECT_NE(last_plan_.find("bucket_window"), std::string::npos) << last_plan_;
}

TEST_P(bucket_partials_test, bucket_window_checks_its_arrays) {
    start();
    pg::connection conn(url_, std::chrono::seconds(10), "test");
    ASSERT_TRUE(conn.ensure());
    ASSERT_TRUE(
        conn.exec("CREATE FUNCTION pg_temp.failure(q text) RETURNS text LANGUAGE plpgsql AS $$ "
                  "BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END $$"));
    auto failure = [&](const std::string& args) {
        const std::string sql = "SELECT pg_temp.failure('SELECT count(*) FROM sluice_telemetry.bucket_window(now(), " +
                                args + ", 60000000, now(), ''-infinity'', false, ''infinity'', false)')";
        auto r = conn.query(sql.c_str());
        return r ? std::string(r->get(0, 0)) : std::string("query failed");
    };
    EXPECT_EQ(failure("''{1,2}'', ''{1}''"), "bucket_window: time_deltas and vals have different lengths");
    EXPECT_EQ(failure("''{1,NULL}'', ''{1,2}''"), "bucket_window: time_deltas contains NULL");
    EXPECT_EQ(failure("''{{1},{2}}'', ''{1,2}''"), "bucket_window: time_deltas has 2 dimensions, expected 1");
    EXPECT_EQ(failure("''{1,2}'', ''{1,NULL}''"), "bucket_window: vals contains NULL");
    // Readings in and out of order, NaN above every number as PostgreSQL's max orders it.
    EXPECT_EQ(scalar("SELECT string_agg(concat_ws(' ', extract(epoch from first - timestamptz '2000-01-01 00:00+00'), "
                     "extract(epoch from last - timestamptz '2000-01-01 00:00+00'), n, sum, min, max), '; ') "
                     "FROM sluice_telemetry.bucket_window(timestamptz '2000-01-01 00:00+00', "
                     "'{0, 30000000, -20000000, 70000000, 5000000}', '{1, NaN, 3, 4, -5}', 60000000, "
                     "timestamptz '2000-01-01 00:00+00', '-infinity', false, timestamptz '2000-01-01 00:01:25+00', "
                     "true)"),
              "0.000000 30.000000 3 NaN 1 NaN; 80.000000 80.000000 1 4 4 4");
}

INSTANTIATE_TEST_SUITE_P(layouts, bucket_partials_test,
                         ::testing::Values(layout_choice::native, layout_choice::timescale), layout_test_name);

}  // namespace
}  // namespace sluice::store
