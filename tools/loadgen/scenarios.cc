// SPDX-License-Identifier: Apache-2.0
//
// The load phase of each scenario (see scenarios.h).
#include "scenarios.h"

#include <algorithm>
#include <cstdio>

namespace sluice::loadgen {
namespace {

void run_ramp(shared_state& s, const std::vector<std::unique_ptr<worker>>& ws, progress& prog, results& r) {
    const options& opts = s.opts;
    double scale = 1.0;
    for (uint32_t step = 0; step < opts.max_steps; ++step) {
        s.rate_scale.store(scale, std::memory_order_relaxed);
        const totals a = sum(ws);
        const histogram ha = merged_ack_latency(ws);
        wait_for(prog, opts.step_s, "ramp");
        const totals b = sum(ws);
        histogram hb = merged_ack_latency(ws);
        hb.subtract(ha);
        ramp_step st;
        st.offered_readings_per_s = static_cast<double>(b.generated - a.generated) / opts.step_s;
        st.acked_readings_per_s = static_cast<double>(opts.qos > 0 ? b.readings_acked - a.readings_acked
                                                                   : b.readings_sent - a.readings_sent) /
                                  opts.step_s;
        st.acked_msgs_per_s = static_cast<double>(b.acked - a.acked) / opts.step_s;
        st.ack_p99_us = hb.percentile(0.99);
        // Edge batching delays acks by up to flush_ms, so acked < offered within a step
        // even when the broker keeps up. The step passes while payloads do not pile up
        // behind the inflight window (at most one queued per device), nothing was
        // dropped or refused, no connection failed, and ack p99 is within the bound.
        st.backlog = static_cast<uint64_t>(std::max<int64_t>(0, b.queued));
        st.passed = st.backlog <= opts.devices && b.errors == a.errors && b.dropped == a.dropped &&
                    b.rejected == a.rejected && static_cast<double>(st.ack_p99_us) <= opts.max_latency_ms * 1000.0;
        r.steps.push_back(st);
        if (!opts.quiet) {
            std::fprintf(
                stderr,
                "ramp step %u: offered %.0f readings/s, acked %.0f readings/s, backlog %llu, ack p99 %.2fms -> %s\n",
                step, st.offered_readings_per_s, st.acked_readings_per_s, static_cast<unsigned long long>(st.backlog),
                static_cast<double>(st.ack_p99_us) / 1000.0, st.passed ? "ok" : "limit");
        }
        if (!st.passed) break;
        r.max_loss_free_readings_per_s = st.offered_readings_per_s;
        scale *= opts.ramp_factor;
    }
}

void run_storm(shared_state& s, const std::vector<std::unique_ptr<worker>>& ws, progress& prog, results& r) {
    const options& opts = s.opts;
    wait_for(prog, opts.warmup_s, "warmup");
    s.current.store(static_cast<int>(phase::offline), std::memory_order_release);
    wait_for(prog, opts.offline_s, "offline");
    const totals at_storm = sum(ws);
    r.storm_backlog_peak = static_cast<uint64_t>(std::max<int64_t>(0, at_storm.queued));
    r.storm_backlog_unacked = r.storm_backlog_peak + static_cast<uint64_t>(std::max<int64_t>(0, at_storm.inflight));
    const auto t_storm = clock_type::now();
    s.current.store(static_cast<int>(phase::reconnecting), std::memory_order_release);
    bool all_connected = false;
    bool sent = false;
    bool acked = false;
    bool delivered = !opts.subscribe;
    while (seconds_since(t_storm) < opts.duration_s + 30) {
        const totals t = sum(ws);
        const double now_s = seconds_since(t_storm);
        if (!all_connected && t.ready == static_cast<int64_t>(opts.devices)) {
            all_connected = true;
            r.storm_reconnect_s = now_s;
        }
        if (all_connected && !sent && t.queued == 0) {
            sent = true;
            r.storm_drain_s = now_s;
        }
        if (!acked && t.acked - at_storm.acked >= r.storm_backlog_unacked) {
            acked = true;
            r.storm_acked_s = now_s;
        }
        if (!delivered && t.received - at_storm.received >= r.storm_backlog_unacked) {
            delivered = true;
            r.storm_delivered_s = now_s;
        }
        if (sent && acked && delivered) break;
        prog.tick("storm");
        sleep_ms(5);
    }
    wait_for(prog, 1.0, "storm");
}

}  // namespace

void run_load_phase(shared_state& s, const std::vector<std::unique_ptr<worker>>& ws, progress& prog, results& r) {
    const options& opts = s.opts;
    if (opts.kind == scenario::ramp) {
        run_ramp(s, ws, prog, r);
    } else if (opts.kind == scenario::storm) {
        run_storm(s, ws, prog, r);
    } else {
        wait_for(prog, opts.duration_s, opts.kind == scenario::fanin ? "fanin" : to_string(opts.kind));
    }
}

}  // namespace sluice::loadgen
