// SPDX-License-Identifier: Apache-2.0
//
// The user-facing relation sluice_telemetry.readings (issue 13) against a real PostgreSQL 15,
// on both layouts (the TimescaleDB runs are skipped, with the reason, where TimescaleDB is
// not installed): readings by name equal what was written; a plain time predicate reads
// only the windows in range, asserted from EXPLAIN ANALYZE (which lists only the partitions
// or chunks that were not pruned); readings_between() prunes without the planner module;
// latest answers the last value of every series; unpack_window, in C with the module and in
// SQL without, decodes packed rows as the SQL did; the name dictionary follows the registry
// across two databases; store.layout is honoured, recorded and checked.
#include <chrono>
#include <latch>
#include <regex>
#include <set>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include "store/tests/readings_fixture.h"

namespace sluice::store {
namespace {

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
    const std::vector<std::string> constants = {
        "time >= " + from + " AND time < " + to, "time BETWEEN " + from + " AND " + to,
        "device = 'press-1' AND metric = 'pressure' AND time >= " + from + " AND time < " + to,
        from + " <= time AND " + to + " > time"};
    for (const std::string& where : constants) {
        const std::string q = concat({"SELECT count(*) FROM sluice_telemetry.readings WHERE ", where});
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
    EXPECT_EQ(scanned("EXECUTE q(" + from + ", " + to + ")",
                      "PREPARE q(timestamptz, timestamptz) AS SELECT count(*) FROM sluice_telemetry.readings "
                      "WHERE time >= $1 AND time < $2; ")
                  .size(),
              1u)
        << last_plan_;
    // The id-based view prunes the same way.
    EXPECT_EQ(
        scanned("SELECT count(*) FROM sluice_telemetry.telemetry WHERE time >= " + from + " AND time < " + to).size(),
        1u)
        << last_plan_;
}

const std::string k_count = "SELECT count(*) FROM sluice_telemetry.readings WHERE ";

TEST_P(readings_test, date_timestamp_and_grafana_bounds_prune) {
    start();
    const int64_t end = today_midnight();
    load(end, 5);
    const int64_t day = end - 2 * k_day;
    const int64_t from = day + 12 * k_hour_us;
    const int64_t to = from + k_hour_us;
    const std::vector<std::string> forms = {
        // timestamp without time zone: PostgreSQL's cross-type operators (timestamptz_ge_timestamp, ...)
        "time >= " + ts_naive(from) + " AND time < " + ts_naive(to),
        ts_naive(from) + " <= time AND " + ts_naive(to) + " > time",
        // date + interval is a timestamp
        "time >= " + date(day) + " + interval '12 hours' AND time < " + date(day) + " + interval '13 hours'",
        // Grafana's $__timeFilter(time), and $__timeFrom() / $__timeTo()
        "time BETWEEN " + rfc3339(from) + " AND " + rfc3339(to),
        "time >= " + rfc3339(from) + " AND time < " + rfc3339(to),
    };
    for (const std::string& where : forms) {
        EXPECT_EQ(scanned(concat({k_count, where})).size(), 1u) << where << "\n" << last_plan_;
    }
    EXPECT_EQ(scalar(k_count + "time >= " + ts_naive(from) + " AND time < " + ts_naive(to)), std::to_string(120 * 6));
    // A day by dates: that day, and the day before for its last window (the planner does
    // not know that windows start at multiples of 10 minutes).
    EXPECT_EQ(scanned(k_count + "time >= " + date(day) + " AND time < " + date(day + k_day)).size(), 2u) << last_plan_;
    EXPECT_EQ(scanned(k_count + "time >= current_date - 1").size(), 2u) << last_plan_;
    // A generic plan with timestamp parameters prunes at executor start-up.
    EXPECT_EQ(scanned("EXECUTE q(" + ts_naive(from) + ", " + ts_naive(to) + ")",
                      "SET plan_cache_mode = force_generic_plan; PREPARE q(timestamp, timestamp) AS " + k_count +
                          "time >= $1 AND time < $2; ")
                  .size(),
              1u)
        << last_plan_;
}

// Partitions or chunks a plan prunes at executor start-up (plain EXPLAIN counts them).
int pruned_at_start_up(const std::string& plan) {
    static const std::regex removed(R"((Subplans Removed|Chunks excluded during startup): ([0-9]+))");
    int n = 0;
    for (std::sregex_iterator it(plan.begin(), plan.end(), removed), e; it != e; ++it)
        n += std::stoi((*it)[2]);
    return n;
}

// PostgreSQL prunes with stable expressions (now(), a timestamptz minus an interval) only at
// executor start-up, after planning every partition (6-8 ms with 99 daily ones); the module
// adds a constant bound as weak as the expression at every execution, so those partitions
// are not even planned: plain EXPLAIN counts none (or, with days, fewer) pruned at start-up.
TEST_P(readings_test, now_and_interval_arithmetic_prune_while_planning) {
    start();
    const int64_t end = today_midnight();
    load(end, 5);
    const std::string x = ts(end - 2 * k_day + 12 * k_hour_us);
    const std::string off = "SET sluice_readings.enabled = off; ";
    // Intervals of hours: planned exactly what is read.
    const std::string within_x =
        "time >= " + x + "::timestamptz - interval '2 hours' AND time < " + x + "::timestamptz + interval '1 hour'";
    const std::vector<std::string> hours = {"time > now() - interval '30 hours'",
                                            "time >= CURRENT_TIMESTAMP - interval '29 hours' AND metric = 'pressure'",
                                            within_x};
    for (const std::string& where : hours) {
        const std::string q = k_count + where;
        const std::set<std::string> read = scanned(q);
        EXPECT_LE(read.size(), 2u) << q << "\n" << last_plan_;
        EXPECT_EQ(planned(q), read) << q << "\n" << last_plan_;
        EXPECT_EQ(pruned_at_start_up(last_plan_), 0) << q << "\n" << last_plan_;
    }
    // With days (applied in the session's TimeZone, which may change before a cached plan
    // runs) the planned constant keeps two days of slack (months nine: not shown with five
    // days of data, checked for results below): fewer partitions planned than all.
    const std::string q = k_count + "time > now() - interval '1 day 6 hours'";
    const std::set<std::string> read = scanned(q);
    EXPECT_EQ(planned(q), read) << q << "\n" << last_plan_;
    EXPECT_LT(read.size() + pruned_at_start_up(last_plan_), 5u) << q << "\n" << last_plan_;
    // now() in a prepared statement's generic plan: a later execution sees a later now(),
    // for which the bound planned earlier is weaker, so the same rows as without the module.
    const std::string prepared =
        "SET plan_cache_mode = force_generic_plan; PREPARE q AS " + k_count + "time > now() - interval '50 hours'; ";
    auto first = pg_instance::query(url_, prepared + "EXECUTE q");
    auto without = pg_instance::query(url_, off + prepared + "EXECUTE q");
    ASSERT_TRUE(first && without);
    EXPECT_EQ((*first)[0][0], (*without)[0][0]);
    // Interval arithmetic with days and months in zones with other offsets and DST rules
    // returns the same rows (the constant leaves slack for both).
    const std::string r = "SELECT time, device, metric, value FROM sluice_telemetry.readings WHERE ";
    const std::vector<std::string> queries = {
        r + within_x,
        r + "time > " + x + "::timestamptz - interval '1 day' AND time <= " + x + "::timestamptz - interval '20 hours'",
        r + "time >= " + x + "::timestamptz - interval '1 month 10 minutes' AND time < " + x +
            "::timestamptz - interval '1 month' + interval '1 month 30 minutes'",
    };
    for (const char* zone : {"UTC", "Asia/Kolkata", "America/St_Johns"})
        expect_same_rows_with_module_on_and_off(zone, queries);
}

TEST_P(readings_test, or_of_time_ranges_reads_each_range) {
    start();
    const int64_t end = today_midnight();
    load(end, 5);
    const int64_t a = end - 4 * k_day + 6 * k_hour_us;
    const int64_t b = end - k_day + 18 * k_hour_us;
    const std::string a_range = "time >= " + ts(a) + " AND time < " + ts(a + k_hour_us);
    const std::string b_range = "time >= " + ts(b) + " AND time < " + ts(b + k_hour_us);
    const std::string both = "(" + a_range + ") OR (" + b_range + ")";
    // Exactly the day of each range.
    std::set<std::string> each = scanned(k_count + a_range);
    each.merge(scanned(k_count + b_range));
    ASSERT_EQ(each.size(), 2u);
    EXPECT_EQ(scanned(k_count + both), each) << last_plan_;
    EXPECT_EQ(scalar(k_count + both), std::to_string(2 * 120 * 6));
    // With names, mixed bound types, nested in another conjunct.
    EXPECT_EQ(scanned(k_count + "device = 'press-1' AND (" + a_range + " OR time BETWEEN " + rfc3339(b) + " AND " +
                      rfc3339(b + k_hour_us) + ")")
                  .size(),
              2u)
        << last_plan_;
    // An arm that does not bound time bounds nothing.
    EXPECT_EQ(scanned(k_count + "(" + a_range + ") OR device = 'press-1'").size(), 5u) << last_plan_;
}

TEST_P(readings_test, join_and_subquery_conditions_prune_where_sound) {
    start();
    const int64_t end = today_midnight();
    load(end, 5);
    const int64_t from = end - 2 * k_day + 12 * k_hour_us;
    const std::string range = "r.time >= " + ts(from) + " AND r.time < " + ts(from + k_hour_us);
    const std::string readings = "sluice_telemetry.readings r";
    const std::string names = "sluice_telemetry.device_names d";
    const std::string on = " ON d.key = r.device AND " + range;
    const std::string count = "SELECT count(*) FROM ";
    // Where a view row must satisfy the condition to reach the result: pruned.
    const std::vector<std::string> pruned = {
        count + readings + " JOIN " + names + on,
        count + names + " LEFT JOIN " + readings + on,  // readings is the nullable side
        count + readings + " RIGHT JOIN " + names + on,
        count + "(SELECT r.time AS t, d.id FROM " + readings + " JOIN " + names +
            " ON d.key = r.device) s WHERE t >= " + ts(from) + " AND t < " + ts(from + k_hour_us),
        "WITH x AS (SELECT time, device, value FROM sluice_telemetry.readings) SELECT device, count(*) FROM x r "
        "WHERE " +
            range + " GROUP BY 1",
    };
    for (const std::string& q : pruned)
        EXPECT_EQ(scanned(q).size(), 1u) << q << "\n" << last_plan_;
    // Where it need not (the preserved side of an outer join), or where removing rows
    // would change what the subquery returns: left alone.
    const std::vector<std::string> unpruned = {
        count + readings + " LEFT JOIN " + names + on,
        count + names + " RIGHT JOIN " + readings + on,
        count + readings + " FULL JOIN " + names + on,
        "WITH x AS MATERIALIZED (SELECT * FROM sluice_telemetry.readings) " + count + "x r WHERE " + range,
        "WITH x AS (SELECT * FROM sluice_telemetry.readings) " + count +
            "x r JOIN x r2 ON r2.time = r.time AND r2.device = r.device AND r2.metric = r.metric WHERE " + range,
        count + "(SELECT * FROM sluice_telemetry.readings LIMIT 100000) r WHERE " + range,
        count + "(SELECT DISTINCT ON (device) * FROM sluice_telemetry.readings ORDER BY device, time) r WHERE " + range,
    };
    for (const std::string& q : unpruned)
        EXPECT_EQ(scanned(q).size(), 5u) << q << "\n" << last_plan_;
}

// Every form the module bounds, at window and day edges (a reading lies exactly on each),
// returns the same rows with the module on and off, in UTC and at a +05:30 offset (dates
// and timestamps without time zone are read in the session's TimeZone).
TEST_P(readings_test, added_bounds_never_change_results) {
    start();
    const int64_t end = today_midnight();
    load(end, 2);
    ASSERT_TRUE(registry_->ensure_device("idle-1", "", ""));  // no readings: outer joins null-extend it
    const int64_t day = end - k_day;
    const int64_t edge = day + 12 * k_hour_us + 10 * k_minute;  // a window's start
    const int64_t next = edge + 10 * k_minute;
    const std::string r = "SELECT time, device, metric, value, flags FROM sluice_telemetry.readings WHERE ";
    std::vector<std::string> queries;
    // Pairs of bounds in each type, exactly on window edges, 30 s off them, and on a day edge.
    const std::vector<std::pair<std::string, std::string>> ranges = {
        {ts(edge), ts(next)},
        {ts(edge - 30'000'000), ts(next + 30'000'000)},
        {ts_naive(edge), ts_naive(next)},
        {rfc3339(edge), rfc3339(next)},
        {ts(day - 10 * k_minute), ts(day)},
        {ts_naive(day - 10 * k_minute), date(day)},
        {date(day), ts(day + 10 * k_minute)},
    };
    for (const auto& [lo, hi] : ranges) {
        for (const char* lower : {">=", ">"}) {
            for (const char* upper : {"<", "<="})
                queries.push_back(concat({r, "time ", lower, " ", lo, " AND time ", upper, " ", hi}));
        }
        queries.push_back(concat({r, "time BETWEEN ", lo, " AND ", hi}));
        queries.push_back(concat({r, lo, " < time AND ", hi, " >= time"}));
        queries.push_back(concat({r, "time = ", lo, " OR time = ", hi}));
    }
    for (const std::string& at : {ts(edge), ts(edge + 30'000'000), ts_naive(edge), date(day), rfc3339(next)})
        queries.push_back(concat({r, "time = ", at}));
    // ORs: adjacent ranges meeting at a window edge, and with an arm that bounds nothing.
    queries.push_back(r + "(time >= " + ts(edge - 10 * k_minute) + " AND time < " + ts(edge) +
                      ") OR (time >= " + ts_naive(edge) + " AND time <= " + ts(next) + ")");
    queries.push_back(r + "(time > " + ts(edge) + " AND time < " + ts(next) + ") OR value < 2");
    queries.push_back(r + "time >= " + date(day) + " AND (time < " + ts(edge) + " OR time > " + ts(next) + ")");
    // Joins and subqueries, including the outer joins' null-extended rows.
    const std::string on_clause = " ON d.key = r.device AND r.time >= " + ts(edge) + " AND r.time <= " + ts(next);
    const std::string cols = "SELECT d.key, r.time, r.metric, r.value FROM ";
    for (const char* join : {" JOIN ", " LEFT JOIN ", " RIGHT JOIN ", " FULL JOIN "}) {
        queries.push_back(
            concat({cols, "sluice_telemetry.device_names d", join, "sluice_telemetry.readings r", on_clause}));
        queries.push_back(
            concat({cols, "sluice_telemetry.readings r", join, "sluice_telemetry.device_names d", on_clause}));
    }
    queries.push_back(
        "WITH x AS (SELECT time AS t, device, value FROM sluice_telemetry.readings) SELECT * FROM x "
        "WHERE t > " +
        ts_naive(edge) + " AND t < " + date(day + k_day));
    queries.push_back(
        "SELECT * FROM (SELECT r.time, d.id FROM sluice_telemetry.readings r JOIN "
        "sluice_telemetry.device_names d ON d.key = r.device) s WHERE s.time = " +
        ts(next));

    for (const char* zone : {"UTC", "Asia/Kolkata"}) {
        expect_same_rows_with_module_on_and_off(zone, queries);
    }
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

// Packed rows of every shape, for unpack_window: NULL and non-NULL flags, one reading,
// more than a window's 600, zero deltas, offsets beyond int4, empty arrays.
const char* const k_windows = R"sql(
CREATE TABLE public.windows (id int4, d int4[], v float8[], f int2[]);
INSERT INTO public.windows VALUES
  (1, '{5,10,20}', '{1.5,-2.25,1e300}', NULL),
  (2, '{0,1,1,3}', '{0.1,0.2,0.3,0.4}', '{0,4,-1,32767}'),
  (3, '{599999999}', '{42}', '{7}'),
  (4, '{0,0,0}', '{3,2,1}', NULL),
  (5, '{2000000000,2000000000,2000000000}', '{1,2,3}', '{1,0,1}'),
  (6, '{}', '{}', NULL);
INSERT INTO public.windows
  SELECT 7, array_agg((i * 7919) % 1000003 ORDER BY i), array_agg(sin(i) * 1e3 ORDER BY i),
         array_agg((i % 3)::int2 ORDER BY i)
  FROM generate_series(1, 700) i;
)sql";

// unpack_window's rows (in its order) over k_windows equal the SQL decoding's.
void expect_unpack_is_the_sql_decoding(const std::string& url) {
    const char* by_fn =
        "SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', w.id, x.i, x.off, x.value, x.flags), ',' "
        "ORDER BY w.id, x.i)) FROM public.windows w "
        "CROSS JOIN LATERAL sluice_telemetry.unpack_window(w.d, w.v, w.f) WITH ORDINALITY x(off, value, flags, i)";
    const char* by_sql =
        "SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', x.id, x.i, x.off, x.value, x.flags), ',' "
        "ORDER BY x.id, x.i)) FROM (SELECT w.id, u.i, sum(u.d) OVER (PARTITION BY w.id ORDER BY u.i) AS off, "
        "u.v AS value, coalesce(u.f, 0::int2) AS flags "
        "FROM public.windows w, unnest(w.d, w.v, w.f) WITH ORDINALITY u(d, v, f, i)) x";
    auto fn = pg_instance::scalar(url, by_fn);
    auto sql = pg_instance::scalar(url, by_sql);
    ASSERT_TRUE(fn && sql);
    EXPECT_EQ(fn->substr(0, fn->find(' ')), "714");
    EXPECT_EQ(*fn, *sql);
    auto far = pg_instance::scalar(
        url, "SELECT max(off) FROM public.windows w, sluice_telemetry.unpack_window(w.d, w.v, w.f) WHERE w.id = 5");
    ASSERT_TRUE(far);
    EXPECT_EQ(*far, "6000000000");  // offsets beyond int4
}

// The language unpack_window is defined in.
std::string unpack_language(const std::string& url) {
    auto r =
        pg_instance::scalar(url,
                            "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = "
                            "'sluice_telemetry.unpack_window(int4[], float8[], int2[])'::regprocedure");
    return r ? *r : std::string();
}

TEST_P(readings_test, unpack_window_in_c_returns_what_the_sql_decoding_does) {
    start();
    EXPECT_EQ(unpack_language(url_), "c");
    ASSERT_TRUE(pg_instance::query(url_, k_windows));
    expect_unpack_is_the_sql_decoding(url_);
    // Malformed rows are refused with what is wrong.
    pg::connection conn(url_, std::chrono::seconds(10), "test");
    ASSERT_TRUE(conn.ensure());
    ASSERT_TRUE(
        conn.exec("CREATE FUNCTION pg_temp.failure(q text) RETURNS text LANGUAGE plpgsql AS $$ "
                  "BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END $$"));
    auto failure = [&](const std::string& args) {
        const std::string sql =
            "SELECT pg_temp.failure('SELECT count(*) FROM sluice_telemetry.unpack_window(" + args + ")')";
        auto r = conn.query(sql.c_str());
        EXPECT_TRUE(r) << args;
        return r ? std::string(r->get(0, 0)) : std::string();
    };
    EXPECT_EQ(failure("''{1,2}'', ''{1}'', NULL"),
              "unpack_window: time_deltas, vals and flags have different lengths (2, 1, 2)");
    EXPECT_EQ(failure("''{1,2}'', ''{1,2}'', ''{0}''"),
              "unpack_window: time_deltas, vals and flags have different lengths (2, 2, 1)");
    EXPECT_EQ(failure("''{1,NULL}'', ''{1,2}'', NULL"), "unpack_window: time_deltas contains NULL");
    EXPECT_EQ(failure("''{1,2}'', ''{NULL,2}'', NULL"), "unpack_window: vals contains NULL");
    EXPECT_EQ(failure("''{1,2}'', ''{1,2}'', ''{0,NULL}''"), "unpack_window: flags contains NULL");
    EXPECT_EQ(failure("''{{1,2},{3,4}}'', ''{1,2,3,4}'', NULL"),
              "unpack_window: time_deltas has 2 dimensions, expected 1");
    EXPECT_EQ(failure("NULL, ''{1}'', NULL"), "no error");  // no rows, as unnest of NULL
}

TEST_P(readings_test, unpack_window_without_the_module_is_the_sql_decoding) {
    start(/*readings_module=*/false);
    EXPECT_EQ(unpack_language(url_), "sql");
    ASSERT_TRUE(pg_instance::query(url_, k_windows));
    expect_unpack_is_the_sql_decoding(url_);
    // The module's C-only functions are not there either.
    EXPECT_EQ(scalar("SELECT to_regprocedure('sluice_telemetry.decode_window(timestamptz, int4[], float8[], "
                     "int2[])') IS NULL"),
              "t");
}

// With the module, the readings views decode with decode_window (each reading's time in C,
// decode_window.c) instead of unpack_window plus interval arithmetic per row; the rows are
// the same, and a time condition filters a plain column.
TEST_P(readings_test, views_decode_reading_times_in_c_with_the_module) {
    start();
    ASSERT_TRUE(pg_instance::query(url_, k_windows));
    const char* decoded =
        "SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', w.id, x.i, x.time, x.value, x.flags), ',' "
        "ORDER BY w.id, x.i)) FROM public.windows w CROSS JOIN LATERAL sluice_telemetry.decode_window("
        "timestamptz '2026-01-01 00:00:00.000001+00' + w.id * interval '1 day', w.d, w.v, w.f) "
        "WITH ORDINALITY x(time, value, flags, i)";
    const char* by_offsets =
        "SELECT count(*) || ' ' || md5(string_agg(concat_ws(':', w.id, x.i, timestamptz '2026-01-01 "
        "00:00:00.000001+00' + w.id * interval '1 day' + x.off * interval '1 microsecond', x.value, x.flags), ',' "
        "ORDER BY w.id, x.i)) FROM public.windows w CROSS JOIN LATERAL sluice_telemetry.unpack_window(w.d, w.v, "
        "w.f) WITH ORDINALITY x(off, value, flags, i)";
    EXPECT_EQ(scalar(decoded), scalar(by_offsets));
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.decode_window(NULL, '{1,2}', '{1,2}', NULL) x "
                     "WHERE x.time IS NULL"),
              "2");
    EXPECT_FALSE(pg_instance::scalar(url_,
                                     "SELECT count(*) FROM sluice_telemetry.decode_window("
                                     "'294276-12-31 23:59:59+00', '{1000000,1}', '{1,2}', NULL)"));
    EXPECT_FALSE(pg_instance::scalar(url_,
                                     "SELECT count(*) FROM sluice_telemetry.decode_window("
                                     "'2026-01-01', '{1,2}', '{1}', NULL)"));

    const int64_t end = today_midnight();
    load(end, 2);
    const std::string range =
        "time >= " + ts(end - k_day + 3 * k_hour_us) + " AND time < " + ts(end - k_day + 4 * k_hour_us + 90'000'000);
    const std::vector<std::string> queries = {
        "SELECT time, value FROM sluice_telemetry.readings WHERE device = 'press-1' AND metric = 'pressure' AND " +
            range + " ORDER BY time",
        "SELECT device, metric, time, value, unit, flags FROM sluice_telemetry.readings WHERE " + range,
        "SELECT time, device_id, metric_id, value, flags FROM sluice_telemetry.telemetry WHERE " + range,
        "SELECT extract(epoch FROM time), value FROM sluice_telemetry.readings WHERE device = 'oven-7' AND " + range +
            " ORDER BY time DESC LIMIT 50",
    };
    for (const std::string& q : queries) {
        scanned(q);
        EXPECT_NE(last_plan_.find("decode_window"), std::string::npos) << q << "\n" << last_plan_;
        EXPECT_EQ(last_plan_.find("unpack_window"), std::string::npos) << q << "\n" << last_plan_;
        EXPECT_EQ(last_plan_.find("00:00:00.000001"), std::string::npos) << q << "\n" << last_plan_;
        scanned(q, "SET sluice_readings.enabled = off; ");
        EXPECT_NE(last_plan_.find("unpack_window"), std::string::npos) << q << "\n" << last_plan_;
    }
    expect_same_rows_with_module_on_and_off("UTC", queries);
    expect_same_rows_with_module_on_and_off("America/St_Johns", queries);
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
    // The batch form the pipeline uses for new names of a JSON burst, too (it used to
    // leave them out of the dictionary until the next periodic reload).
    auto burst = (*r)->ensure_metrics({"torque", "rpm"});
    ASSERT_TRUE(burst);
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT string_agg(name, ',' ORDER BY name) FROM sluice_telemetry.metric_names")
                  .value(),
              "rpm,torque");
    // Names are not in the telemetry database's sluice_app (it has none).
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT to_regclass('sluice_app.devices') IS NULL").value(), "t");
    // Written readings are visible by name.
    std::vector<row> rows = {{1'767'225'600'000'000, d->id, *m, 1500.0, 0}};
    ASSERT_TRUE((*s)->write_batch(rows, {}, {}));
    EXPECT_EQ(pg_instance::scalar(*tel, "SELECT device || '/' || metric || '/' || value FROM sluice_telemetry.readings")
                  .value(),
              "press-9/rpm/1500");
}

// Pipeline workers starting together on a fresh database load the dictionary at once: each
// copies the same names into it, and none may fail on the name's unique index (23505 with
// the former ON CONFLICT (id): it only waited for the other transaction on the id index).
TEST(readings_names, workers_loading_the_dictionary_at_once_do_not_collide) {
    auto inst = pg_instance::start();
    ASSERT_TRUE(inst);
    auto db = (*inst)->create_database("names_race");
    ASSERT_TRUE(db);
    store_options o;
    o.telemetry_url = o.app_url = *db;
    auto s = open_postgres(o);
    ASSERT_TRUE(s && (*s)->migrate());
    auto first = open_registry(o);
    ASSERT_TRUE(first);
    std::vector<std::string> metrics;
    std::vector<registry::device_request> devices;
    for (int i = 0; i < 300; ++i) {
        metrics.push_back("metric_" + std::to_string(i));
        devices.push_back({"dev-" + std::to_string(i), "", ""});
    }
    ASSERT_TRUE((*first)->ensure_metrics(metrics));
    ASSERT_TRUE((*first)->ensure_devices(devices));
    constexpr int k_workers = 4;
    std::vector<std::unique_ptr<registry>> workers;
    for (int w = 0; w < k_workers; ++w) {
        auto r = open_registry(o);
        ASSERT_TRUE(r);
        workers.push_back(std::move(*r));
    }
    for (int round = 0; round < 15; ++round) {
        ASSERT_TRUE(pg_instance::scalar(*db,
                                        "WITH a AS (DELETE FROM sluice_telemetry.metric_names), "
                                        "b AS (DELETE FROM sluice_telemetry.device_names) SELECT 1"));
        std::latch go(k_workers);
        std::vector<std::string> failures(k_workers);
        std::vector<std::thread> threads;
        threads.reserve(k_workers);
        for (int w = 0; w < k_workers; ++w)
            threads.emplace_back([&, w] {
                go.arrive_and_wait();
                if (auto m = workers[w]->load_metrics(); !m) failures[w] += "metrics: " + m.error().message() + "; ";
                if (auto d = workers[w]->load_devices(); !d) failures[w] += "devices: " + d.error().message();
            });
        for (auto& t : threads)
            t.join();
        for (int w = 0; w < k_workers; ++w)
            EXPECT_EQ(failures[w], "") << "round " << round << ", worker " << w;
        EXPECT_EQ(pg_instance::scalar(*db, "SELECT count(*) FROM sluice_telemetry.metric_names").value(), "300");
        EXPECT_EQ(pg_instance::scalar(*db, "SELECT count(*) FROM sluice_telemetry.device_names").value(), "300");
        if (HasFailure()) break;
    }
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
