// SPDX-License-Identifier: Apache-2.0
//
// The database routes over the store's PostgreSQL read session (store/query.h), against
// a private PostgreSQL (tests/support/pg_instance.h) filled through the real store, on
// both layouts: results, bounds, hostile parameters, reconnection after a database
// restart, and that the session cannot write (issue 12). The routes' own logic, with no
// database, is in routes_test.cc.
#include "http/api.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "http/json.h"
#include "http/server.h"
#include "http/tests/loopback_client.h"
#include "store/query.h"
#include "store/registry.h"
#include "store/store.h"
#include "tests/support/pg_instance.h"

namespace sluice::http {
namespace {

using loopback::get_status_body;
using loopback::http_get;
using store::probe_postgres_query;
using store::query_probe;

// Every database test runs on both store layouts (native partitions, TimescaleDB
// hypertable); the TimescaleDB runs are skipped, with the reason, where it is not installed.
class api_db_test : public ::testing::TestWithParam<store::layout_choice> {
protected:
    bool timescale() const { return GetParam() == store::layout_choice::timescale; }

    void SetUp() override {
        if (timescale() && !test::timescale_installed()) GTEST_SKIP() << test::timescale_skip_reason();
        test::pg_instance_options po;
        po.timescale = timescale();
        auto inst = test::pg_instance::start(po);
        ASSERT_TRUE(inst) << inst.error().message();
        pg_ = std::move(*inst);
        auto db = pg_->create_database("api");
        ASSERT_TRUE(db);
        url_ = *db;
        store::store_options o;
        o.telemetry_url = url_;
        o.app_url = url_;
        o.layout = GetParam();
        auto st = store::open_postgres(o);
        ASSERT_TRUE(st);
        store_ = std::move(*st);
        ASSERT_TRUE(store_->migrate());
        ASSERT_EQ(store_->timescale(), timescale());
        auto reg = store::open_registry(o);
        ASSERT_TRUE(reg) << reg.error().message();
        registry_ = std::move(*reg);

        port_ = loopback::start_api(server_, store::open_postgres_query({url_}));
    }
    void TearDown() override { server_.stop(); }

    std::pair<int, std::string> get(const std::string& target) { return get_status_body(port_, target); }
    std::string scalar(const std::string& sql) {
        auto r = test::pg_instance::scalar(url_, sql);
        EXPECT_TRUE(r) << sql;
        return r ? *r : std::string();
    }

    std::unique_ptr<test::pg_instance> pg_;
    std::string url_;
    std::unique_ptr<store::telemetry_store> store_;
    std::unique_ptr<store::registry> registry_;
    server server_;
    uint16_t port_ = 0;
};

TEST_P(api_db_test, devices_metrics_telemetry_and_dead_letters) {
    auto dev = registry_->ensure_device("press-7", "plant-a", "line-2");
    ASSERT_TRUE(dev);
    ASSERT_TRUE(registry_->ensure_device("idle-1", "", ""));
    auto temp = registry_->ensure_metric("temperature");
    auto hum = registry_->ensure_metric("humidity");
    ASSERT_TRUE(temp && hum);
    // 20 readings one second apart, 30 minutes ago, from a whole second.
    using namespace std::chrono;
    int64_t now_us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
    int64_t base = (now_us - 30LL * 60 * 1'000'000) / 1'000'000 * 1'000'000;
    std::vector<store::row> rows;
    rows.reserve(20);
    for (int i = 0; i < 20; ++i) {
        rows.push_back(
            store::row{base + i * 1'000'000LL, dev->id, *temp, 60.0 + i, static_cast<int16_t>(i == 3 ? 1 : 0)});
    }
    std::string binary("\x00\xff\x01 bin", 7);
    std::vector<store::dead_letter> dl{
        {now_us - 2'000'000, "devices/press-7/telemetry", "c1", "{\"temperature\": \"hot\"}", "not a number"},
        {now_us - 1'000'000, "devices/x/telemetry", "c\"2", binary, "unrecognized payload"}};
    ASSERT_TRUE(store_->write_batch(rows, dl, {}));

    auto [ds, devices] = get("/api/devices");
    EXPECT_EQ(ds, 200);
    // Ordered by key; idle-1 has no reading, press-7's last is the 20th reading.
    auto idle = devices.find("\"key\":\"idle-1\"");
    auto press = devices.find("\"key\":\"press-7\"");
    ASSERT_NE(idle, std::string::npos) << devices;
    ASSERT_NE(press, std::string::npos) << devices;
    EXPECT_LT(idle, press);
    EXPECT_NE(devices.find("\"site\":\"plant-a\",\"line\":\"line-2\""), std::string::npos) << devices;
    std::string last_iso = scalar("SELECT to_char(to_timestamp(" + std::to_string(base + 19'000'000) +
                                  " / 1e6) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    EXPECT_NE(devices.find("\"last_reading\":\"" + last_iso + "\"}"), std::string::npos) << devices << " " << last_iso;
    EXPECT_NE(devices.substr(idle, press - idle).find("\"last_reading\":null"), std::string::npos) << devices;
    EXPECT_EQ(get("/api/devices?limit=1").second.find("press-7"), std::string::npos);

    auto [ms, metrics] = get("/api/metrics?device=press-7");
    EXPECT_EQ(ms, 200);
    EXPECT_NE(metrics.find("\"name\":\"temperature\""), std::string::npos) << metrics;
    EXPECT_EQ(metrics.find("humidity"), std::string::npos) << "humidity has no readings: " << metrics;
    EXPECT_NE(get("/api/metrics").second.find("humidity"), std::string::npos);

    // Raw, default range (the last hour): all 20 in time order, with flags.
    auto [ts, raw] = get("/api/telemetry?device=press-7&metric=temperature");
    EXPECT_EQ(ts, 200) << raw;
    EXPECT_NE(raw.find("\"truncated\":false"), std::string::npos) << raw;
    EXPECT_NE(raw.find("\"value\":60,\"flags\":0}"), std::string::npos) << raw;
    EXPECT_NE(raw.find("\"value\":63,\"flags\":1}"), std::string::npos) << raw;
    EXPECT_LT(raw.find("\"value\":60,"), raw.find("\"value\":79,"));
    size_t points = 0;
    for (size_t at = raw.find("\"time\":"); at != std::string::npos; at = raw.find("\"time\":", at + 1))
        ++points;
    EXPECT_EQ(points, 20u);
    // A limit truncates and says so; a range that excludes the readings is empty.
    auto limited = get("/api/telemetry?device=press-7&metric=temperature&limit=5").second;
    EXPECT_NE(limited.find("\"truncated\":true"), std::string::npos);
    EXPECT_NE(limited.find("\"value\":64,"), std::string::npos);
    EXPECT_EQ(limited.find("\"value\":65,"), std::string::npos);
    auto empty =
        get("/api/telemetry?device=press-7&metric=temperature&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z");
    EXPECT_NE(empty.second.find("\"from\":\"2020-01-01T00:00:00.000Z\""), std::string::npos) << empty.second;
    EXPECT_NE(empty.second.find("\"points\":[]"), std::string::npos) << empty.second;

    // Rollups: counts add up to 20, extremes are 60 and 79.
    for (const char* res : {"1h", "1d"}) {
        auto [rs, body] = get(std::string("/api/telemetry?device=press-7&metric=temperature&resolution=") + res +
                              "&from=" + scalar("SELECT to_char(now() - interval '2 days', 'YYYY-MM-DD')"));
        EXPECT_EQ(rs, 200) << body;
        EXPECT_NE(body.find("\"min\":60"), std::string::npos) << res << body;
        EXPECT_NE(body.find("\"max\":79"), std::string::npos) << res << body;
        if (body.find("\"count\":20}") == std::string::npos) {  // split over two buckets
            EXPECT_NE(body.find("},{\"bucket\""), std::string::npos) << res << body;
        }
    }

    // Dead letters: newest first, text preview for text, base64 for everything.
    auto [dls, dead] = get("/api/dead-letters?limit=10");
    EXPECT_EQ(dls, 200);
    EXPECT_LT(dead.find("\"client_id\":\"c\\\"2\""), dead.find("\"client_id\":\"c1\"")) << dead;
    EXPECT_NE(dead.find("\"payload_text\":\"{\\\"temperature\\\": \\\"hot\\\"}\""), std::string::npos) << dead;
    EXPECT_NE(dead.find("\"payload_bytes\":7,\"payload_truncated\":false,\"payload_text\":null,\"payload_base64\":\"" +
                        base64_encode(binary) + "\""),
              std::string::npos)
        << dead;
    EXPECT_EQ(get("/api/dead-letters?limit=1").second.find("\"c1\""), std::string::npos);
}

TEST_P(api_db_test, hostile_and_invalid_parameters) {
    ASSERT_TRUE(registry_->ensure_device("press-7", "", ""));
    ASSERT_TRUE(registry_->ensure_metric("temperature"));
    // Values are parameters, never SQL: these are just unknown names.
    for (const char* device : {"x'%20OR%20'1'='1", "press-7';%20DROP%20TABLE%20sluice_app.devices;--", "%00"}) {
        auto [s, body] = get(std::string("/api/telemetry?metric=temperature&device=") + device);
        EXPECT_TRUE(s == 404 || s == 400) << device << " " << s << " " << body;
    }
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_app.devices"), "1");
    auto [us, unknown] = get("/api/telemetry?device=press-7&metric=pressure");
    EXPECT_EQ(us, 404);
    EXPECT_EQ(unknown, "{\"error\":\"unknown metric\",\"metric\":\"pressure\"}\n");
    EXPECT_EQ(get("/api/telemetry?device=press-7&metric=temperature&from=not-a-time").first, 400);
    EXPECT_EQ(get("/api/telemetry?device=press-7&metric=temperature&to=2026-13-45").first, 400);
    EXPECT_EQ(get("/api/telemetry?device=press-7&metric=temperature&limit=10001").first, 400);
    EXPECT_EQ(get("/api/devices?limit=-1").first, 400);
    // The connection survived the rejected queries.
    EXPECT_EQ(get("/api/devices").first, 200);
}

TEST_P(api_db_test, database_restart_gives_503_then_reconnects) {
    ASSERT_TRUE(registry_->ensure_device("press-7", "", ""));
    EXPECT_EQ(get("/api/devices").first, 200);  // connected
    ASSERT_TRUE(pg_->stop());
    auto [s, body] = get("/api/devices");
    EXPECT_EQ(s, 503) << body;
    EXPECT_NE(body.find("\"error\":\"database unavailable\""), std::string::npos) << body;
    // libpq's and PostgreSQL's own text goes to the log, never to the client (issue 12).
    EXPECT_EQ(body.find("detail"), std::string::npos) << body;
    EXPECT_EQ(get("/api/overview").first, 200);  // needs no database
    ASSERT_TRUE(pg_->restart());
    // After the connect back-off (2 s) the next request reconnects.
    int status = 0;
    for (int i = 0; i < 50 && status != 200; ++i) {
        status = get("/api/devices").first;
        if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(status, 200);
}

// Issue 12: the API's session cannot write. Both guards are shown on their own: with
// the session exactly as the routes set it up, every write is refused as a write in a
// read-only transaction (25006); with read-only switched off in that same session (as
// injected SQL could), the role still refuses each write for lack of privilege (42501),
// on the tables, views, partitions or chunks created after the set-up, and DDL too.
TEST_P(api_db_test, session_runs_as_the_reader_role_and_cannot_write) {
    auto dev = registry_->ensure_device("press-7", "", "");
    auto temp = registry_->ensure_metric("temperature");
    ASSERT_TRUE(dev && temp);
    using namespace std::chrono;
    int64_t now_us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
    // Readings today and three days ago: partitions/chunks created after the set-up ran.
    std::vector<store::row> rows{{now_us - 60'000'000, dev->id, *temp, 1.5, 0},
                                 {now_us - 3 * 86'400'000'000LL, dev->id, *temp, 2.5, 0}};
    std::vector<store::dead_letter> dl{{now_us, "devices/x/telemetry", "c1", "x", "bad"}};
    ASSERT_TRUE(store_->write_batch(rows, dl, {}));
    // The newest partition (native) or chunk (TimescaleDB) of the packed readings.
    std::string child =
        scalar(timescale() ? "SELECT max(c::text) FROM show_chunks('sluice_telemetry.telemetry_packed') c"
                           : "SELECT max(inhrelid::regclass::text) FROM pg_inherits"
                             " WHERE inhparent = 'sluice_telemetry.telemetry_packed'::regclass");
    ASSERT_FALSE(child.empty());
    ASSERT_EQ(scalar("SELECT count(*) FROM " + child), "1");

    const std::vector<std::string> writes = {
        "INSERT INTO sluice_app.devices (key, name) VALUES ('evil', 'evil')",
        "UPDATE sluice_app.metrics SET unit = 'evil'",
        "DELETE FROM sluice_telemetry.dead_letters",
        "UPDATE sluice_telemetry.sluice_offsets SET next_offset = 0",
        "INSERT INTO sluice_telemetry.telemetry_1h_state SELECT * FROM sluice_telemetry.telemetry_1h_state",
        "DELETE FROM " + child,
        "TRUNCATE sluice_telemetry.telemetry_packed",
        "CREATE TABLE sluice_telemetry.evil (a int)",
        "CREATE TABLE public.evil (a int)",
        "DROP VIEW sluice_telemetry.readings",
        "ALTER TABLE sluice_app.devices ADD COLUMN evil int",
        "SELECT sluice_telemetry.compact_windows('-infinity', 'infinity')",
    };
    const std::vector<std::string> reads = {
        "SELECT count(*) FROM sluice_app.devices",
        "SELECT count(*) FROM sluice_telemetry.readings",
        "SELECT count(*) FROM " + child,
        "SELECT count(*) FROM sluice_telemetry.telemetry_1d",
        "SELECT count(*) FROM sluice_telemetry.dead_letters",
    };
    std::vector<std::string> statements = {"SELECT current_user", "SHOW default_transaction_read_only"};
    statements.insert(statements.end(), reads.begin(), reads.end());
    statements.insert(statements.end(), writes.begin(), writes.end());
    statements.push_back("SET default_transaction_read_only = off");
    statements.insert(statements.end(), writes.begin(), writes.end());
    statements.insert(statements.end(), reads.begin(), reads.end());
    // (nextval checks the privilege before the transaction's read-only state.)
    statements.push_back("SELECT nextval(pg_get_serial_sequence('sluice_app.devices', 'id'))");

    query_probe p = probe_postgres_query(url_, statements);
    ASSERT_TRUE(p.connected);
    EXPECT_TRUE(p.reader_role);
    ASSERT_EQ(p.steps.size(), statements.size());
    size_t i = 0;
    EXPECT_EQ(p.steps[i++].value, "sluice_reader");
    EXPECT_EQ(p.steps[i++].value, "on");
    for (size_t k = 0; k < reads.size(); ++k, ++i) {
        EXPECT_EQ(p.steps[i].sqlstate, "") << statements[i];
        EXPECT_NE(p.steps[i].value, "0") << statements[i];
    }
    for (size_t k = 0; k < writes.size(); ++k, ++i)
        EXPECT_EQ(p.steps[i].sqlstate, "25006") << "read-only transaction: " << statements[i];
    EXPECT_EQ(p.steps[i++].sqlstate, "");  // SET default_transaction_read_only = off
    for (size_t k = 0; k < writes.size(); ++k, ++i)
        EXPECT_EQ(p.steps[i].sqlstate, "42501") << "role without privilege: " << statements[i];
    for (size_t k = 0; k < reads.size(); ++k, ++i)
        EXPECT_EQ(p.steps[i].sqlstate, "") << statements[i];
    EXPECT_EQ(p.steps[i++].sqlstate, "42501") << "nextval";

    // Nothing changed, and the routes still answer with the data through that session.
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_app.devices"), "1");
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.dead_letters"), "1");
    EXPECT_EQ(scalar("SELECT count(*) FROM sluice_telemetry.telemetry_packed"), "2");
    EXPECT_EQ(scalar("SELECT unit FROM sluice_app.metrics"), "");
    EXPECT_EQ(scalar("SELECT to_regclass('sluice_telemetry.evil') IS NULL AND to_regclass('public.evil') IS NULL"),
              "t");
    auto [ds, devices] = get("/api/devices");
    EXPECT_EQ(ds, 200) << devices;
    EXPECT_NE(devices.find("\"key\":\"press-7\""), std::string::npos) << devices;
    EXPECT_EQ(devices.find("\"last_reading\":null"), std::string::npos) << devices;
    auto [ts, raw] = get("/api/telemetry?device=press-7&metric=temperature");
    EXPECT_EQ(ts, 200) << raw;
    EXPECT_NE(raw.find("\"value\":1.5"), std::string::npos) << raw;
    EXPECT_EQ(get("/api/dead-letters").first, 200);
}

// Schema set-up is idempotent: the role is created once, granted once, and every
// re-run (sequential and concurrent) leaves it as it was and the API working.
TEST_P(api_db_test, reader_role_setup_is_idempotent) {
    auto role_state = [&] {
        return scalar(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'sluice_reader') || ' ' ||"
            " (SELECT rolcanlogin::text || rolsuper::text || rolcreaterole::text FROM pg_roles"
            "  WHERE rolname = 'sluice_reader') || ' ' ||"
            " (SELECT count(*) FROM pg_auth_members WHERE roleid = 'sluice_reader'::regrole) || ' ' ||"
            " (SELECT string_agg(n || ':' || has_schema_privilege('sluice_reader', n, 'USAGE'), ',' ORDER BY n)"
            "  FROM unnest(ARRAY['sluice_app', 'sluice_telemetry']) n) || ' ' ||"
            " (SELECT count(*) FROM pg_class c WHERE c.relnamespace IN ('sluice_app'::regnamespace,"
            "  'sluice_telemetry'::regnamespace) AND c.relkind IN ('r', 'p', 'v')"
            "  AND NOT has_table_privilege('sluice_reader', c.oid, 'SELECT')) || ' ' ||"
            " (SELECT count(*) FROM pg_class c WHERE c.relnamespace IN ('sluice_app'::regnamespace,"
            "  'sluice_telemetry'::regnamespace) AND c.relkind IN ('r', 'p')"
            "  AND has_table_privilege('sluice_reader', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))");
    };
    // 1 role; cannot log in, not superuser, no CREATEROLE; granted to postgres only;
    // USAGE on both schemas; SELECT on every table and view; no write privilege.
    const std::string expected = "1 falsefalsefalse 1 sluice_app:true,sluice_telemetry:true 0 0";
    EXPECT_EQ(role_state(), expected);
    ASSERT_TRUE(store_->migrate());
    ASSERT_TRUE(registry_->migrate());
    EXPECT_EQ(role_state(), expected);
    store::store_options o;
    o.telemetry_url = url_;
    o.app_url = url_;
    o.layout = GetParam();
    std::vector<std::thread> threads;
    threads.reserve(3);
    for (int k = 0; k < 3; ++k) {
        threads.emplace_back([&o] {
            auto st = store::open_postgres(o);
            ASSERT_TRUE(st);
            EXPECT_TRUE((*st)->migrate());
            EXPECT_TRUE(store::open_registry(o));
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(role_state(), expected);
    // The step itself says all is well on a re-run (it is also what migrate() ran).
    query_probe p = probe_postgres_query(url_, {"SELECT current_user"});
    ASSERT_TRUE(p.connected);
    EXPECT_TRUE(p.reader_role);
    EXPECT_EQ(get("/api/devices").first, 200);
}

INSTANTIATE_TEST_SUITE_P(layouts, api_db_test,
                         ::testing::Values(store::layout_choice::native, store::layout_choice::timescale),
                         [](const ::testing::TestParamInfo<store::layout_choice>& p) {
                             return std::string(p.param == store::layout_choice::timescale ? "timescale" : "native");
                         });

// A database user without CREATEROLE (and not a superuser; owner of its database): the
// schema set-up cannot create the role, says so and goes on; the API serves with
// read-only transactions as that user (the documented fallback). Once an administrator
// creates the role and grants it, the next set-up grants it SELECT and a new API session
// uses it. On TimescaleDB the owner creates the (trusted) extension itself, which also
// checks that a non-superuser sees that TimescaleDB is preloaded.
class api_reader_role : public ::testing::TestWithParam<store::layout_choice> {};

TEST_P(api_reader_role, user_without_createrole_falls_back_to_read_only_transactions) {
    const bool timescale = GetParam() == store::layout_choice::timescale;
    if (timescale && !test::timescale_installed()) GTEST_SKIP() << test::timescale_skip_reason();
    test::pg_instance_options po;
    po.timescale = timescale;
    auto inst = test::pg_instance::start(po);
    ASSERT_TRUE(inst) << inst.error().message();
    auto& pg = **inst;
    const std::string admin = pg.url("postgres");
    ASSERT_TRUE(test::pg_instance::query(admin, "CREATE ROLE sluice_owner LOGIN"));
    ASSERT_TRUE(test::pg_instance::query(admin, "CREATE DATABASE plain OWNER sluice_owner"));
    const std::string url = pg.url("plain") + " user=sluice_owner";

    store::store_options o;
    o.telemetry_url = url;
    o.app_url = url;
    o.layout = GetParam();
    auto st = store::open_postgres(o);
    ASSERT_TRUE(st);
    ASSERT_TRUE((*st)->migrate());  // the role step's failure does not fail the migration
    EXPECT_EQ((*st)->timescale(), timescale);
    auto reg = store::open_registry(o);
    ASSERT_TRUE(reg) << reg.error().message();
    EXPECT_EQ(*test::pg_instance::scalar(admin, "SELECT count(*) FROM pg_roles WHERE rolname = 'sluice_reader'"), "0");
    auto dev = (*reg)->ensure_device("press-7", "", "");
    ASSERT_TRUE(dev);

    server s;
    uint16_t port = loopback::start_api(s, store::open_postgres_query({url}));
    std::string body = http_get(port, "/api/devices");
    EXPECT_NE(body.find("HTTP/1.1 200"), std::string::npos) << body;
    EXPECT_NE(body.find("\"key\":\"press-7\""), std::string::npos) << body;

    const std::vector<std::string> statements = {"SELECT current_user",
                                                 "INSERT INTO sluice_app.devices (key, name) VALUES ('evil', 'evil')",
                                                 "CREATE TABLE sluice_telemetry.evil (a int)"};
    query_probe p = probe_postgres_query(url, statements);
    ASSERT_TRUE(p.connected);
    EXPECT_FALSE(p.reader_role);
    ASSERT_EQ(p.steps.size(), 3u);
    EXPECT_EQ(p.steps[0].value, "sluice_owner");
    EXPECT_EQ(p.steps[1].sqlstate, "25006");
    EXPECT_EQ(p.steps[2].sqlstate, "25006");

    // An administrator creates the role and grants it; the owner's next start grants SELECT.
    ASSERT_TRUE(
        test::pg_instance::query(admin, "CREATE ROLE sluice_reader NOLOGIN; GRANT sluice_reader TO sluice_owner"));
    ASSERT_TRUE((*st)->migrate());
    ASSERT_TRUE((*reg)->migrate());
    p = probe_postgres_query(url, statements);
    ASSERT_TRUE(p.connected);
    EXPECT_TRUE(p.reader_role);
    ASSERT_EQ(p.steps.size(), 3u);
    EXPECT_EQ(p.steps[0].value, "sluice_reader");
    EXPECT_EQ(p.steps[1].sqlstate, "25006");
    EXPECT_EQ(*test::pg_instance::scalar(admin,
                                         "SELECT count(*) FROM pg_auth_members"
                                         " WHERE roleid = 'sluice_reader'::regrole"),
              "1");
    EXPECT_EQ(*test::pg_instance::scalar(pg.url("plain"),
                                         "SET ROLE sluice_reader;"
                                         " SELECT count(*) FROM sluice_app.devices"),
              "1");
    s.stop();
}

INSTANTIATE_TEST_SUITE_P(layouts, api_reader_role,
                         ::testing::Values(store::layout_choice::native, store::layout_choice::timescale),
                         [](const ::testing::TestParamInfo<store::layout_choice>& p) {
                             return std::string(p.param == store::layout_choice::timescale ? "timescale" : "native");
                         });

}  // namespace
}  // namespace sluice::http
