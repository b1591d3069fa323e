// SPDX-License-Identifier: Apache-2.0
//
// sluice-loadgen: fleet simulator and load generator for Sluice and any other MQTT
// broker. Parses the command line (command_line.cc), runs the scenario (engine.h), prints
// the summary and writes --json. Exit status: 0 when the run completed and no acknowledged
// message was lost, 1 when acknowledged messages (or, with --verify-pg, acknowledged
// readings) were lost, 2 on bad usage or setup failure.
// Documented in docs/loadgen.md.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "command_line.h"
#include "engine.h"

namespace {

using sluice::loadgen::histogram;
using sluice::loadgen::options;
using sluice::loadgen::results;

double ms(int64_t us) {
    return static_cast<double>(us) / 1000.0;
}

void print_latency(std::FILE* f, const char* name, const histogram& h) {
    std::fprintf(f, "  %-18s n=%llu p50=%.3fms p99=%.3fms max=%.3fms mean=%.3fms\n", name,
                 static_cast<unsigned long long>(h.count()), ms(h.percentile(0.5)), ms(h.percentile(0.99)), ms(h.max()),
                 h.mean() / 1000.0);
}

void json_latency(std::FILE* f, const char* name, const histogram& h, bool comma) {
    std::fprintf(f,
                 "  \"%s\": {\"count\": %llu, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
                 "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f}%s\n",
                 name, static_cast<unsigned long long>(h.count()), ms(h.percentile(0.5)), ms(h.percentile(0.9)),
                 ms(h.percentile(0.99)), ms(h.percentile(0.999)), ms(h.max()), h.mean() / 1000.0, comma ? "," : "");
}

void print_summary(const options& o, const results& r) {
    std::FILE* f = stderr;
    std::fprintf(f, "== sluice-loadgen %s: %u publishers, %llu connections, qos %u, %.1fs ==\n", r.scenario.c_str(),
                 o.devices, static_cast<unsigned long long>(r.connections), o.qos, r.run_s);
    std::fprintf(f, "  transport %s%s%s%s\n", r.transport.c_str(), r.tls.empty() ? "" : " (", r.tls.c_str(),
                 r.tls.empty() ? "" : ")");
    std::fprintf(f, "  connect %.2fs, run %.2fs, drain %.2fs\n", r.connect_s, r.run_s, r.drain_s);
    if (o.kind == sluice::loadgen::scenario::churn) {
        std::fprintf(f, "  connects %llu, %.0f/s during the run (each: connect, CONNACK, DISCONNECT, close)\n",
                     static_cast<unsigned long long>(r.connects), r.connects_per_s);
    }
    print_latency(f, "connect latency", r.connect_latency);
    std::fprintf(
        f, "  published %llu, acked %llu, rejected %llu, dropped(queue full) %llu, errors %llu, reconnects %llu\n",
        static_cast<unsigned long long>(r.published), static_cast<unsigned long long>(r.acked),
        static_cast<unsigned long long>(r.rejected), static_cast<unsigned long long>(r.dropped_queue_full),
        static_cast<unsigned long long>(r.errors), static_cast<unsigned long long>(r.reconnects));
    std::fprintf(f, "  rate %.0f msgs/s, %.0f readings/s (%s)\n", r.msgs_per_s, r.readings_per_s,
                 o.qos > 0 ? "acknowledged" : "published");
    if (o.qos > 0) print_latency(f, "ack latency", r.ack_latency);
    if (r.subscribed) {
        const auto& t = r.totals;
        std::fprintf(f,
                     "  received %llu (%.0f/s), unique %llu, duplicates %llu, LOST(acked) %llu, missing(unacked) %llu, "
                     "gaps %llu, foreign %llu, unexpected %llu\n",
                     static_cast<unsigned long long>(t.received), r.received_per_s,
                     static_cast<unsigned long long>(t.unique_received), static_cast<unsigned long long>(t.duplicates),
                     static_cast<unsigned long long>(t.lost), static_cast<unsigned long long>(t.missing_unacked),
                     static_cast<unsigned long long>(t.gaps), static_cast<unsigned long long>(t.foreign),
                     static_cast<unsigned long long>(t.unexpected));
        print_latency(f, "e2e latency", r.e2e_latency);
        if (o.kind == sluice::loadgen::scenario::slow_subscriber) {
            std::fprintf(
                f, "  (the above: the %u normal subscribers) slow subscriber received %llu, not yet received %llu\n",
                o.subscribers - 1, static_cast<unsigned long long>(r.slow_received),
                static_cast<unsigned long long>(r.slow_lost));
        }
    }
    if (r.verified_pg) {
        std::fprintf(f,
                     "  postgres: expected %llu readings, stored %llu, MISSING %llu (%u devices), extra %llu (%u "
                     "devices), waited %.1fs\n",
                     static_cast<unsigned long long>(r.pg.expected), static_cast<unsigned long long>(r.pg.stored),
                     static_cast<unsigned long long>(r.pg.missing), r.pg.devices_short,
                     static_cast<unsigned long long>(r.pg.extra), r.pg.devices_over, r.pg.waited_s);
    }
    for (size_t i = 0; i < r.steps.size(); ++i) {
        const auto& s = r.steps[i];
        std::fprintf(f,
                     "  step %zu: offered %.0f readings/s, acked %.0f readings/s (%.0f msgs/s), backlog %llu, ack p99 "
                     "%.2fms%s\n",
                     i, s.offered_readings_per_s, s.acked_readings_per_s, s.acked_msgs_per_s,
                     static_cast<unsigned long long>(s.backlog), ms(s.ack_p99_us), s.passed ? "" : "  <- limit");
    }
    if (!r.steps.empty()) {
        std::fprintf(f, "  max loss-free rate: %.0f readings/s%s\n", r.max_loss_free_readings_per_s,
                     r.subscribed && r.totals.lost > 0 ? " (BUT acknowledged messages were lost)" : "");
    }
    if (o.kind == sluice::loadgen::scenario::storm) {
        std::fprintf(
            f,
            "  storm: backlog %llu payloads (%llu with unacked in flight), all reconnected in %.2fs, "
            "backlog sent in %.2fs, backlog-sized volume acked in %.2fs, delivered in %.2fs, sessions resumed %llu\n",
            static_cast<unsigned long long>(r.storm_backlog_peak),
            static_cast<unsigned long long>(r.storm_backlog_unacked), r.storm_reconnect_s, r.storm_drain_s,
            r.storm_acked_s, r.storm_delivered_s, static_cast<unsigned long long>(r.sessions_resumed));
    }
}

bool write_json(const std::string& path, const options& o, const results& r) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) return false;
    const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(f, "{\n  \"scenario\": \"%s\",\n  \"publishers\": %u,\n  \"subscribers\": %u,\n  \"qos\": %u,\n",
                 r.scenario.c_str(), o.devices, r.subscribed ? o.subscribers : 0, o.qos);
    std::fprintf(f, "  \"transport\": \"%s\",\n  \"tls\": \"%s\",\n", r.transport.c_str(), r.tls.c_str());
    std::fprintf(f, "  \"connect_s\": %.3f,\n  \"run_s\": %.3f,\n  \"drain_s\": %.3f,\n", r.connect_s, r.run_s,
                 r.drain_s);
    std::fprintf(f, "  \"connects\": %llu,\n  \"connects_per_s\": %.1f,\n", u(r.connects), r.connects_per_s);
    std::fprintf(f, "  \"sent\": %llu,\n  \"acked\": %llu,\n  \"rejected\": %llu,\n  \"dropped_queue_full\": %llu,\n",
                 u(r.published), u(r.acked), u(r.rejected), u(r.dropped_queue_full));
    std::fprintf(
        f, "  \"readings_sent\": %llu,\n  \"readings_acked\": %llu,\n  \"errors\": %llu,\n  \"reconnects\": %llu,\n",
        u(r.readings_sent), u(r.readings_acked), u(r.errors), u(r.reconnects));
    std::fprintf(f, "  \"sessions_resumed\": %llu,\n  \"msgs_per_s\": %.1f,\n  \"readings_per_s\": %.1f,\n",
                 u(r.sessions_resumed), r.msgs_per_s, r.readings_per_s);
    std::fprintf(
        f, "  \"subscribed\": %s,\n  \"received\": %llu,\n  \"unique_received\": %llu,\n  \"duplicates\": %llu,\n",
        r.subscribed ? "true" : "false", u(r.totals.received), u(r.totals.unique_received), u(r.totals.duplicates));
    std::fprintf(f,
                 "  \"lost\": %llu,\n  \"missing_unacked\": %llu,\n  \"gaps\": %llu,\n  \"foreign\": %llu,\n"
                 "  \"unexpected\": %llu,\n  \"received_per_s\": %.1f,\n",
                 u(r.totals.lost), u(r.totals.missing_unacked), u(r.totals.gaps), u(r.totals.foreign),
                 u(r.totals.unexpected), r.received_per_s);
    if (r.verified_pg) {
        std::fprintf(f,
                     "  \"pg\": {\"expected\": %llu, \"stored\": %llu, \"missing\": %llu, \"extra\": %llu, "
                     "\"devices_short\": %u, \"devices_over\": %u, \"waited_s\": %.3f},\n",
                     u(r.pg.expected), u(r.pg.stored), u(r.pg.missing), u(r.pg.extra), r.pg.devices_short,
                     r.pg.devices_over, r.pg.waited_s);
    }
    std::fprintf(f, "  \"slow_received\": %llu,\n  \"slow_not_received\": %llu,\n", u(r.slow_received), u(r.slow_lost));
    std::fprintf(f, "  \"max_loss_free_readings_per_s\": %.1f,\n  \"steps\": [", r.max_loss_free_readings_per_s);
    for (size_t i = 0; i < r.steps.size(); ++i) {
        const auto& s = r.steps[i];
        std::fprintf(f,
                     "%s{\"offered_readings_per_s\": %.1f, \"acked_readings_per_s\": %.1f, \"acked_msgs_per_s\": %.1f, "
                     "\"ack_p99_ms\": %.3f, \"backlog\": %llu, \"passed\": %s}",
                     i ? ", " : "", s.offered_readings_per_s, s.acked_readings_per_s, s.acked_msgs_per_s,
                     ms(s.ack_p99_us), u(s.backlog), s.passed ? "true" : "false");
    }
    std::fprintf(f,
                 "],\n  \"storm_backlog\": %llu,\n  \"storm_backlog_unacked\": %llu,\n  \"storm_reconnect_s\": %.3f,\n"
                 "  \"storm_drain_s\": %.3f,\n  \"storm_acked_s\": %.3f,\n  \"storm_delivered_s\": %.3f,\n",
                 u(r.storm_backlog_peak), u(r.storm_backlog_unacked), r.storm_reconnect_s, r.storm_drain_s,
                 r.storm_acked_s, r.storm_delivered_s);
    json_latency(f, "ack_latency", r.ack_latency, true);
    json_latency(f, "connect_latency", r.connect_latency, true);
    json_latency(f, "e2e_latency", r.e2e_latency, false);
    std::fprintf(f, "}\n");
    return std::fclose(f) == 0;
}

}  // namespace

// A function-try-block: CLI11 throws on a badly declared option, and nothing may escape main.
int main(int argc, char** argv) try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    const auto command = sluice::loadgen::parse_command_line(args, std::cout, std::cerr);
    if (!command.run) return command.exit_status;
    const options& o = *command.run;
    auto r = sluice::loadgen::run(o);
    if (!r) {
        std::fprintf(stderr, "sluice-loadgen: %s\n", r.error().message().c_str());
        return 2;
    }
    print_summary(o, *r);
    if (!o.json_file.empty() && !write_json(o.json_file, o, *r)) {
        std::fprintf(stderr, "sluice-loadgen: cannot write %s\n", o.json_file.c_str());
        return 2;
    }
    return r->totals.lost > 0 || r->pg.missing > 0 ? 1 : 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", e.what());
    return 2;
}
