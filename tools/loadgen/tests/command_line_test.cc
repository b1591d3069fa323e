// SPDX-License-Identifier: Apache-2.0
//
// sluice-loadgen's flags are a contract (bench scripts, docs/loadgen.md): their names and
// defaults, presets that explicit flags override in any order, derived settings, and
// usage errors that name the flag.
#include "command_line.h"

#include <gtest/gtest.h>

#include "base/tests/cli_capture.h"

namespace sluice::loadgen {
namespace {

auto parse(const std::vector<std::string>& args) {
    return cli::capture([&](std::ostream& out, std::ostream& err) { return parse_command_line(args, out, err); });
}

options parse_ok(const std::vector<std::string>& args) {
    const auto r = parse(args);
    EXPECT_TRUE(r.line.run.has_value()) << r.err;
    return r.line.run.value_or(options{});
}

TEST(loadgen_command_line, no_flags_gives_the_documented_defaults) {
    const options o = parse_ok({});
    EXPECT_EQ(o.host, "127.0.0.1");
    EXPECT_EQ(o.port, 1883);
    EXPECT_EQ(o.kind, scenario::steady);
    EXPECT_EQ(o.devices, 100u);
    EXPECT_EQ(o.rate, 10.0);
    EXPECT_EQ(o.duration_s, 10.0);
    EXPECT_EQ(o.qos, 1);
    EXPECT_EQ(o.protocol, mqtt::version::v3_1_1);
    EXPECT_EQ(o.format, payload_kind::binary);
    EXPECT_EQ(o.topic, "devices/{device}/telemetry");
    EXPECT_EQ(o.batch_capacity, 280u);
    EXPECT_EQ(o.flush_bytes, 140u);
    EXPECT_EQ(o.flush_ms, 1000u);
    EXPECT_FALSE(o.subscribe);
    EXPECT_EQ(o.sub_qos, 1) << "--sub-qos follows --qos";
    EXPECT_EQ(o.drain_timeout_s, 15.0);
    EXPECT_EQ(o.transport, transport_kind::tcp);
    EXPECT_EQ(o.cafile, "") << "no verification unless asked";
    EXPECT_EQ(o.ws_path, "/mqtt");
}

TEST(loadgen_command_line, every_flag_the_bench_scripts_use_is_accepted) {
    const options o = parse_ok({"--host",
                                "localhost",
                                "--port",
                                "1884",
                                "--transport",
                                "wss",
                                "--cafile",
                                "/dev/null",
                                "--ws-path",
                                "/ws",
                                "--devices",
                                "20",
                                "--rate",
                                "2.5",
                                "--duration",
                                "3",
                                "--qos",
                                "2",
                                "--mqtt",
                                "5",
                                "--persistent",
                                "--topic",
                                "a/{device}",
                                "--device-prefix",
                                "",
                                "--client-prefix",
                                "c",
                                "--format",
                                "json",
                                "--payload-size",
                                "64",
                                "--batch-bytes",
                                "200",
                                "--flush-bytes",
                                "100",
                                "--flush-ms",
                                "500",
                                "--metrics",
                                "3",
                                "--max-inflight",
                                "8",
                                "--max-queue",
                                "50",
                                "--threads",
                                "2",
                                "--subscribe",
                                "--subscribers",
                                "3",
                                "--sub-qos",
                                "0",
                                "--sub-filter",
                                "a/#",
                                "--source-addrs",
                                "4",
                                "--connect-rate",
                                "100",
                                "--keep-alive",
                                "30",
                                "--step",
                                "2",
                                "--ramp-factor",
                                "2",
                                "--max-latency-ms",
                                "250",
                                "--max-steps",
                                "5",
                                "--warmup",
                                "1",
                                "--offline",
                                "2",
                                "--slow-bytes-per-sec",
                                "1000",
                                "--verify-pg",
                                "postgresql:///x",
                                "--verify-timeout",
                                "30",
                                "--drain-timeout",
                                "5",
                                "--json",
                                "out.json",
                                "--quiet"});
    EXPECT_EQ(o.host, "localhost");
    EXPECT_EQ(o.port, 1884);
    EXPECT_EQ(o.transport, transport_kind::wss);
    EXPECT_EQ(o.cafile, "/dev/null");
    EXPECT_EQ(o.ws_path, "/ws");
    EXPECT_EQ(o.devices, 20u);
    EXPECT_EQ(o.rate, 2.5);
    EXPECT_EQ(o.qos, 2);
    EXPECT_EQ(o.protocol, mqtt::version::v5);
    EXPECT_TRUE(o.persistent);
    EXPECT_EQ(o.topic, "a/{device}");
    EXPECT_EQ(o.device_prefix, "");
    EXPECT_EQ(o.format, payload_kind::json);
    EXPECT_EQ(o.batch_capacity, 200u);
    EXPECT_EQ(o.flush_bytes, 100u);
    EXPECT_EQ(o.max_queue, 50u);
    EXPECT_TRUE(o.subscribe);
    EXPECT_EQ(o.sub_qos, 0);
    EXPECT_EQ(o.sub_filter, "a/#");
    EXPECT_EQ(o.ramp_factor, 2.0);
    EXPECT_EQ(o.slow_bytes_per_s, 1000u);
    EXPECT_EQ(o.verify_pg, "postgresql:///x");
    EXPECT_EQ(o.json_file, "out.json");
    EXPECT_TRUE(o.quiet);
}

TEST(loadgen_command_line, explicit_flags_override_the_preset_whatever_their_position) {
    for (const auto& args : {std::vector<std::string>{"--scenario", "fanin", "--publishers", "4", "--no-subscribe"},
                             std::vector<std::string>{"--publishers", "4", "--no-subscribe", "--scenario", "fanin"}}) {
        const options o = parse_ok(args);
        EXPECT_EQ(o.kind, scenario::fanin);
        EXPECT_EQ(o.devices, 4u);
        EXPECT_FALSE(o.subscribe);
        EXPECT_EQ(o.format, payload_kind::raw) << "preset kept where not overridden";
        EXPECT_EQ(o.rate, 0.0);
        EXPECT_EQ(o.topic, "bench/fanin/{device}");
    }
}

TEST(loadgen_command_line, presets_and_derived_settings) {
    EXPECT_TRUE(parse_ok({"--scenario", "storm"}).persistent);
    const options slow = parse_ok({"--scenario", "slow-subscriber", "--subscribers", "1"});
    EXPECT_EQ(slow.subscribers, 2u) << "the slow one plus at least one to compare";
    EXPECT_EQ(parse_ok({"--batch-bytes", "100", "--flush-bytes", "200"}).flush_bytes, 100u);
    EXPECT_EQ(parse_ok({"--format", "raw", "--payload-size", "1"}).payload_size, raw_header_size);
    EXPECT_EQ(parse_ok({"--qos", "2"}).sub_qos, 2);
    EXPECT_EQ(parse_ok({"--mqtt", "3.1.1"}).protocol, mqtt::version::v3_1_1);
    EXPECT_EQ(parse_ok({"--mqtt", "5.0"}).protocol, mqtt::version::v5);
    const options churn = parse_ok({"--scenario", "churn"});
    EXPECT_EQ(churn.devices, 50u);
    EXPECT_EQ(churn.rate, 0.0);
    EXPECT_FALSE(churn.subscribe);
    for (const char* t : {"tcp", "tls", "ws", "wss"})
        EXPECT_STREQ(to_string(parse_ok({"--transport", t}).transport), t);
}

TEST(loadgen_command_line, cafile_only_with_a_tls_transport) {
    const auto r = parse({"--cafile", "/dev/null"});
    EXPECT_FALSE(r.line.run.has_value());
    EXPECT_EQ(r.line.exit_status, 2);
    EXPECT_NE(r.err.find("--cafile needs --transport tls or wss"), std::string::npos) << r.err;
    EXPECT_TRUE(parse({"--transport", "tls", "--cafile", "/dev/null"}).line.run.has_value());
}

TEST(loadgen_command_line, the_last_of_repeated_flags_wins) {
    EXPECT_EQ(parse_ok({"--duration", "3", "--duration", "7"}).duration_s, 7.0);
    EXPECT_TRUE(parse_ok({"--no-subscribe", "--subscribe"}).subscribe);
    EXPECT_FALSE(parse_ok({"--subscribe", "--no-subscribe"}).subscribe);
}

TEST(loadgen_command_line, bad_values_are_usage_errors_naming_the_flag) {
    const std::vector<std::vector<std::string>> bad = {{"--devices", "0"},
                                                       {"--devices", "100001"},
                                                       {"--port", "65536"},
                                                       {"--port", "x"},
                                                       {"--qos", "3"},
                                                       {"--rate", "-1"},
                                                       {"--duration", "0"},
                                                       {"--mqtt", "6"},
                                                       {"--format", "xml"},
                                                       {"--scenario", "tsunami"},
                                                       {"--ramp-factor", "1"},
                                                       {"--batch-bytes", "39"},
                                                       {"--threads", "0"},
                                                       {"--host", ""},
                                                       {"--topic", ""},
                                                       {"--max-inflight", "0"},
                                                       {"--slow-bytes-per-sec", "0"},
                                                       {"--transport", "quic"},
                                                       {"--cafile", "/no/such/ca.pem"},
                                                       {"--ws-path", "mqtt"},
                                                       {"--ws-path", "/a b"}};
    for (const auto& args : bad) {
        const auto r = parse(args);
        EXPECT_FALSE(r.line.run.has_value()) << args[0] << " " << args[1];
        EXPECT_EQ(r.line.exit_status, 2) << args[0];
        EXPECT_NE(r.err.find(args[0]), std::string::npos) << "names the flag: " << r.err;
    }
}

TEST(loadgen_command_line, unknown_flag_and_missing_value_name_the_flag) {
    auto r = parse({"--devices", "3", "--colour", "blue"});
    EXPECT_EQ(r.line.exit_status, 2);
    EXPECT_NE(r.err.find("--colour"), std::string::npos) << r.err;
    r = parse({"--json"});
    EXPECT_EQ(r.line.exit_status, 2);
    EXPECT_NE(r.err.find("--json"), std::string::npos) << r.err;
}

TEST(loadgen_command_line, help_lists_every_flag_and_exits_zero) {
    const auto r = parse({"--help"});
    EXPECT_FALSE(r.line.run.has_value());
    EXPECT_EQ(r.line.exit_status, 0);
    for (const char* flag :
         {"--scenario", "--devices", "--publishers", "--rate", "--no-subscribe", "--verify-pg", "--slow-bytes-per-sec",
          "--json", "--version", "--transport", "--cafile", "--ws-path", "churn"}) {
        EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
    }
    EXPECT_EQ(parse({"-h"}).line.exit_status, 0);
}

}  // namespace
}  // namespace sluice::loadgen
