// SPDX-License-Identifier: Apache-2.0
//
// What the main thread and the worker threads of the load engine share (engine.h): the
// scenario's phase, which the main thread sets and the workers follow, and each worker's
// counters, which the workers write and the main thread reads for the progress line and
// the phase logic. Everything else a worker owns alone.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "accounting.h"
#include "base/thread_annotations.h"
#include "options.h"
#include "transport.h"
#include "truth.h"

namespace sluice::loadgen {

using clock_type = std::chrono::steady_clock;

inline int64_t mono_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

enum class phase : int { connecting, running, offline, reconnecting, draining, stopping };

// Counters a worker publishes for the progress line and the phase logic.
struct worker_stats {
    std::atomic<uint64_t> published{0}, acked{0}, rejected{0}, readings_sent{0}, readings_acked{0};
    std::atomic<uint64_t> readings_generated{0}, received{0}, errors{0}, reconnects{0}, sessions_resumed{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> connects{0};  // CONNACKs accepted
    std::atomic<int64_t> inflight{0}, queued{0}, ready{0}, sub_ready{0};
    histogram ack_latency;
    histogram connect_latency;  // socket() -> CONNACK, us
};

struct shared_state {
    const options& opts;
    topic_template topics;
    std::string sub_filter;
    sockaddr_in broker{};
    std::atomic<int> current{static_cast<int>(phase::connecting)};
    std::atomic<double> rate_scale{1.0};
    std::atomic<uint32_t> workers_draining{0};  // workers that have closed their open batches
    send_ledger sends;
    std::unique_ptr<link_config> links;  // --transport tls | ws | wss; null for tcp
    // The first link failure is printed (the rest are counted as errors), and the
    // negotiated TLS parameters are noted once for the summary.
    std::atomic<bool> link_error_reported{false};
    sluice::mutex tls_mutex;
    std::string tls_description SLUICE_GUARDED_BY(tls_mutex);
    explicit shared_state(const options& o) : opts(o), topics(o.topic, o.device_prefix), sends(o.devices) {}
    phase now() const { return static_cast<phase>(current.load(std::memory_order_acquire)); }
};

}  // namespace sluice::loadgen
