// SPDX-License-Identifier: Apache-2.0
//
// The API's pure parts: the overview snapshot built from a Prometheus exposition,
// JSON escaping, base64, and the static-file path checks. The routes that need
// PostgreSQL are exercised by tests/browser (against a real instance); here one route
// test drives a real server with no database to check the 503 answer and static files.
#include "http/api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "http/prometheus.h"
#include "http/server.h"

namespace sluice::http {
namespace {

TEST(api_prometheus, parses_samples_labels_and_skips_comments) {
    auto s = parse_prometheus(
        "# HELP sluice_x help text\n"
        "# TYPE sluice_x gauge\n"
        "sluice_x 3\n"
        "sluice_y{partition=\"0\",reason=\"a}b \\\"q\\\"\"} 1.5\n"
        "\n"
        "sluice_z NaN\n"
        "sluice_t 7 1732212345123\n"
        "broken{unterminated 4\n"
        "sluice_bad abc\n");
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[0].name, "sluice_x");
    EXPECT_EQ(s[0].value, 3);
    EXPECT_EQ(s[1].name, "sluice_y");
    EXPECT_EQ(s[1].labels, "partition=\"0\",reason=\"a}b \\\"q\\\"\"");
    EXPECT_EQ(s[1].value, 1.5);
    EXPECT_TRUE(std::isnan(s[2].value));
    EXPECT_EQ(s[3].name, "sluice_t");
    EXPECT_EQ(s[3].value, 7);
}

TEST(api_overview, aggregates_the_real_exposition) {
    // Built with the same writer the app uses, so a format change there shows here.
    prometheus_writer w;
    w.gauge("mqtt_connections", "c", 12);
    w.gauge("mqtt_sessions", "s", 15);
    w.counter("mqtt_messages_received_total", "r", 1000);
    w.counter("mqtt_messages_sent_total", "s", 250);
    for (int p = 0; p < 3; ++p) {
        prometheus_writer::labels l{{"partition", std::to_string(p)}};
        w.gauge("bus_bytes", "b", 1000.0 * (p + 1), l);
        w.gauge("bus_lag_messages", "l", 10.0 * p, l);
        w.gauge("bus_lag_seconds", "l", p == 1 ? 4.25 : 0.5, l);
        w.counter("pipeline_rows_total", "r", 300, l);
        w.counter("pipeline_dead_letters_total", "d", p, l);
        w.gauge("pipeline_database_up", "u", p == 2 ? 0 : 1, l);
        w.counter("pipeline_sequence_gaps_total", "g", 1, l);
        w.counter("pipeline_sequence_missing_total", "m", 5, l);
    }
    w.gauge("bus_over_quota", "q", 0);
    w.gauge("pipeline_running", "r", 1);
    std::string json = overview_json(w.text(), 1732212345123);
    EXPECT_EQ(json,
              "{\"time_ms\":1732212345123,\"connections\":12,\"sessions\":15,\"subscriptions\":null,"
              "\"messages_in\":1000,\"messages_out\":250,\"ingest_appended\":null,\"ingest_refused\":null,"
              "\"rows\":900,\"dead_letters\":3,\"lag_messages\":30,\"lag_seconds\":4.25,\"database_up\":false,"
              "\"pipeline_running\":true,\"sequence_gaps\":3,\"sequence_missing\":15,\"bus_bytes\":6000,"
              "\"wal_over_quota\":false}");
}

TEST(api_overview, no_pipeline_means_nulls_and_quota_is_any) {
    std::string json = overview_json("sluice_bus_over_quota 1\nsluice_mqtt_connections 0\n", 5);
    EXPECT_NE(json.find("\"connections\":0"), std::string::npos);
    EXPECT_NE(json.find("\"rows\":null"), std::string::npos);
    EXPECT_NE(json.find("\"database_up\":null"), std::string::npos);
    EXPECT_NE(json.find("\"lag_seconds\":null"), std::string::npos);
    EXPECT_NE(json.find("\"wal_over_quota\":true"), std::string::npos);
    EXPECT_EQ(overview_json("", 0).substr(0, 30), "{\"time_ms\":0,\"connections\":nul");
}

TEST(api_json, escapes_specials_controls_and_invalid_utf8) {
    EXPECT_EQ(json_string("plain"), "\"plain\"");
    EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(json_string("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"");
    EXPECT_EQ(json_string(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
    EXPECT_EQ(json_string(std::string("a\0b", 3)), "\"a\\u0000b\"");
    EXPECT_EQ(json_string("</script>"), "\"\\u003c/script>\"");
    // Valid multi-byte sequences pass through unchanged.
    EXPECT_EQ(json_string("température 温度 \xF0\x9F\x8C\xA1"), "\"température 温度 \xF0\x9F\x8C\xA1\"");
    // Invalid: lone continuation, truncated sequence, overlong '/', a surrogate, > U+10FFFF.
    EXPECT_EQ(json_string("\x80"), "\"\\ufffd\"");
    EXPECT_EQ(json_string("x\xC3"), "\"x\\ufffd\"");
    EXPECT_EQ(json_string("\xC0\xAF"), "\"\\ufffd\\ufffd\"");
    EXPECT_EQ(json_string("\xED\xA0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
    EXPECT_EQ(json_string("\xF4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

TEST(api_json, numbers_round_trip_and_non_finite_is_null) {
    auto num = [](double v) {
        std::string s;
        append_json_number(s, v);
        return s;
    };
    EXPECT_EQ(num(0), "0");
    EXPECT_EQ(num(71.5), "71.5");
    EXPECT_EQ(num(0.1), "0.1");
    EXPECT_EQ(num(-3), "-3");
    EXPECT_EQ(num(1e300), "1e+300");
    EXPECT_EQ(num(std::numeric_limits<double>::quiet_NaN()), "null");
    EXPECT_EQ(num(std::numeric_limits<double>::infinity()), "null");
}

TEST(api_payload, base64_and_printable_checks) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("f"), "Zg==");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_EQ(base64_encode("foo"), "Zm9v");
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_encode(std::string("\x00\xff\xfe", 3)), "AP/+");
    EXPECT_TRUE(is_printable_utf8("{\"temperature\": 71.5}\n"));
    EXPECT_TRUE(is_printable_utf8("°C"));
    EXPECT_FALSE(is_printable_utf8(std::string("\x01\x02", 2)));
    EXPECT_FALSE(is_printable_utf8("\xff"));
}

TEST(api_static, path_safety) {
    EXPECT_EQ(*static_file_path("/srv/web", "app.js"), "/srv/web/app.js");
    EXPECT_EQ(*static_file_path("/srv/web/", "img/logo.svg"), "/srv/web/img/logo.svg");
    for (const char* bad : {"", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "./a", "a//b", "a/", "a\\..\\b",
                            "a/./b"}) {
        auto r = static_file_path("/srv/web", bad);
        EXPECT_FALSE(r) << bad;
        EXPECT_EQ(r.error(), api_errc::unsafe_path) << bad;
    }
    EXPECT_FALSE(static_file_path("/srv/web", std::string("a\0b", 3)));
    // Names that merely contain dots are fine.
    EXPECT_TRUE(static_file_path("/srv/web", "..hidden"));
    EXPECT_TRUE(static_file_path("/srv/web", "a..b.js"));
}

TEST(api_static, content_types) {
    EXPECT_EQ(content_type_for("index.html"), "text/html; charset=utf-8");
    EXPECT_EQ(content_type_for("x/app.js"), "text/javascript; charset=utf-8");
    EXPECT_EQ(content_type_for("style.css"), "text/css; charset=utf-8");
    EXPECT_EQ(content_type_for("a.svg"), "image/svg+xml");
    EXPECT_EQ(content_type_for("README"), "application/octet-stream");
    EXPECT_EQ(content_type_for("js"), "application/octet-stream");
}

std::string http_get(uint16_t port, const std::string& target) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string raw = "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    EXPECT_EQ(::write(fd, raw.data(), raw.size()), static_cast<ssize_t>(raw.size()));
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

TEST(api_routes, overview_static_files_and_database_down) {
    auto root = std::filesystem::temp_directory_path() / ("sluice_api_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(root / "sub");
    std::ofstream(root / "index.html") << "<!doctype html><title>t</title>";
    std::ofstream(root / "app.js") << "console.log(1)";
    std::ofstream(root.parent_path() / ("sluice_api_secret_" + std::to_string(::getpid()))) << "secret";

    server s;
    api_config cfg;
    cfg.db_url = "";  // no database: the database routes must answer 503, the rest work
    cfg.metrics_text = [] { return std::string("sluice_mqtt_connections 2\nsluice_mqtt_messages_received_total 9\n"); };
    cfg.web_root = root.string();
    register_api(s, cfg);
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
    for (const std::string& bad : std::vector<std::string>{"/static/../" + secret, "/static/%2e%2e/" + secret, "/static/sub", "/static/missing.js",
                            "/static/sub/../app.js"}) {
        auto r = http_get(*port, bad);
        EXPECT_NE(r.find("HTTP/1.1 404"), std::string::npos) << bad << "\n" << r;
        EXPECT_EQ(r.find("\r\n\r\nsecret"), std::string::npos) << "file contents leaked for " << bad;
    }

    for (const char* route : {"/api/devices", "/api/metrics", "/api/dead-letters",
                              "/api/telemetry?device=press-7&metric=temperature"}) {
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

}  // namespace
}  // namespace sluice::http
