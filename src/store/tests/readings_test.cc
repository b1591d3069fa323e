// SPDX-License-Identifier: Apache-2.0
//
// The user-facing relation sluice_telemetry.readings (issue 13) against a real PostgreSQL 15,
// on both layouts (the TimescaleDB runs are skipped, with the reason, where TimescaleDB is
// not installed): readings by name equal what was written; a plain time predicate reads
// only the windows in range, asserted from EXPLAIN ANALYZE (which lists only the partitions
// or chunks that were not pruned); readings_between() prunes without the planner module;
// latest answers the last value of every series; the name dictionary follows the registry
// across two databases; store.layout is honoured, recorded and checked.
#include <chrono>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "store/packing.h"
#include "store/registry.h"
#include "store/store.h"
#include "tests/support/pg_instance.h"

namespace sluice::store {
namespace {

using test::pg_instance;

constexpr int64_t k_minute = 60'000'000;
constexpr int64_t k_day = 24 * k_hour_us;

// Timestamps as PostgreSQL literals (UTC).
std::string ts(int64_t unix_us) {
    const std::time_t t = static_cast<std::time_t>(unix_us / 1'000'000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "'%Y-%m-%d %H:%M:%S+00'", &tm);
    return buf;
}

class readings_test : public ::testing::TestWithParam<layout_choice> {
protected:
    bool timescale() const { return GetParam() == layout_choice::timescale; }

    void start(bool readings_module = true) {
        if (timescale() && !test::timescale_installed()) GTEST_SKIP() << test::timescale_skip_reason();
        test::pg_instance_options po;
        po.timescale = timescale();
        po.readings_module = readings_module;
        auto inst = pg_instance::start(po);
        ASSERT_TRUE(inst) << inst.error().message();
        pg_ = std::move(*inst);
        auto db = pg_->create_database("readings");
        ASSERT_TRUE(db);
        url_ = *db;
        store_options o;
        o.telemetry_url = o.app_url = url_;
        o.layout = GetParam();
        auto s = open_postgres(o);
        ASSERT_TRUE(s);
        auto m = (*s)->migrate();
        ASSERT_TRUE(m) << m.error().message();
        ASSERT_EQ((*s)->timescale(), timescale());
        store_ = std::move(*s);
        auto r = open_registry(o);
        ASSERT_TRUE(r);
        registry_ = std::move(*r);
    }

    // 3 devices x 2 metrics, one reading every 30 s over `days` days ending at `end`,
    // written through the store in batches of 6 hours (fragments, like the pipeline's).
    void load(int64_t end, int days) {
        std::vector<int32_t> dev, met;
        for (const char* k : {"press-1", "press-2", "oven-7"})
            dev.push_back(registry_->ensure_device(k, "", "")->id);
        for (const char* n : {"temperature", "pressure"})
            met.push_back(*registry_->ensure_metric(n));
        const int64_t begin = end - days * k_day;
        for (int64_t b = begin; b < end; b += 6 * k_hour_us) {
            std::vector<row> rows;
            for (int64_t t = b; t < std::min(end, b + 6 * k_hour_us); t += 30'000'000) {
                for (size_t d = 0; d < dev.size(); ++d) {
                    for (size_t m = 0; m < met.size(); ++m) {
                        const double v = static_cast<double>((t / 30'000'000) % 1000) + static_cast<double>(d * 10 + m);
                        rows.push_back({t, dev[d], met[m], v, static_cast<int16_t>(t % 7 == 0 ? 1 : 0)});
                    }
                }
            }
            auto w = store_->write_batch(rows, {}, {});
            ASSERT_TRUE(w) << w.error().message();
        }
        begin_ = begin;
        end_ = end;
    }

    std::string scalar(const std::string& sql) {
        auto r = pg_instance::scalar(url_, sql);
        EXPECT_TRUE(r) << sql;
        return r ? *r : std::string();
    }

    // Names of the partitions (native) or chunks (TimescaleDB) that EXPLAIN ANALYZE shows
    // as scanned: pruned ones (at plan time or executor start-up) are not listed.
    std::set<std::string> scanned(const std::string& query) {
        auto rows = pg_instance::query(url_, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query);
        EXPECT_TRUE(rows) << query;
        std::set<std::string> out;
        static const std::regex part(R"((telemetry_packed_p[0-9]{8}|_hyper_[0-9]+_[0-9]+_chunk))");
        std::string plan;
        for (const auto& r : rows ? *rows : std::vector<std::vector<std::string>>{}) {
            plan += r[0] + "\n";
            for (std::sregex_iterator it(r[0].begin(), r[0].end(), part), e; it != e; ++it)
                out.insert((*it)[1]);
        }
        last_plan_ = plan;
        return out;
    }

    std::unique_ptr<pg_instance> pg_;
    std::string url_;
    std::unique_ptr<telemetry_store> store_;
    std::unique_ptr<registry> registry_;
    int64_t begin_ = 0, end_ = 0;
    std::string last_plan_;
};

// Midnight UTC `days_back` days before today: data near now, so now()-relative
// predicates (what Grafana and people write) select part of it.
int64_t today_midnight() {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    return now - now % k_day;
}

TEST_P(readings_test, rows_by_name_equal_the_id_based_view) {
    start();
    load(today_midnight(), 2);
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings"), std::to_string(2 * 2880 * 6));
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings WHERE device = 'oven-7' AND metric = 'pressure'"),
              std::to_string(2 * 2880));
    // Same (time, value, flags) as the id-based view, reading for reading.
    const char* by_name =
        "SELECT md5(string_agg(time || ':' || value || ':' || flags, ',' ORDER BY time)) "
        "FROM sluice_telemetry.readings WHERE device = 'press-2' AND metric = 'temperature'";
    const char* by_id =
        "SELECT md5(string_agg(time || ':' || value || ':' || flags, ',' ORDER BY time)) FROM "
        "sluice_telemetry.telemetry "
        "WHERE device_id = (SELECT id FROM sluice_app.devices WHERE key = 'press-2') "
        "AND metric_id = (SELECT id FROM sluice_app.metrics WHERE name = 'temperature')";
    EXPECT_EQ(scalar(by_name), scalar(by_id));
    // unit comes from the metric registry, updated by load_metrics().
    ASSERT_TRUE(pg_instance::query(url_, "UPDATE sluice_app.metrics SET unit = 'degC' WHERE name = 'temperature'"));
    ASSERT_TRUE(registry_->load_metrics());
    EXPECT_EQ(scalar("SELECT DISTINCT unit FROM sluice_telemetry.readings WHERE metric = 'temperature'"), "degC");
}

TEST_P(readings_test, plain_time_predicate_reads_only_the_windows_in_range) {
    start();
    const int64_t end = today_midnight();
    load(end, 5);
    const std::string from = ts(end - 2 * k_day + 12 * k_hour_us);
    const std::string to = ts(end - 2 * k_day + 13 * k_hour_us);
    // Without a predicate every day is scanned (the assertion below is not vacuous).
    EXPECT_EQ(scanned("SELECT count(*) FROM sluice_telemetry.readings").size(), 5u) << last_plan_;

    // Constants (plan-time pruning), with and without names; BETWEEN (Grafana's $__timeFilter).
    for (const std::string& where :
         {"time >= " + from + " AND time < " + to, "time BETWEEN " + from + " AND " + to,
          "device = 'press-1' AND metric = 'pressure' AND time >= " + from + " AND time < " + to,
          from + " <= time AND " + to + " > time"}) {
        const std::string q = "SELECT count(*) FROM sluice_telemetry.readings WHERE " + where;
        EXPECT_EQ(scanned(q).size(), 1u) << where << "\n" << last_plan_;
    }
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings WHERE time >= " + from + " AND time < " + to),
              std::to_string(120 * 6));
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings WHERE device = 'press-1' AND metric = "
                     "'pressure' AND time BETWEEN " +
                     from + " AND " + to),
              "121");
    // The windows in range: 6 series x the hour's 6 windows (one fragment each: the hour
    // lies inside one 6-hour batch).
    const std::string rows_read =
        scalar("SELECT count(*) FROM sluice_telemetry.telemetry_packed WHERE window_start > " + from +
               "::timestamptz - interval '10 minutes' AND window_start < " + to);
    EXPECT_EQ(rows_read, "36");

    // now()-relative predicates prune at executor start-up.
    const auto last_hour = scanned(
        "SELECT avg(value) FROM sluice_telemetry.readings WHERE time > now() - interval '30 hours' "
        "AND metric = 'temperature'");
    EXPECT_LE(last_hour.size(), 2u) << last_plan_;
    EXPECT_GE(last_hour.size(), 1u) << last_plan_;
    // Inside a subquery and a CTE, as Grafana's generated SQL may nest them.
    EXPECT_EQ(scanned("WITH r AS (SELECT * FROM sluice_telemetry.readings WHERE time >= " + from + " AND time < " + to +
                      ") SELECT device, count(*) FROM r GROUP BY 1")
                  .size(),
              1u)
        << last_plan_;
    EXPECT_EQ(scanned("SELECT count(*) FROM (SELECT * FROM sluice_telemetry.readings WHERE time >= " + from +
                      " AND time < " + to + ") s")
                  .size(),
              1u)
        << last_plan_;
    // A prepared statement with parameters (what drivers send).
    auto rows = pg_instance::query(
        url_,
        "PREPARE q(timestamptz, timestamptz) AS SELECT count(*) FROM sluice_telemetry.readings WHERE time >= $1 "
        "AND time < $2; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE q(" +
            from + ", " + to + ")");
    ASSERT_TRUE(rows);
    std::set<std::string> parts;
    static const std::regex part(R"((telemetry_packed_p[0-9]{8}|_hyper_[0-9]+_[0-9]+_chunk))");
    for (const auto& r : *rows) {
        for (std::sregex_iterator it(r[0].begin(), r[0].end(), part), e; it != e; ++it)
            parts.insert((*it)[1]);
    }
    EXPECT_EQ(parts.size(), 1u);
    // The id-based view prunes the same way.
    EXPECT_EQ(
        scanned("SELECT count(*) FROM sluice_telemetry.telemetry WHERE time >= " + from + " AND time < " + to).size(),
        1u)
        << last_plan_;
}

TEST_P(readings_test, readings_between_prunes_without_the_planner_module) {
    start(/*readings_module=*/false);
    const int64_t end = today_midnight();
    load(end, 4);
    const std::string from = ts(end - k_day + 6 * k_hour_us);
    const std::string to = ts(end - k_day + 7 * k_hour_us);
    // Without sluice_readings.so the view is correct but reads every day...
    EXPECT_EQ(
        scanned("SELECT count(*) FROM sluice_telemetry.readings WHERE time >= " + from + " AND time < " + to).size(),
        4u)
        << last_plan_;
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings WHERE time >= " + from + " AND time < " + to),
              std::to_string(120 * 6));
    // ... and readings_between() reads only the windows in range.
    EXPECT_EQ(scanned("SELECT count(*) FROM sluice_telemetry.readings_between(" + from + ", " + to +
                      ") WHERE device = 'oven-7'")
                  .size(),
              1u)
        << last_plan_;
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings_between(" + from + ", " + to + ")"),
              std::to_string(120 * 6));
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.readings_between(" + from + ", " + to +
                     ") WHERE device = 'oven-7' AND metric = 'temperature'"),
              "120");
}

TEST_P(readings_test, latest_is_the_last_reading_of_every_series) {
    start();
    const int64_t end = today_midnight();
    load(end, 2);
    // A late, older fragment must not win over the newest reading.
    const int32_t oven = registry_->ensure_device("oven-7", "", "")->id;
    const int32_t temp = *registry_->ensure_metric("temperature");
    std::vector<row> late = {{end - k_day, oven, temp, -5.0, 0}};
    ASSERT_TRUE(store_->write_batch(late, {}, {}));
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.latest"), "6");
    const char* expected =
        "SELECT md5(string_agg(device || metric || time || value, ',' ORDER BY device, metric)) FROM "
        "(SELECT DISTINCT ON (device, metric) device, metric, time, value FROM sluice_telemetry.readings "
        "ORDER BY device, metric, time DESC) x";
    const char* got =
        "SELECT md5(string_agg(device || metric || time || value, ',' ORDER BY device, metric)) FROM "
        "sluice_telemetry.latest";
    EXPECT_EQ(scalar(got), scalar(expected));
    EXPECT_EQ(scalar("SELECT time FROM sluice_telemetry.latest WHERE device = 'oven-7' AND metric = 'temperature'"),
              scalar("SELECT (" + ts(end - 30'000'000) + ")::timestamptz"));
    // It reads the packed rows' last_value, never the arrays: one index probe per series.
    scanned("SELECT * FROM sluice_telemetry.latest WHERE device = 'press-1'");
    EXPECT_NE(last_plan_.find("Limit"), std::string::npos) << last_plan_;
    EXPECT_EQ(last_plan_.find("unnest"), std::string::npos) << last_plan_;
}

std::string layout_test_name(const ::testing::TestParamInfo<layout_choice>& p) {
    return p.param == layout_choice::timescale ? "timescale" : "native";
}

INSTANTIATE_TEST_SUITE_P(layouts, readings_test, ::testing::Values(layout_choice::native, layout_choice::timescale),
                         layout_test_name);

// The dictionary lives in the telemetry database even when the registry is elsewhere.
TEST(readings_names, dictionary_follows_the_registry_in_another_database) {
    auto inst = pg_instance::start();
    ASSERT_TRUE(inst);
    auto tel = (*inst)->create_database("telemetry");
    auto app = (*inst)->create_database("app");
    ASSERT_TRUE(tel && app);
    store_options o;
    o.telemetry_url = *tel;
    o.app_url = *app;
    auto s = open_postgres(o);
    ASSERT_TRUE(s && (*s)->migrate());
    auto r = open_registry(o);
    ASSERT_TRUE(r);
    auto d = (*r)->ensure_device("press-9", "site", "line");
    ASSERT_TRUE(d);
    auto many = (*r)->ensure_devices({{"a-1", "", ""}, {"a-2", "", ""}});
    ASSERT_TRUE(many);
    auto m = (*r)->ensure_metric("rpm");
    ASSERT_TRUE(m);
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT string_agg(key, ',' ORDER BY key) FROM sluice_telemetry.device_names")
                  .value(),
              "a-1,a-2,press-9");
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT id FROM sluice_telemetry.metric_names WHERE name = 'rpm'").value(),
              std::to_string(*m));
    // Names are not in the telemetry database's sluice_app (it has none).
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT to_regclass('sluice_app.devices') IS NULL").value(), "t");
    // Written readings are visible by name.
    std::vector<row> rows = {{1'767'225'600'000'000, d->id, *m, 1500.0, 0}};
    ASSERT_TRUE((*s)->write_batch(rows, {}, {}));
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT device || '/' || metric || '/' || value FROM sluice_telemetry.readings")
                  .value(),
              "press-9/rpm/1500");
}

// store.layout: auto falls back, timescale refuses, the record is checked on later starts.
TEST(store_layout, timescale_requested_but_not_loadable_is_refused) {
    auto inst = pg_instance::start();  // TimescaleDB not preloaded (or not installed)
    ASSERT_TRUE(inst);
    auto db = (*inst)->create_database("layout");
    ASSERT_TRUE(db);
    store_options o;
    o.telemetry_url = o.app_url = *db;
    o.layout = layout_choice::timescale;
    auto s = open_postgres(o);
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)->migrate().error(), errc::layout_unavailable);
    EXPECT_EQ(pg_instance::scalar(*db, "SELECT to_regclass('sluice_telemetry.telemetry_packed') IS NULL").value(), "t");
    o.layout = layout_choice::automatic;
    auto a = open_postgres(o);
    ASSERT_TRUE(a && (*a)->migrate());
    EXPECT_FALSE((*a)->timescale());
    // Recorded native: asking for timescale later is a mismatch, native and auto are fine.
    o.layout = layout_choice::timescale;
    auto t = open_postgres(o);
    ASSERT_TRUE(t);
    EXPECT_EQ((*t)->migrate().error(), errc::layout_mismatch);
    o.layout = layout_choice::native;
    auto n = open_postgres(o);
    ASSERT_TRUE(n && (*n)->migrate());
}

TEST(store_layout, native_is_honoured_where_timescale_could_load) {
    if (!test::timescale_installed()) GTEST_SKIP() << test::timescale_skip_reason();
    test::pg_instance_options po;
    po.timescale = true;
    auto inst = pg_instance::start(po);
    ASSERT_TRUE(inst);
    auto db1 = (*inst)->create_database("native");
    auto db2 = (*inst)->create_database("auto");
    ASSERT_TRUE(db1 && db2);
    store_options o;
    o.telemetry_url = o.app_url = *db1;
    o.layout = layout_choice::native;
    auto n = open_postgres(o);
    ASSERT_TRUE(n && (*n)->migrate());
    EXPECT_FALSE((*n)->timescale());
    EXPECT_EQ(pg_instance::scalar(*db1, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").value(),
              "0");
    o.telemetry_url = o.app_url = *db2;
    o.layout = layout_choice::automatic;
    auto a = open_postgres(o);
    ASSERT_TRUE(a && (*a)->migrate());
    EXPECT_TRUE((*a)->timescale());
    o.layout = layout_choice::native;
    auto m = open_postgres(o);
    ASSERT_TRUE(m);
    EXPECT_EQ((*m)->migrate().error(), errc::layout_mismatch);
}

}  // namespace
}  // namespace sluice::store
