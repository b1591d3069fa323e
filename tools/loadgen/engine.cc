// SPDX-License-Identifier: Apache-2.0
//
// The load engine's run (see engine.h), on the main thread: resolve the broker, place the
// connections on the workers, then the phases: connect every connection (bounded), the
// scenario's load (scenarios.cc), drain acks and deliveries (bounded), and sum up the
// workers' counters and ledgers after joining them. The main thread only sets the phase
// and reads atomic counters while the workers run (worker.h).
#include "engine.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/assert.h"
#include "fleet_view.h"
#include "scenarios.h"
#include "shared_state.h"
#include "verify_pg.h"
#include "worker.h"

namespace sluice::loadgen {
namespace {

// Raises the soft open-file limit towards `wanted`; returns the limit now in force.
uint64_t raise_fd_limit(uint64_t wanted) {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
    if (lim.rlim_cur < wanted) {
        lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(wanted));
        (void)setrlimit(RLIMIT_NOFILE, &lim);
        (void)getrlimit(RLIMIT_NOFILE, &lim);
    }
    return lim.rlim_cur;
}

}  // namespace

result<results> run(const options& opts) {
    shared_state s(opts);
    s.sub_filter = opts.sub_filter.empty() ? s.topics.filter() : opts.sub_filter;
    s.broker.sin_family = AF_INET;
    s.broker.sin_port = htons(opts.port);
    if (inet_pton(AF_INET, opts.host.c_str(), &s.broker.sin_addr) != 1) {
        addrinfo hints{};
        hints.ai_family = AF_INET;
        addrinfo* res = nullptr;
        if (getaddrinfo(opts.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        s.broker.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    if (opts.transport != transport_kind::tcp) {
        std::string error;
        s.links = link_config::create(opts, error);
        if (!s.links) {
            std::fprintf(stderr, "loadgen: %s\n", error.c_str());
            return std::make_error_code(std::errc::invalid_argument);
        }
    }
    const uint32_t subs = opts.subscribe ? opts.subscribers : 0;
    const uint64_t connections = uint64_t{opts.devices} + subs;
    const uint64_t fds_needed = connections + 64;
    const uint64_t fd_limit = raise_fd_limit(fds_needed + 1024);
    if (fd_limit < fds_needed) {
        std::fprintf(stderr, "loadgen: %llu connections need %llu open files but the limit is %llu (ulimit -Hn)\n",
                     static_cast<unsigned long long>(connections), static_cast<unsigned long long>(fds_needed),
                     static_cast<unsigned long long>(fd_limit));
        return std::make_error_code(std::errc::too_many_files_open);
    }

    const uint32_t threads = opts.threads;
    SLUICE_CHECK(threads > 0, "at least one worker thread (command_line.cc enforces it)");
    std::vector<std::unique_ptr<worker>> ws;
    for (uint32_t i = 0; i < threads; ++i)
        ws.push_back(std::make_unique<worker>(s, i));
    // Subscribers round robin from worker 0, publishers continue where they stopped,
    // so with several threads the fan-in subscriber does not share a loop with the
    // first publishers.
    uint32_t next = 0;
    for (uint32_t i = 0; i < subs; ++i) {
        ws[next % threads]->add_subscriber(i, opts.kind == scenario::slow_subscriber && i == 0);
        ++next;
    }
    for (uint32_t d = 0; d < opts.devices; ++d) {
        ws[next % threads]->add_publisher(d);
        ++next;
    }
    results r;
    r.scenario = to_string(opts.kind);
    r.transport = to_string(opts.transport);
    r.connections = connections;
    r.subscribed = subs > 0;

    progress prog(opts, ws);
    const int64_t started_us = unix_now_ns() / 1000 - 1'000'000;
    const auto t_connect = clock_type::now();
    for (auto& w : ws)
        w->start();
    // Phase 1: every connection up (bounded).
    const double connect_budget = 30.0 + static_cast<double>(r.connections) / opts.connect_rate * 2;
    while (true) {
        const totals t = sum(ws);
        if (t.ready == static_cast<int64_t>(opts.devices) && t.sub_ready == static_cast<int64_t>(subs)) break;
        if (seconds_since(t_connect) > connect_budget) {
            std::fprintf(stderr, "loadgen: only %lld/%u publishers and %lld/%u subscribers connected after %.0fs\n",
                         static_cast<long long>(t.ready), opts.devices, static_cast<long long>(t.sub_ready), subs,
                         connect_budget);
            break;
        }
        prog.tick("connect");
        sleep_ms(10);
    }
    r.connect_s = seconds_since(t_connect);

    // Phase 2: load.
    const totals before = sum(ws);
    const histogram ack_before = merged_ack_latency(ws);
    const auto t_run = clock_type::now();
    s.current.store(static_cast<int>(phase::running), std::memory_order_release);
    run_load_phase(s, ws, prog, r);
    r.run_s = seconds_since(t_run);
    const totals after = sum(ws);
    histogram run_acks = merged_ack_latency(ws);
    run_acks.subtract(ack_before);

    // Phase 3: stop producing, wait for acks, then for deliveries (bounded).
    const auto t_drain = clock_type::now();
    s.current.store(static_cast<int>(phase::draining), std::memory_order_release);
    uint64_t last_received = 0;
    auto last_progress = clock_type::now();
    while (seconds_since(t_drain) < opts.drain_timeout_s) {
        const totals t = sum(ws);
        const bool acks_done =
            s.workers_draining.load(std::memory_order_acquire) == opts.threads && t.queued == 0 && t.inflight == 0;
        const uint32_t counted_subs = subs - (opts.kind == scenario::slow_subscriber ? 1 : 0);
        const uint64_t expected = (opts.qos > 0 ? t.acked : t.published) * counted_subs;
        if (t.received != last_received) {
            last_received = t.received;
            last_progress = clock_type::now();
        }
        const bool deliveries_done =
            subs == 0 || t.received >= expected || seconds_since(last_progress) > (opts.qos > 0 ? 3.0 : 1.0);
        if (acks_done && deliveries_done) break;
        prog.tick("drain");
        sleep_ms(10);
    }
    r.drain_s = seconds_since(t_drain);
    s.current.store(static_cast<int>(phase::stopping), std::memory_order_release);
    for (auto& w : ws)
        w->join();

    const totals end = sum(ws);
    r.published = end.published;
    r.acked = end.acked;
    r.rejected = end.rejected;
    r.readings_sent = end.readings_sent;
    r.readings_acked = end.readings_acked;
    r.dropped_queue_full = end.dropped;
    r.errors = end.errors;
    r.reconnects = end.reconnects;
    r.sessions_resumed = end.resumed;
    r.ack_latency = merged_ack_latency(ws);
    r.connect_latency = merged_connect_latency(ws);
    r.connects = end.connects;
    {
        const sluice::mutex_lock lock(s.tls_mutex);
        r.tls = s.tls_description;
    }
    const double run_s = std::max(r.run_s, 1e-9);
    r.connects_per_s = static_cast<double>(after.connects - before.connects) / run_s;
    if (opts.qos > 0) {
        r.msgs_per_s = static_cast<double>(after.acked - before.acked) / run_s;
        r.readings_per_s = static_cast<double>(after.readings_acked - before.readings_acked) / run_s;
    } else {
        r.msgs_per_s = static_cast<double>(after.published - before.published) / run_s;
        r.readings_per_s = static_cast<double>(after.readings_sent - before.readings_sent) / run_s;
    }
    r.received_per_s = static_cast<double>(after.received - before.received) / run_s;
    (void)run_acks;
    for (auto& w : ws) {
        for (auto& c : w->conns) {
            if (!c->subscriber) continue;
            const reconciliation one = reconcile(s.sends, *c->ledger);
            if (c->slow) {
                r.slow_received = one.received;
                r.slow_lost = one.lost;
                continue;
            }
            r.totals.sent = one.sent;
            r.totals.acked = one.acked;
            r.totals.received += one.received;
            r.totals.unique_received += one.unique_received;
            r.totals.duplicates += one.duplicates;
            r.totals.foreign += one.foreign;
            r.totals.lost += one.lost;
            r.totals.missing_unacked += one.missing_unacked;
            r.totals.gaps += one.gaps;
            r.totals.unexpected += one.unexpected;
            r.e2e_latency.merge(c->ledger->latency());
        }
    }
    if (!opts.verify_pg.empty()) {
        pg_expectation e;
        e.readings_acked = s.sends.acked_readings();
        e.device_prefix = opts.device_prefix;
        e.since_us = started_us;
        const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(opts.verify_timeout_s * 1000));
        auto v = verify_pg(opts.verify_pg, e, timeout, std::min(timeout, std::chrono::milliseconds(10'000)));
        if (!v) return v.error();
        r.pg = *v;
        r.verified_pg = true;
    }
    return r;
}

}  // namespace sluice::loadgen
