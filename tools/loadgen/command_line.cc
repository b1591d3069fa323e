// SPDX-License-Identifier: Apache-2.0
//
// The flag table of sluice-loadgen (see command_line.h). Presets before flags relies on
// CLI11 running option callbacks in declaration order after the whole line is read:
// --scenario is declared first, so its preset lands before any explicit flag's value.
#include "command_line.h"

#include <map>

#include "base/cli.h"

namespace sluice::loadgen {
namespace {

// A number strictly above `floor` (CLI11's Range includes its bounds).
CLI::Validator above(int floor) {
    const std::string name = "> " + std::to_string(floor);
    return CLI::Validator(
        [floor, name](std::string& in) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(in, v) || !(v > floor)) return "Value " + in + " not " + name;
            return {};
        },
        name);
}

const CLI::Validator non_empty(
    [](std::string& in) -> std::string { return in.empty() ? "must not be empty" : std::string{}; }, "NONEMPTY");

// An option naming one of `names`, stored as the value it maps to.
template <typename T>
CLI::Option* add_choice(CLI::App& app, const std::string& flag, T& target, const std::map<std::string, T>& names,
                        const std::string& fallback, const std::string& help) {
    return app
        .add_option_function<std::string>(
            flag, [&target, &names](const std::string& name) { target = names.at(name); }, help)
        ->check(CLI::IsMember(names))
        ->default_str(fallback);
}

const std::map<std::string, scenario> scenario_names = {{"steady", scenario::steady},
                                                        {"ramp", scenario::ramp},
                                                        {"storm", scenario::storm},
                                                        {"fanout", scenario::fanout},
                                                        {"slow-subscriber", scenario::slow_subscriber},
                                                        {"fanin", scenario::fanin},
                                                        {"churn", scenario::churn}};

const std::map<std::string, transport_kind> transport_names = {{"tcp", transport_kind::tcp},
                                                               {"tls", transport_kind::tls},
                                                               {"ws", transport_kind::ws},
                                                               {"wss", transport_kind::wss}};

const std::map<std::string, mqtt::version> protocol_names = {{"3.1.1", mqtt::version::v3_1_1},
                                                             {"4", mqtt::version::v3_1_1},
                                                             {"5", mqtt::version::v5},
                                                             {"5.0", mqtt::version::v5}};

const std::map<std::string, payload_kind> format_names = {
    {"binary", payload_kind::binary}, {"json", payload_kind::json}, {"raw", payload_kind::raw}};

void declare_flags(CLI::App& app, options& o) {
    // First, so that its callback (the preset) runs before every other flag's.
    app.add_option_function<std::string>(
           "--scenario", [&o](const std::string& name) { apply_preset(o, scenario_names.at(name)); },
           "steady | ramp | storm | fanout | slow-subscriber | fanin | churn; sets that scenario's defaults, "
           "which explicit flags override")
        ->check(CLI::IsMember(scenario_names))
        ->default_str("steady");

    const char* broker = "Broker";
    app.add_option("--host", o.host, "Broker address or name")->check(non_empty)->group(broker);
    app.add_option("--port", o.port, "Broker port")->group(broker);
    add_choice(app, "--transport", o.transport, transport_names, "tcp",
               "MQTT over tcp | tls | ws (WebSocket) | wss (WebSocket over TLS)")
        ->group(broker);
    app.add_option("--cafile", o.cafile,
                   "tls, wss: verify the broker's certificate (and that it names --host) against these PEM CAs; "
                   "without it, no verification")
        ->check(CLI::ExistingFile)
        ->group(broker);
    app.add_option("--ws-path", o.ws_path, "ws, wss: path of the upgrade request")
        ->check(CLI::Validator(
            [](std::string& in) -> std::string {
                if (in.empty() || in[0] != '/') return "must start with /";
                return in.find_first_of(" \t\r\n") == std::string::npos ? "" : "must not contain white space";
            },
            "PATH"))
        ->group(broker);
    add_choice(app, "--mqtt", o.protocol, protocol_names, "3.1.1", "MQTT version: 3.1.1 (or 4) | 5 (or 5.0)")
        ->group(broker);
    app.add_option("--keep-alive", o.keep_alive, "Keep-alive seconds (0: no PINGREQ)")->group(broker);
    app.add_option("--source-addrs", o.source_addrs,
                   "Bind to 127.0.0.1..N when the broker is on loopback (0: 1 per 20,000 connections)")
        ->check(CLI::Range(0u, 250u))
        ->group(broker);
    app.add_option("--connect-rate", o.connect_rate, "New connections per second")->check(above(0))->group(broker);

    const char* load = "Load";
    app.add_option("--devices", o.devices, "Publishing connections")->check(CLI::Range(1u, 100000u))->group(load);
    app.add_option("--publishers", o.devices, "Same as --devices (the fanin scenario's name for them)")
        ->check(CLI::Range(1u, 100000u))
        ->group(load);
    app.add_option("--rate", o.rate, "Per device: readings/s (binary, json) or msgs/s (raw); 0 = as fast as possible")
        ->check(CLI::NonNegativeNumber)
        ->group(load);
    app.add_option("--duration", o.duration_s, "Seconds of load")->check(above(0))->group(load);
    app.add_option("--qos", o.qos, "QoS of the publishes")->check(CLI::Range(0, 2))->group(load);
    app.add_flag("--persistent", o.persistent, "Persistent sessions (clean session false / session expiry > 0)")
        ->group(load);
    app.add_option("--topic", o.topic, "Topic template with {device}")->check(non_empty)->group(load);
    app.add_option("--device-prefix", o.device_prefix, "Device names are PREFIX<index>")->group(load);
    app.add_option("--client-prefix", o.client_prefix, "Client ids are PREFIX-pub-<i>, PREFIX-sub-<i>")
        ->check(non_empty)
        ->group(load);
    add_choice(app, "--format", o.format, format_names, "binary", "Payload: binary | json | raw")->group(load);
    app.add_option("--payload-size", o.payload_size, "Bytes per raw payload")
        ->check(CLI::Range(size_t{0}, size_t{1} << 20))
        ->group(load);
    app.add_option("--max-inflight", o.max_inflight, "Unacknowledged QoS 1/2 messages per connection")
        ->check(CLI::Range(1u, 65535u))
        ->group(load);
    app.add_option("--max-queue", o.max_queue, "Finished payloads waiting per device, then dropped and counted")
        ->check(CLI::Range(size_t{1}, size_t{10000000}))
        ->group(load);
    app.add_option("--threads", o.threads, "Event loops")->check(CLI::Range(1u, 64u))->group(load);

    const char* edge = "Edge batching (binary, json)";
    app.add_option("--batch-bytes", o.batch_capacity, "Batch buffer size")
        ->check(CLI::Range(size_t{40}, size_t{65536}))
        ->group(edge);
    app.add_option("--flush-bytes", o.flush_bytes, "Publish a batch when this full")
        ->check(CLI::Range(size_t{1}, size_t{65536}))
        ->group(edge);
    app.add_option("--flush-ms", o.flush_ms, "... or when its oldest reading is this old")
        ->check(CLI::Range(0u, 3600000u))
        ->group(edge);
    app.add_option("--metrics", o.metrics, "Metric ids 1..N, round robin")->check(CLI::Range(1u, 1000u))->group(edge);

    const char* subs = "Subscribers";
    app.add_flag("--subscribe,!--no-subscribe", o.subscribe, "Run the subscriber side in this process")->group(subs);
    app.add_option("--subscribers", o.subscribers, "Subscribing connections")
        ->check(CLI::Range(1u, 10000u))
        ->group(subs);
    app.add_option("--sub-qos", o.sub_qos, "QoS of the subscription (default: --qos)")
        ->check(CLI::Range(0, 2))
        ->default_str("same as --qos")
        ->group(subs);
    app.add_option("--sub-filter", o.sub_filter, "Subscription filter (default: from --topic)")
        ->check(non_empty)
        ->group(subs);

    const char* ramp = "Ramp scenario";
    app.add_option("--step", o.step_s, "Seconds per step")->check(above(0))->group(ramp);
    app.add_option("--ramp-factor", o.ramp_factor, "Rate multiplier per step")->check(above(1))->group(ramp);
    app.add_option("--max-latency-ms", o.max_latency_ms, "A step passes while ack p99 stays within this")
        ->check(CLI::NonNegativeNumber)
        ->group(ramp);
    app.add_option("--max-steps", o.max_steps, "Steps at most")->check(CLI::Range(1u, 1000u))->group(ramp);

    const char* storm = "Storm scenario";
    app.add_option("--warmup", o.warmup_s, "Seconds of load before the disconnect")
        ->check(CLI::NonNegativeNumber)
        ->group(storm);
    app.add_option("--offline", o.offline_s, "Seconds the devices stay offline, queueing readings")
        ->check(CLI::NonNegativeNumber)
        ->group(storm);

    app.add_option("--slow-bytes-per-sec", o.slow_bytes_per_s, "Read rate of subscriber 0")
        ->check(CLI::Range(1u, 1u << 30))
        ->group("Slow-subscriber scenario");

    const char* verify = "Verification against PostgreSQL";
    app.add_option("--verify-pg", o.verify_pg, "libpq URL: count each device's stored readings after the run")
        ->check(non_empty)
        ->group(verify);
    app.add_option("--verify-timeout", o.verify_timeout_s, "Seconds to wait for the pipeline to catch up")
        ->check(CLI::NonNegativeNumber)
        ->group(verify);

    const char* output = "Output";
    app.add_option("--drain-timeout", o.drain_timeout_s, "Seconds to wait for acks and deliveries after the load")
        ->check(CLI::NonNegativeNumber)
        ->group(output);
    app.add_option("--json", o.json_file, "Write the results as JSON to this file")->check(non_empty)->group(output);
    app.add_flag("--quiet", o.quiet, "No progress line every second")->group(output);
}

}  // namespace

command_line parse_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    CLI::App app(
        "Fleet simulator and load generator for MQTT brokers (docs/loadgen.md). Exit status: 0 when "
        "nothing acknowledged was lost, 1 when something was, 2 on bad usage or setup failure.",
        "sluice-loadgen");
    cli::configure(app);
    options o;
    declare_flags(app, o);
    command_line result;
    if (const auto status = cli::parse(app, args, out, err)) {
        result.exit_status = *status;
        return result;
    }
    if (auto problem = finish_options(o)) {
        err << "sluice-loadgen: " << *problem << "\n";
        result.exit_status = cli::exit_usage;
        return result;
    }
    result.run = std::move(o);
    return result;
}

}  // namespace sluice::loadgen
