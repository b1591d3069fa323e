// SPDX-License-Identifier: Apache-2.0
//
// The API's routes over a real server, with no database: the store's read interface is
// an in-memory double (store/query.h is abstract), so parameter checks, the requests
// the routes make of the store, the JSON shapes and the status of every error are
// checked here exactly. The PostgreSQL implementation behind the same routes is
// checked in api_test.cc.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "bus/errc.h"
#include "http/api.h"
#include "http/json.h"
#include "http/metric_names.h"
#include "http/server.h"
#include "http/tests/loopback_client.h"

namespace sluice::http {
namespace {

using loopback::get_status_body;
using loopback::http_get;

// Canned answers, and the questions asked; `fail` makes every call return that error.
class memory_query final : public store::telemetry_query {
public:
    std::vector<store::device_info> device_rows;
    std::vector<store::metric_info> metric_rows;
    store::series series_answer;
    std::vector<store::dead_letter_info> dead_letter_rows;
    std::vector<store::stored_offset> offset_rows;
    std::error_code fail;

    int calls = 0;
    int last_limit = 0;
    std::optional<std::string> last_device_key;
    store::series_request last_series;
    int last_preview = 0;
    std::string last_consumer;

    result<std::vector<store::device_info>> devices(int limit) override {
        ++calls;
        last_limit = limit;
        if (fail) return fail;
        return device_rows;
    }
    result<std::vector<store::metric_info>> metrics(std::optional<std::string_view> device_key) override {
        ++calls;
        last_device_key = device_key ? std::optional<std::string>(*device_key) : std::nullopt;
        if (fail) return fail;
        return metric_rows;
    }
    result<store::series> read_series(const store::series_request& request) override {
        ++calls;
        last_series = request;
        if (fail) return fail;
        return series_answer;
    }
    result<std::vector<store::dead_letter_info>> dead_letters(int limit, int preview_bytes) override {
        ++calls;
        last_limit = limit;
        last_preview = preview_bytes;
        if (fail) return fail;
        return dead_letter_rows;
    }
    result<std::vector<store::stored_offset>> offsets(std::string_view consumer) override {
        ++calls;
        last_consumer = consumer;
        if (fail) return fail;
        return offset_rows;
    }
};

TEST(api_routes, overview_static_files_and_no_database) {
    auto root = std::filesystem::temp_directory_path() / ("sluice_api_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(root / "sub");
    std::ofstream(root / "index.html") << "<!doctype html><title>t</title>";
    std::ofstream(root / "app.js") << "console.log(1)";
    std::ofstream(root.parent_path() / ("sluice_api_secret_" + std::to_string(::getpid()))) << "secret";

    server s;
    api_config cfg;
    // No database (query is null): the database routes must answer 503, the rest work.
    cfg.metrics = [] {
        metrics_snapshot m;
        m.gauge(metric_names::mqtt_connections, "c", 2);
        m.counter(metric_names::mqtt_messages_received, "r", 9);
        return m;
    };
    cfg.web_root = root.string();
    register_api(s, std::move(cfg));
    auto port = s.start("127.0.0.1", 0);
    ASSERT_TRUE(port);

    auto ov = http_get(*port, "/api/overview");
    EXPECT_NE(ov.find("HTTP/1.1 200"), std::string::npos) << ov;
    EXPECT_NE(ov.find("application/json"), std::string::npos);
    EXPECT_NE(ov.find("\"connections\":2"), std::string::npos);
    EXPECT_NE(ov.find("\"messages_in\":9"), std::string::npos);

    auto idx = http_get(*port, "/");
    EXPECT_NE(idx.find("HTTP/1.1 200"), std::string::npos);
    EXPECT_NE(idx.find("text/html"), std::string::npos);
    EXPECT_NE(idx.find("<title>t</title>"), std::string::npos);
    auto js = http_get(*port, "/static/app.js");
    EXPECT_NE(js.find("text/javascript"), std::string::npos);
    EXPECT_NE(js.find("console.log(1)"), std::string::npos);

    std::string secret = "sluice_api_secret_" + std::to_string(::getpid());
    for (const std::string& bad :
         std::vector<std::string>{"/static/../" + secret, "/static/%2e%2e/" + secret, "/static/sub",
                                  "/static/missing.js", "/static/sub/../app.js"}) {
        auto r = http_get(*port, bad);
        EXPECT_NE(r.find("HTTP/1.1 404"), std::string::npos) << bad << "\n" << r;
        EXPECT_EQ(r.find("\r\n\r\nsecret"), std::string::npos) << "file contents leaked for " << bad;
    }

    for (const char* route :
         {"/api/devices", "/api/metrics", "/api/dead-letters", "/api/telemetry?device=press-7&metric=temperature"}) {
        auto r = http_get(*port, route);
        EXPECT_NE(r.find("HTTP/1.1 503"), std::string::npos) << route << "\n" << r;
        EXPECT_NE(r.find("\"error\":\"database unavailable\""), std::string::npos) << r;
    }
    // Parameter validation happens before the database is asked.
    EXPECT_NE(http_get(*port, "/api/telemetry?device=x").find("HTTP/1.1 400"), std::string::npos);
    EXPECT_NE(http_get(*port, "/api/telemetry?device=x&metric=y&resolution=5m").find("HTTP/1.1 400"),
              std::string::npos);
    EXPECT_NE(http_get(*port, "/api/dead-letters?limit=0").find("HTTP/1.1 400"), std::string::npos);
    EXPECT_NE(http_get(*port, "/api/devices?limit=abc").find("HTTP/1.1 400"), std::string::npos);

    s.stop();
    std::filesystem::remove_all(root);
    std::filesystem::remove(root.parent_path() / secret);
}

// A server whose database routes ask a memory_query that the test owns the answers of.
class api_routes_test : public ::testing::Test {
protected:
    void SetUp() override {
        auto q = std::make_unique<memory_query>();
        query_ = q.get();
        port_ = loopback::start_api(server_, std::move(q));
    }
    void TearDown() override { server_.stop(); }

    std::pair<int, std::string> get(const std::string& target) { return get_status_body(port_, target); }

    memory_query* query_ = nullptr;
    server server_;
    uint16_t port_ = 0;
};

TEST_F(api_routes_test, devices) {
    query_->device_rows = {
        {7, "press-7", "Press \"7\"", "plant-a", "line-2", "2026-11-22T00:30:00.123Z", "2026-11-22T01:00:00.000Z"},
        {8, "idle-1", "idle-1", "", "", "2026-11-22T00:31:00.000Z", std::nullopt}};
    auto [status, body] = get("/api/devices");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(body,
              "{\"devices\":[{\"id\":7,\"key\":\"press-7\",\"name\":\"Press \\\"7\\\"\",\"site\":\"plant-a\","
              "\"line\":\"line-2\",\"created_at\":\"2026-11-22T00:30:00.123Z\",\"last_reading\":\"2026-11-22T01:00:00."
              "000Z\"},"
              "{\"id\":8,\"key\":\"idle-1\",\"name\":\"idle-1\",\"site\":\"\",\"line\":\"\","
              "\"created_at\":\"2026-11-22T00:31:00.000Z\",\"last_reading\":null}]}\n");
    EXPECT_EQ(query_->last_limit, 200);
    EXPECT_EQ(get("/api/devices?limit=1000").first, 200);
    EXPECT_EQ(query_->last_limit, 1000);
    const int asked = query_->calls;
    for (const char* bad : {"0", "1001", "-1", "abc", "5x"})
        EXPECT_EQ(get(std::string("/api/devices?limit=") + bad).first, 400) << bad;
    EXPECT_EQ(query_->calls, asked) << "parameters are checked before the store is asked";
}

TEST_F(api_routes_test, metrics_of_all_or_of_one_device) {
    query_->metric_rows = {{1, "humidity", "%"}, {2, "temperature", "°C"}};
    auto [status, body] = get("/api/metrics");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(body,
              "{\"metrics\":[{\"id\":1,\"name\":\"humidity\",\"unit\":\"%\"},"
              "{\"id\":2,\"name\":\"temperature\",\"unit\":\"°C\"}]}\n");
    EXPECT_EQ(query_->last_device_key, std::nullopt);
    EXPECT_EQ(get("/api/metrics?device=press%207").first, 200);
    EXPECT_EQ(query_->last_device_key, "press 7");
    EXPECT_EQ(get("/api/metrics?device=").first, 200);  // empty is absent
    EXPECT_EQ(query_->last_device_key, std::nullopt);
}

TEST_F(api_routes_test, telemetry_raw_and_rollups) {
    store::series& s = query_->series_answer;
    s.from = "2026-11-22T00:00:00.000Z";
    s.to = "2026-11-22T01:00:00.000Z";
    s.truncated = true;
    s.readings = {{"2026-11-22T00:00:01.000Z", 60, 0},
                  {"2026-11-22T00:00:02.500Z", std::numeric_limits<double>::quiet_NaN(), 1}};
    auto [status, body] = get("/api/telemetry?device=press-7&metric=temperature&from=2026-11-22T00:00:00Z&limit=2");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(body,
              "{\"device\":\"press-7\",\"metric\":\"temperature\",\"resolution\":\"raw\","
              "\"from\":\"2026-11-22T00:00:00.000Z\",\"to\":\"2026-11-22T01:00:00.000Z\",\"truncated\":true,"
              "\"points\":[{\"time\":\"2026-11-22T00:00:01.000Z\",\"value\":60,\"flags\":0},"
              "{\"time\":\"2026-11-22T00:00:02.500Z\",\"value\":null,\"flags\":1}]}\n");
    const store::series_request& r = query_->last_series;
    EXPECT_EQ(r.device_key, "press-7");
    EXPECT_EQ(r.metric_name, "temperature");
    EXPECT_EQ(r.from, "2026-11-22T00:00:00Z");  // passed as written: the store parses it
    EXPECT_EQ(r.to, std::nullopt);
    EXPECT_EQ(r.resolution, store::series_resolution::raw);
    EXPECT_EQ(r.limit, 2);

    s.readings.clear();
    s.truncated = false;
    s.from.reset();  // a bound the store cannot format (-infinity)
    s.buckets = {{"2026-11-22T00:00:00.000Z", 69.5, 60, 79, 20}};
    auto [hs, hourly] = get("/api/telemetry?device=press-7&metric=temperature&resolution=1h&to=now");
    EXPECT_EQ(hs, 200);
    EXPECT_EQ(
        hourly,
        "{\"device\":\"press-7\",\"metric\":\"temperature\",\"resolution\":\"1h\",\"from\":null,"
        "\"to\":\"2026-11-22T01:00:00.000Z\",\"truncated\":false,\"points\":[{\"bucket\":\"2026-11-22T00:00:00.000Z\","
        "\"avg\":69.5,\"min\":60,\"max\":79,\"count\":20}]}\n");
    EXPECT_EQ(query_->last_series.resolution, store::series_resolution::hour);
    EXPECT_EQ(query_->last_series.to, "now");
    EXPECT_EQ(query_->last_series.limit, 10000);
    EXPECT_EQ(get("/api/telemetry?device=press-7&metric=temperature&resolution=1d").first, 200);
    EXPECT_EQ(query_->last_series.resolution, store::series_resolution::day);
}

TEST_F(api_routes_test, telemetry_refusals) {
    const int asked = query_->calls;
    EXPECT_EQ(get("/api/telemetry?device=x").second,
              "{\"error\":\"bad request\",\"detail\":\"device and metric are required\"}\n");
    EXPECT_EQ(get("/api/telemetry?device=x&metric=y&resolution=5m").second,
              "{\"error\":\"bad request\",\"detail\":\"resolution must be raw, 1h or 1d\"}\n");
    EXPECT_EQ(get("/api/telemetry?device=x&metric=y&limit=10001").second,
              "{\"error\":\"bad request\",\"detail\":\"limit must be an integer in 1..10000\"}\n");
    EXPECT_EQ(query_->calls, asked);

    query_->series_answer.status = store::series::lookup::unknown_device;
    EXPECT_EQ(get("/api/telemetry?device=x%22&metric=y"),
              std::make_pair(404, std::string("{\"error\":\"unknown device\",\"device\":\"x\\\"\"}\n")));
    query_->series_answer.status = store::series::lookup::unknown_metric;
    EXPECT_EQ(get("/api/telemetry?device=x&metric=pressure"),
              std::make_pair(404, std::string("{\"error\":\"unknown metric\",\"metric\":\"pressure\"}\n")));
    query_->fail = store::errc::invalid_argument;
    EXPECT_EQ(get("/api/telemetry?device=x&metric=y&from=not-a-time"),
              std::make_pair(400, std::string("{\"error\":\"bad request\",\"detail\":\"from and to must be ISO 8601 "
                                              "timestamps\"}\n")));
}

// The store's error kinds as statuses; the store's own text never reaches the client.
TEST_F(api_routes_test, store_errors) {
    const std::pair<store::errc, std::string> cases[] = {
        {store::errc::connection_failed, "503 {\"error\":\"database unavailable\"}\n"},
        {store::errc::timeout, "503 {\"error\":\"query timed out\"}\n"},
        {store::errc::invalid_data, "400 {\"error\":\"bad request\"}\n"},
        {store::errc::query_failed, "500 {\"error\":\"query failed\"}\n"},
        {store::errc::schema_missing, "500 {\"error\":\"query failed\"}\n"},
    };
    for (const auto& [e, expected] : cases) {
        query_->fail = e;
        for (const char* route :
             {"/api/devices", "/api/metrics", "/api/dead-letters", "/api/telemetry?device=d&metric=m"}) {
            auto [status, body] = get(route);
            EXPECT_EQ(std::to_string(status) + " " + body, expected) << route;
        }
    }
}

TEST_F(api_routes_test, dead_letter_previews) {
    const std::string binary("\x00\xff\x01 bin", 7);
    // 1023 ASCII bytes then the first byte of "é": the cut split a character.
    const std::string cut = std::string(1023, 'a') + "\xc3";
    query_->dead_letter_rows = {
        {"2026-11-22T00:00:02.000Z", "devices/x/telemetry", "c\"2", "unrecognized payload", 7, binary},
        {"2026-11-22T00:00:01.000Z", "devices/y/telemetry", "c1", "not a number", 5000, cut},
        {"2026-11-22T00:00:00.000Z", "t", "c0", "bad", 1, std::string("\x01", 1)},
    };
    auto [status, body] = get("/api/dead-letters?limit=3");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(query_->last_limit, 3);
    EXPECT_EQ(query_->last_preview, 1024);
    EXPECT_EQ(
        body,
        "{\"dead_letters\":[{\"received_at\":\"2026-11-22T00:00:02.000Z\",\"topic\":\"devices/x/telemetry\","
        "\"client_id\":\"c\\\"2\",\"reason\":\"unrecognized payload\",\"payload_bytes\":7,"
        "\"payload_truncated\":false,\"payload_text\":null,\"payload_base64\":\"" +
            base64_encode(binary) +
            "\"},{\"received_at\":\"2026-11-22T00:00:01.000Z\",\"topic\":\"devices/y/telemetry\",\"client_id\":\"c1\","
            "\"reason\":\"not a number\",\"payload_bytes\":5000,\"payload_truncated\":true,\"payload_text\":\"" +
            std::string(1023, 'a') + "\",\"payload_base64\":\"" + base64_encode(cut) +
            "\"},{\"received_at\":\"2026-11-22T00:00:00.000Z\",\"topic\":\"t\",\"client_id\":\"c0\","
            "\"reason\":\"bad\",\"payload_bytes\":1,\"payload_truncated\":false,\"payload_text\":null,"
            "\"payload_base64\":\"AQ==\"}]}\n");
    EXPECT_EQ(get("/api/dead-letters").first, 200);
    EXPECT_EQ(query_->last_limit, 50);
    EXPECT_EQ(get("/api/dead-letters?limit=501").first, 400);
}

// GET /api/cluster: the group the bus describes, with the stored offsets, per partition.
TEST(api_routes, cluster_owners_lag_and_unowned_partitions) {
    auto q = std::make_unique<memory_query>();
    memory_query* query = q.get();
    query->offset_rows = {{0, 90, "2026-11-22T00:00:00.000Z"}, {1, 200, std::nullopt}};
    bool bus_answers = true;
    server s;
    api_config cfg;
    cfg.query = std::move(q);
    cfg.cluster = [&bus_answers]() -> result<cluster_view> {
        if (!bus_answers) return make_error_code(bus::errc::io_error);
        cluster_view v{"kafka", "t", "g", "kafka:t", {}, std::nullopt};
        v.group_state.source = "describe-groups";
        v.group_state.state = "Stable";
        v.group_state.members = {{"m-1", "sluice-pipeline", "box", {0, 2}, 0}};
        v.group_state.ends = {100, 200, 5};
        return v;
    };
    register_api(s, std::move(cfg));
    auto port = s.start("127.0.0.1", 0);
    ASSERT_TRUE(port);

    auto [status, body] = get_status_body(*port, "/api/cluster");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(query->last_consumer, "kafka:t");
    EXPECT_EQ(body,
              "{\"bus\":\"kafka\",\"topic\":\"t\",\"group\":\"g\",\"consumer\":\"kafka:t\","
              "\"source\":\"describe-groups\",\"state\":\"Stable\",\"database\":true,"
              "\"members\":[{\"member_id\":\"m-1\",\"client_id\":\"sluice-pipeline\",\"host\":\"box\","
              "\"partitions\":[0,2]}],\"partitions\":["
              "{\"partition\":0,\"owner\":\"m-1\",\"owners\":1,\"end_offset\":100,\"stored_offset\":90,"
              "\"stored_at\":\"2026-11-22T00:00:00.000Z\",\"lag\":10},"
              "{\"partition\":1,\"owner\":null,\"owners\":0,\"end_offset\":200,\"stored_offset\":200,"
              "\"stored_at\":null,\"lag\":0},"
              "{\"partition\":2,\"owner\":\"m-1\",\"owners\":1,\"end_offset\":5,\"stored_offset\":null,"
              "\"stored_at\":null,\"lag\":5}],\"unowned\":[1]}\n");

    auto text = get_status_body(*port, "/api/cluster?format=text");
    EXPECT_EQ(text.first, 200);
    EXPECT_NE(text.second.find("bus kafka, topic t, group g (members from describe-groups, Stable)"), std::string::npos)
        << text.second;
    EXPECT_NE(text.second.find("NO OWNER"), std::string::npos) << text.second;
    EXPECT_NE(text.second.find("1 partition(s) without an owner"), std::string::npos) << text.second;
    EXPECT_EQ(get_status_body(*port, "/api/cluster?format=xml").first, 400);

    // The database down: owners still shown, lag unknown.
    query->fail = store::errc::connection_failed;
    auto down = get_status_body(*port, "/api/cluster");
    EXPECT_EQ(down.first, 200);
    EXPECT_NE(down.second.find("\"database\":false"), std::string::npos) << down.second;
    EXPECT_NE(down.second.find("\"lag\":null"), std::string::npos) << down.second;
    EXPECT_NE(get_status_body(*port, "/api/cluster?format=text").second.find("database unavailable"),
              std::string::npos);

    bus_answers = false;
    EXPECT_EQ(get_status_body(*port, "/api/cluster").first, 503);
    s.stop();
}

}  // namespace
}  // namespace sluice::http
