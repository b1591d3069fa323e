// SPDX-License-Identifier: Apache-2.0
//
// Command-line parsing for sluice-loadgen. Scenario presets set the defaults that make
// each scenario meaningful (fanin: 8 raw publishers as fast as possible into one
// subscriber); any explicit flag overrides them, whatever its position.
#include "options.h"

#include <charconv>
#include <cstdlib>
#include <functional>
#include <map>

namespace sluice::loadgen {
namespace {

bool parse_double(const std::string& s, double& out) {
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end != s.c_str() && *end == '\0' && out >= 0;
}

template <typename T>
bool parse_uint(const std::string& s, T& out, uint64_t max) {
    uint64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || v > max) return false;
    out = static_cast<T>(v);
    return true;
}

void apply_preset(options& o, scenario s) {
    o.kind = s;
    switch (s) {
        case scenario::steady:
        case scenario::ramp:
            break;
        case scenario::storm:
            o.persistent = true;
            break;
        case scenario::fanin:
            o.devices = 8;
            o.rate = 0;
            o.format = payload_kind::raw;
            o.topic = "bench/fanin/{device}";
            o.subscribe = true;
            o.subscribers = 1;
            break;
        case scenario::fanout:
        case scenario::slow_subscriber:
            o.devices = 1;
            o.rate = 1000;
            o.format = payload_kind::raw;
            o.topic = "bench/fanout/{device}";
            o.subscribe = true;
            o.subscribers = 10;
            break;
    }
}

}  // namespace

const char* to_string(scenario s) {
    switch (s) {
        case scenario::steady: return "steady";
        case scenario::ramp: return "ramp";
        case scenario::storm: return "storm";
        case scenario::fanout: return "fanout";
        case scenario::slow_subscriber: return "slow-subscriber";
        case scenario::fanin: return "fanin";
    }
    return "?";
}

const char* usage() {
    return R"(usage: sluice-loadgen [options]
  --host H --port P            broker (default 127.0.0.1:1883)
  --scenario S                 steady | ramp | storm | fanout | slow-subscriber | fanin
  --devices N | --publishers N publishing connections (1..100000)
  --rate R                     per device: readings/s (binary/json) or msgs/s (raw); 0 = max
  --duration S                 seconds of load (default 10)
  --qos 0|1|2  --mqtt 3.1.1|5  --persistent
  --topic T                    template with {device} (default devices/{device}/telemetry)
  --device-prefix P            device names P<index> (default lg-)
  --client-prefix P            client ids P-pub-<i>, P-sub-<i> (default lg)
  --format binary|json|raw  --payload-size B (raw)
  --batch-bytes B --flush-bytes B --flush-ms MS --metrics N   edge batching (280/140/1000/4)
  --max-inflight N --max-queue N --threads N
  --subscribe | --no-subscribe  --subscribers N  --sub-qos Q  --sub-filter F
  --source-addrs N --connect-rate R --keep-alive S
  --step S --ramp-factor F --max-latency-ms MS --max-steps N     (ramp)
  --warmup S --offline S                                         (storm)
  --slow-bytes-per-sec B                                         (slow-subscriber)
  --verify-pg URL --verify-timeout S   count rows per device in PostgreSQL's telemetry
  --drain-timeout S  --json FILE  --quiet  --help
)";
}

result<options> parse_options(const std::vector<std::string>& args, std::string& error, bool& help) {
    options o;
    help = false;
    // Presets first.
    for (size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] != "--scenario") continue;
        const std::string& v = args[i + 1];
        static const std::map<std::string, scenario> names = {
            {"steady", scenario::steady}, {"ramp", scenario::ramp}, {"storm", scenario::storm},
            {"fanout", scenario::fanout}, {"slow-subscriber", scenario::slow_subscriber},
            {"fanin", scenario::fanin}};
        const auto it = names.find(v);
        if (it == names.end()) {
            error = "unknown scenario '" + v + "'";
            return std::make_error_code(std::errc::invalid_argument);
        }
        apply_preset(o, it->second);
    }
    using setter = std::function<bool(const std::string&)>;
    const std::map<std::string, setter> flags = {
        {"--host", [&](const std::string& v) { o.host = v; return !v.empty(); }},
        {"--port", [&](const std::string& v) { return parse_uint(v, o.port, 65535); }},
        {"--scenario", [&](const std::string&) { return true; }},
        {"--devices", [&](const std::string& v) { return parse_uint(v, o.devices, 100000) && o.devices > 0; }},
        {"--publishers", [&](const std::string& v) { return parse_uint(v, o.devices, 100000) && o.devices > 0; }},
        {"--rate", [&](const std::string& v) { return parse_double(v, o.rate); }},
        {"--duration", [&](const std::string& v) { return parse_double(v, o.duration_s) && o.duration_s > 0; }},
        {"--qos", [&](const std::string& v) { return parse_uint(v, o.qos, 2); }},
        {"--mqtt", [&](const std::string& v) {
             if (v == "3.1.1" || v == "4") o.protocol = mqtt::version::v3_1_1;
             else if (v == "5" || v == "5.0") o.protocol = mqtt::version::v5;
             else return false;
             return true;
         }},
        {"--topic", [&](const std::string& v) { o.topic = v; return !v.empty(); }},
        {"--device-prefix", [&](const std::string& v) { o.device_prefix = v; return true; }},
        {"--client-prefix", [&](const std::string& v) { o.client_prefix = v; return !v.empty(); }},
        {"--format", [&](const std::string& v) {
             if (v == "binary") o.format = payload_kind::binary;
             else if (v == "json") o.format = payload_kind::json;
             else if (v == "raw") o.format = payload_kind::raw;
             else return false;
             return true;
         }},
        {"--payload-size", [&](const std::string& v) { return parse_uint(v, o.payload_size, 1 << 20); }},
        {"--batch-bytes", [&](const std::string& v) { return parse_uint(v, o.batch_capacity, 65536) && o.batch_capacity >= 40; }},
        {"--flush-bytes", [&](const std::string& v) { return parse_uint(v, o.flush_bytes, 65536) && o.flush_bytes > 0; }},
        {"--flush-ms", [&](const std::string& v) { return parse_uint(v, o.flush_ms, 3600000); }},
        {"--metrics", [&](const std::string& v) { return parse_uint(v, o.metrics, 1000) && o.metrics > 0; }},
        {"--max-inflight", [&](const std::string& v) { return parse_uint(v, o.max_inflight, 65535) && o.max_inflight > 0; }},
        {"--max-queue", [&](const std::string& v) { return parse_uint(v, o.max_queue, 10000000) && o.max_queue > 0; }},
        {"--threads", [&](const std::string& v) { return parse_uint(v, o.threads, 64) && o.threads > 0; }},
        {"--subscribers", [&](const std::string& v) { return parse_uint(v, o.subscribers, 10000) && o.subscribers > 0; }},
        {"--sub-qos", [&](const std::string& v) { return parse_uint(v, o.sub_qos, 2); }},
        {"--sub-filter", [&](const std::string& v) { o.sub_filter = v; return !v.empty(); }},
        {"--source-addrs", [&](const std::string& v) { return parse_uint(v, o.source_addrs, 250); }},
        {"--connect-rate", [&](const std::string& v) { return parse_double(v, o.connect_rate) && o.connect_rate > 0; }},
        {"--keep-alive", [&](const std::string& v) { return parse_uint(v, o.keep_alive, 65535); }},
        {"--json", [&](const std::string& v) { o.json_file = v; return !v.empty(); }},
        {"--drain-timeout", [&](const std::string& v) { return parse_double(v, o.drain_timeout_s); }},
        {"--step", [&](const std::string& v) { return parse_double(v, o.step_s) && o.step_s > 0; }},
        {"--ramp-factor", [&](const std::string& v) { return parse_double(v, o.ramp_factor) && o.ramp_factor > 1; }},
        {"--max-latency-ms", [&](const std::string& v) { return parse_double(v, o.max_latency_ms); }},
        {"--max-steps", [&](const std::string& v) { return parse_uint(v, o.max_steps, 1000) && o.max_steps > 0; }},
        {"--warmup", [&](const std::string& v) { return parse_double(v, o.warmup_s); }},
        {"--offline", [&](const std::string& v) { return parse_double(v, o.offline_s); }},
        {"--slow-bytes-per-sec", [&](const std::string& v) { return parse_uint(v, o.slow_bytes_per_s, 1u << 30) && o.slow_bytes_per_s > 0; }},
        {"--verify-pg", [&](const std::string& v) { o.verify_pg = v; return !v.empty(); }},
        {"--verify-timeout", [&](const std::string& v) { return parse_double(v, o.verify_timeout_s); }},
    };
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--help" || a == "-h") {
            help = true;
            return o;
        }
        if (a == "--subscribe") { o.subscribe = true; continue; }
        if (a == "--no-subscribe") { o.subscribe = false; continue; }
        if (a == "--persistent") { o.persistent = true; continue; }
        if (a == "--quiet") { o.quiet = true; continue; }
        const auto it = flags.find(a);
        if (it == flags.end()) {
            error = "unknown option '" + a + "'";
            return std::make_error_code(std::errc::invalid_argument);
        }
        if (i + 1 >= args.size()) {
            error = "option '" + a + "' needs a value";
            return std::make_error_code(std::errc::invalid_argument);
        }
        if (!it->second(args[i + 1])) {
            error = "bad value '" + args[i + 1] + "' for " + a;
            return std::make_error_code(std::errc::invalid_argument);
        }
        ++i;
    }
    if (o.sub_qos < 0) o.sub_qos = o.qos;
    if (o.flush_bytes > o.batch_capacity) o.flush_bytes = o.batch_capacity;
    if (o.format == payload_kind::raw && o.payload_size < raw_header_size) o.payload_size = raw_header_size;
    if (o.kind == scenario::slow_subscriber && o.subscribers < 2) o.subscribers = 2;
    if (o.kind == scenario::storm && !o.persistent) {
        error = "the storm scenario needs persistent sessions";
        return std::make_error_code(std::errc::invalid_argument);
    }
    return o;
}

}  // namespace sluice::loadgen
