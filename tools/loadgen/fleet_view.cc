// SPDX-License-Identifier: Apache-2.0
//
// The main thread's view of a run (see fleet_view.h).
#include "fleet_view.h"

#include <cstdio>
#include <thread>

namespace sluice::loadgen {

totals sum(const std::vector<std::unique_ptr<worker>>& ws) {
    totals t;
    for (const auto& w : ws) {
        const worker_stats& s = w->stats;
        t.published += s.published.load(std::memory_order_relaxed);
        t.acked += s.acked.load(std::memory_order_relaxed);
        t.rejected += s.rejected.load(std::memory_order_relaxed);
        t.readings_sent += s.readings_sent.load(std::memory_order_relaxed);
        t.readings_acked += s.readings_acked.load(std::memory_order_relaxed);
        t.generated += s.readings_generated.load(std::memory_order_relaxed);
        t.received += s.received.load(std::memory_order_relaxed);
        t.errors += s.errors.load(std::memory_order_relaxed);
        t.reconnects += s.reconnects.load(std::memory_order_relaxed);
        t.resumed += s.sessions_resumed.load(std::memory_order_relaxed);
        t.dropped += s.dropped.load(std::memory_order_relaxed);
        t.connects += s.connects.load(std::memory_order_relaxed);
        t.inflight += s.inflight.load(std::memory_order_relaxed);
        t.queued += s.queued.load(std::memory_order_relaxed);
        t.ready += s.ready.load(std::memory_order_relaxed);
        t.sub_ready += s.sub_ready.load(std::memory_order_relaxed);
    }
    return t;
}

histogram merged_ack_latency(const std::vector<std::unique_ptr<worker>>& ws) {
    histogram h;
    for (const auto& w : ws)
        h.merge(w->stats.ack_latency);
    return h;
}

histogram merged_connect_latency(const std::vector<std::unique_ptr<worker>>& ws) {
    histogram h;
    for (const auto& w : ws)
        h.merge(w->stats.connect_latency);
    return h;
}

double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

void progress::tick(const char* label) {
    const auto now = clock_type::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    const double dt = std::chrono::duration<double>(now - last_).count();
    const totals t = sum(ws_);
    // churn: connections per second and their set-up latency instead of messages.
    const bool churn = opts_.kind == scenario::churn;
    histogram h = churn ? merged_connect_latency(ws_) : merged_ack_latency(ws_);
    histogram window = h;
    window.subtract(prev_hist_);
    if (!opts_.quiet && started_ && churn) {
        std::fprintf(stderr, "[%s] connects %.0f/s | conn %lld err %llu | connect p50 %.2fms p99 %.2fms\n", label,
                     static_cast<double>(t.connects - prev_.connects) / dt, static_cast<long long>(t.ready),
                     static_cast<unsigned long long>(t.errors), static_cast<double>(window.percentile(0.5)) / 1000.0,
                     static_cast<double>(window.percentile(0.99)) / 1000.0);
    } else if (!opts_.quiet && started_) {
        std::fprintf(stderr,
                     "[%s] pub %.0f/s ack %.0f/s recv %.0f/s | acked %llu inflight %lld queued %lld | conn %lld+%lld "
                     "err %llu | ack p50 %.2fms p99 %.2fms\n",
                     label, static_cast<double>(t.published - prev_.published) / dt,
                     static_cast<double>(t.acked - prev_.acked) / dt,
                     static_cast<double>(t.received - prev_.received) / dt, static_cast<unsigned long long>(t.acked),
                     static_cast<long long>(t.inflight), static_cast<long long>(t.queued),
                     static_cast<long long>(t.ready), static_cast<long long>(t.sub_ready),
                     static_cast<unsigned long long>(t.errors), static_cast<double>(window.percentile(0.5)) / 1000.0,
                     static_cast<double>(window.percentile(0.99)) / 1000.0);
    }
    started_ = true;
    prev_ = t;
    prev_hist_ = h;
    last_ = now;
}

void sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

void wait_for(progress& prog, double seconds, const char* label) {
    const auto until = clock_type::now() + std::chrono::duration<double>(seconds);
    while (clock_type::now() < until) {
        prog.tick(label);
        sleep_ms(20);
    }
}

}  // namespace sluice::loadgen
