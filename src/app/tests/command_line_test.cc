// SPDX-License-Identifier: Apache-2.0
//
// sluice's command line is a contract (scripts/run, tests/support, bench/macro,
// docs/operations.md): its subcommands, flag names and defaults, config files first and
// flags over them in any order, and usage errors that name the flag with status 2.
#include "app/command_line.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "base/tests/cli_capture.h"
#include "base/version.h"

namespace sluice::app {
namespace {

auto parse(const std::vector<std::string>& args) {
    return cli::capture([&](std::ostream& out, std::ostream& err) { return parse_command_line(args, out, err); });
}

invocation parse_ok(const std::vector<std::string>& args) {
    const auto r = parse(args);
    EXPECT_TRUE(r.line.run.has_value()) << r.err;
    EXPECT_EQ(r.err, "");
    return r.line.run.value_or(invocation{});
}

// A usage error: status 2, nothing to run, "sluice...: " on stderr naming `what`.
void expect_usage_error(const std::vector<std::string>& args, const std::string& what) {
    const auto r = parse(args);
    EXPECT_FALSE(r.line.run.has_value());
    EXPECT_EQ(r.line.exit_status, 2);
    EXPECT_EQ(r.err.rfind("sluice", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
}

class temp_file {
public:
    explicit temp_file(const std::string& text) {
        char path[] = "/tmp/sluice-command-line-test-XXXXXX";
        const int fd = mkstemp(path);
        EXPECT_GE(fd, 0);
        close(fd);
        path_ = path;
        std::ofstream(path_) << text;
    }
    ~temp_file() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

TEST(app_command_line, serve_without_flags_gives_the_documented_defaults) {
    const invocation inv = parse_ok({"serve"});
    EXPECT_EQ(inv.what, command::node);
    EXPECT_EQ(inv.node, role::serve);
    const config& c = inv.cfg;
    EXPECT_EQ(c.mqtt_port, 1883);
    EXPECT_EQ(c.http_port, 8080);
    EXPECT_EQ(c.bind_address, "0.0.0.0");
    EXPECT_EQ(c.data_dir, "var/data");
    EXPECT_EQ(c.threads, 0u);
    EXPECT_TRUE(c.cpu_affinity.empty());
    EXPECT_EQ(c.bus_backend, "wal");
    EXPECT_EQ(c.kafka.topic, "sluice-telemetry");
    EXPECT_EQ(c.kafka_group, "sluice-pipeline");
    EXPECT_EQ(c.store_layout, "auto");
    EXPECT_EQ(c.log_level, "info");
    EXPECT_EQ(c.telemetry_db_url, "");
    EXPECT_EQ(inv.web_root, "");
    EXPECT_FALSE(c.auth.allow_anonymous.has_value());
    EXPECT_FALSE(c.auth.http_login);
    EXPECT_FALSE(c.listeners.mqtts_port.has_value());
    EXPECT_FALSE(c.listeners.http_tls);
}

TEST(app_command_line, every_flag_maps_to_its_setting) {
    const invocation inv = parse_ok({"serve",
                                     "--mqtt-port",
                                     "0",
                                     "--bind",
                                     "127.0.0.1",
                                     "--http-port",
                                     "8081",
                                     "--data-dir",
                                     "/tmp/d",
                                     "--threads",
                                     "3",
                                     "--cpu-affinity",
                                     "0,2-3",
                                     "--telemetry-db",
                                     "postgresql:///t",
                                     "--app-db",
                                     "postgresql:///a",
                                     "--store-layout",
                                     "native",
                                     "--bus",
                                     "kafka",
                                     "--kafka-brokers",
                                     "k1:9092,k2:9092",
                                     "--kafka-topic",
                                     "tele",
                                     "--kafka-group",
                                     "g",
                                     "--log-level",
                                     "debug",
                                     "--web-root",
                                     "/srv/web",
                                     "--password-file",
                                     "pw",
                                     "--acl-file",
                                     "acl",
                                     "--allow-anonymous",
                                     "false",
                                     "--client-id-pattern",
                                     "%u-*",
                                     "--api-token",
                                     "tok",
                                     "--http-login",
                                     "--mqtts-port",
                                     "8883",
                                     "--ws-port",
                                     "0",
                                     "--wss-port",
                                     "8884",
                                     "--tls-cert",
                                     "c.pem",
                                     "--tls-key",
                                     "k.pem",
                                     "--tls-ca",
                                     "ca.pem",
                                     "--require-certificate",
                                     "--tls-ciphers",
                                     "HIGH",
                                     "--tls-ciphersuites",
                                     "TLS_AES_128_GCM_SHA256",
                                     "--tls-min-version",
                                     "1.3",
                                     "--http-tls"});
    const config& c = inv.cfg;
    EXPECT_EQ(c.mqtt_port, 0);
    EXPECT_EQ(c.bind_address, "127.0.0.1");
    EXPECT_EQ(c.http_port, 8081);
    EXPECT_EQ(c.data_dir, "/tmp/d");
    EXPECT_EQ(c.threads, 3u);
    EXPECT_EQ(c.cpu_affinity, (std::vector<int>{0, 2, 3}));
    EXPECT_EQ(c.telemetry_db_url, "postgresql:///t");
    EXPECT_EQ(c.app_db_url, "postgresql:///a");
    EXPECT_EQ(c.store_layout, "native");
    EXPECT_EQ(c.bus_backend, "kafka");
    EXPECT_EQ(c.kafka.brokers, "k1:9092,k2:9092");
    EXPECT_EQ(c.kafka.topic, "tele");
    EXPECT_EQ(c.kafka_group, "g");
    EXPECT_EQ(c.log_level, "debug");
    EXPECT_EQ(inv.web_root, "/srv/web");
    EXPECT_EQ(c.auth.password_file, "pw");
    EXPECT_EQ(c.auth.acl_file, "acl");
    EXPECT_EQ(c.auth.allow_anonymous, std::optional<bool>(false));
    EXPECT_EQ(c.auth.client_id_pattern, "%u-*");
    EXPECT_EQ(c.auth.api_token, "tok");
    EXPECT_TRUE(c.auth.http_login);
    EXPECT_EQ(c.listeners.mqtts_port, std::optional<uint16_t>(8883));
    EXPECT_EQ(c.listeners.ws_port, std::optional<uint16_t>(0));
    EXPECT_EQ(c.listeners.wss_port, std::optional<uint16_t>(8884));
    EXPECT_EQ(c.listeners.tls.cert_file, "c.pem");
    EXPECT_EQ(c.listeners.tls.key_file, "k.pem");
    EXPECT_EQ(c.listeners.tls.ca_file, "ca.pem");
    EXPECT_TRUE(c.listeners.tls.require_certificate);
    EXPECT_EQ(c.listeners.tls.ciphers, "HIGH");
    EXPECT_EQ(c.listeners.tls.ciphersuites, "TLS_AES_128_GCM_SHA256");
    EXPECT_EQ(c.listeners.tls.min_version, "1.3");
    EXPECT_TRUE(c.listeners.http_tls);
}

TEST(app_command_line, db_sets_both_urls_and_the_specific_ones_win_in_any_order) {
    EXPECT_EQ(parse_ok({"serve", "--db", "postgresql:///x"}).cfg.app_db_url, "postgresql:///x");
    EXPECT_EQ(parse_ok({"serve", "--db", "postgresql:///x"}).cfg.telemetry_db_url, "postgresql:///x");
    const config c = parse_ok({"serve", "--telemetry-db", "postgresql:///t", "--db", "postgresql:///x"}).cfg;
    EXPECT_EQ(c.telemetry_db_url, "postgresql:///t");
    EXPECT_EQ(c.app_db_url, "postgresql:///x");
}

TEST(app_command_line, a_repeated_flag_takes_its_last_value) {
    // scripts/run appends --bind and --db after the user's flags; bench scripts append overrides.
    const config c = parse_ok({"serve", "--data-dir", "a", "--mqtt-port", "1", "--data-dir", "b", "--mqtt-port", "2",
                               "--http-login", "--http-login", "--password-file", "p"})
                         .cfg;
    EXPECT_EQ(c.data_dir, "b");
    EXPECT_EQ(c.mqtt_port, 2);
    EXPECT_TRUE(c.auth.http_login);
}

TEST(app_command_line, numbers_are_decimal) {
    EXPECT_EQ(parse_ok({"serve", "--mqtt-port", "010"}).cfg.mqtt_port, 10) << "not octal";
    expect_usage_error({"serve", "--mqtt-port", "0x10"}, "--mqtt-port");
    expect_usage_error({"serve", "--http-port", "65536"}, "--http-port");
    expect_usage_error({"serve", "--wss-port", "-1"}, "--wss-port");
    expect_usage_error({"serve", "--threads", "0"}, "--threads");
    EXPECT_EQ(parse_ok({"serve", "--threads", "1024"}).cfg.threads, 1024u);
}

TEST(app_command_line, the_config_file_loads_first_and_flags_override_it_in_any_order) {
    temp_file file(
        "[server]\nmqtt_port = 1999\nhttp_port = 9000\nbind = \"127.0.0.2\"\nlog_level = \"warn\"\n"
        "[database]\nurl = \"postgresql:///file\"\n");
    for (const auto& args : {std::vector<std::string>{"serve", "--config", file.path(), "--mqtt-port", "0"},
                             std::vector<std::string>{"serve", "--mqtt-port", "0", "--config", file.path()}}) {
        const config c = parse_ok(args).cfg;
        EXPECT_EQ(c.mqtt_port, 0) << "the flag wins";
        EXPECT_EQ(c.http_port, 9000) << "the file's, no flag";
        EXPECT_EQ(c.bind_address, "127.0.0.2");
        EXPECT_EQ(c.log_level, "warn");
        EXPECT_EQ(c.telemetry_db_url, "postgresql:///file");
    }
}

TEST(app_command_line, each_config_file_loads_in_turn) {
    temp_file first("[server]\nmqtt_port = 1111\nhttp_port = 2222\n");
    temp_file second("[server]\nmqtt_port = 3333\n");
    const config c = parse_ok({"serve", "--config", first.path(), "--config", second.path()}).cfg;
    EXPECT_EQ(c.mqtt_port, 3333);
    EXPECT_EQ(c.http_port, 2222);
}

TEST(app_command_line, a_bad_config_file_is_a_usage_error_naming_it) {
    temp_file file("[server]\nmqtt_port = \"x\"\n");
    expect_usage_error({"serve", "--config", file.path()}, file.path());
    expect_usage_error({"serve", "--config", "/nonexistent/sluice.toml"}, "--config");
}

TEST(app_command_line, unknown_flag_exits_2_naming_it) {
    expect_usage_error({"serve", "--no-such-flag"}, "--no-such-flag");
    expect_usage_error({"broker", "--bus", "kafka", "--kafka-brokers", "k:1", "--no-such-flag"}, "--no-such-flag");
    expect_usage_error({"--no-such-flag"}, "--no-such-flag");
}

TEST(app_command_line, bad_values_and_missing_values_name_the_flag) {
    expect_usage_error({"serve", "--bus", "nats"}, "--bus");
    expect_usage_error({"serve", "--store-layout", "columnar"}, "--store-layout");
    expect_usage_error({"serve", "--allow-anonymous", "maybe"}, "--allow-anonymous");
    expect_usage_error({"serve", "--cpu-affinity", "2-1"}, "--cpu-affinity");
    expect_usage_error({"serve", "--data-dir"}, "--data-dir");
    expect_usage_error({"serve", "--log-level", "loud"}, "loud");
}

TEST(app_command_line, the_roles_need_what_they_run_on) {
    expect_usage_error({"broker"}, "needs --bus kafka");
    expect_usage_error({"serve", "--bus", "kafka"}, "--kafka-brokers");
    expect_usage_error({"pipeline", "--bus", "kafka", "--kafka-brokers", "k:1"}, "needs --db");
    expect_usage_error({"serve", "--http-login"}, "--password-file");
    const invocation inv =
        parse_ok({"pipeline", "--bus", "kafka", "--kafka-brokers", "k:1", "--db", "postgresql:///x"});
    EXPECT_EQ(inv.node, role::pipeline);
}

TEST(app_command_line, pipeline_refuses_the_mqtt_flags) {
    const std::vector<std::string> valid = {"pipeline", "--bus", "kafka", "--kafka-brokers", "k:1", "--db", "db"};
    for (const auto& flag : {std::vector<std::string>{"--mqtt-port", "1"},
                             {"--threads", "2"},
                             {"--cpu-affinity", "0"},
                             {"--mqtts-port", "1"},
                             {"--ws-port", "1"},
                             {"--wss-port", "1"},
                             {"--tls-ca", "ca.pem"},
                             {"--require-certificate"}}) {
        auto args = valid;
        args.insert(args.end(), flag.begin(), flag.end());
        expect_usage_error(args, flag[0] + " does not apply");
    }
    EXPECT_EQ(parse(valid).out, "");
    EXPECT_EQ(parse({"pipeline", "--help"}).out.find("--mqtt-port"), std::string::npos);
}

TEST(app_command_line, version_prints_the_build_version) {
    for (const char* spelling : {"--version", "version"}) {
        const auto r = parse({spelling});
        EXPECT_FALSE(r.line.run.has_value());
        EXPECT_EQ(r.line.exit_status, 0);
        EXPECT_EQ(r.out, std::string("sluice ") + sluice::version + "\n");
        EXPECT_EQ(r.err, "");
    }
}

TEST(app_command_line, help_lists_the_subcommands_on_stdout) {
    for (const char* spelling : {"--help", "-h", "help"}) {
        const auto r = parse({spelling});
        EXPECT_FALSE(r.line.run.has_value());
        EXPECT_EQ(r.line.exit_status, 0);
        for (const char* sub : {"serve", "broker", "pipeline", "status", "passwd", "wal"})
            EXPECT_NE(r.out.find(sub), std::string::npos) << sub << " in\n" << r.out;
        EXPECT_EQ(r.err, "");
    }
    const auto serve_help = parse({"serve", "--help"});
    EXPECT_EQ(serve_help.line.exit_status, 0);
    EXPECT_NE(serve_help.out.find("--mqtt-port"), std::string::npos);
    EXPECT_NE(serve_help.out.find("1883"), std::string::npos) << "defaults are shown";
}

TEST(app_command_line, no_subcommand_is_a_usage_error) {
    const auto r = parse({});
    EXPECT_FALSE(r.line.run.has_value());
    EXPECT_EQ(r.line.exit_status, 2);
    EXPECT_EQ(r.err.rfind("sluice: ", 0), 0u) << r.err;
    expect_usage_error({"frobnicate"}, "frobnicate");
}

TEST(app_command_line, passwd_takes_mosquitto_passwd_verbs) {
    const invocation add = parse_ok({"passwd", "-c", "-b", "pw.txt", "alice", "wonderland"});
    EXPECT_EQ(add.what, command::passwd);
    EXPECT_TRUE(add.passwd.create);
    EXPECT_TRUE(add.passwd.batch);
    EXPECT_FALSE(add.passwd.remove);
    EXPECT_EQ(add.passwd.file, "pw.txt");
    EXPECT_EQ(add.passwd.user, "alice");
    EXPECT_EQ(add.passwd.password, "wonderland");
    const invocation del = parse_ok({"passwd", "-D", "pw.txt", "dave"});
    EXPECT_TRUE(del.passwd.remove);
    EXPECT_EQ(del.passwd.user, "dave");
    const invocation ask = parse_ok({"passwd", "pw.txt", "eve"});
    EXPECT_FALSE(ask.passwd.batch);
    EXPECT_EQ(ask.passwd.password, "");
    expect_usage_error({"passwd", "-c", "-D", "pw.txt", "u"}, "-D");
    expect_usage_error({"passwd", "-D", "-b", "pw.txt", "u", "p"}, "-b");
    expect_usage_error({"passwd", "-b", "pw.txt", "u"}, "PASSWORD");
    expect_usage_error({"passwd", "pw.txt", "u", "p"}, "-b");
    expect_usage_error({"passwd", "pw.txt"}, "USER");
    expect_usage_error({"passwd", "-x", "pw.txt", "u"}, "-x");
}

TEST(app_command_line, status_asks_a_node_at_its_http_address) {
    const invocation plain = parse_ok({"status"});
    EXPECT_EQ(plain.what, command::status);
    EXPECT_EQ(plain.status.url, "http://127.0.0.1:8080");
    EXPECT_EQ(plain.status.token, "");
    const invocation other = parse_ok({"status", "--http", "http://node-2:9000", "--token", "s3cret"});
    EXPECT_EQ(other.status.url, "http://node-2:9000");
    EXPECT_EQ(other.status.token, "s3cret");
    expect_usage_error({"status", "--mqtt-port", "1"}, "--mqtt-port");
}

TEST(app_command_line, wal_dump_passes_its_arguments_on_untouched) {
    const invocation inv = parse_ok({"wal", "dump", "var/data/wal", "--records", "--from", "3"});
    EXPECT_EQ(inv.what, command::wal_dump);
    EXPECT_EQ(inv.wal_dump_args, (std::vector<std::string>{"var/data/wal", "--records", "--from", "3"}));
    EXPECT_EQ(parse_ok({"wal", "dump", "--help"}).wal_dump_args, std::vector<std::string>{"--help"});
    EXPECT_TRUE(parse_ok({"wal", "dump"}).wal_dump_args.empty()) << "sluice-wal-dump says what is missing";
    expect_usage_error({"wal"}, "subcommand");
}

}  // namespace
}  // namespace sluice::app
