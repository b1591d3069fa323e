// SPDX-License-Identifier: Apache-2.0
//
// The load engine of sluice-loadgen: one epoll loop per thread, many MQTT client
// connections per loop (publishing devices and subscribers), driven through the
// scenario's phases by run(). Its own small client loop rather than src/net's server
// loop: a client needs connect timers, per-device schedules and outgoing batching that
// the server loop does not have, and the tool must also run against other brokers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accounting.h"
#include "options.h"
#include "verify_pg.h"

namespace sluice::loadgen {

// One step of the ramp scenario.
struct ramp_step {
    double offered_readings_per_s = 0;
    double acked_readings_per_s = 0;
    double acked_msgs_per_s = 0;
    int64_t ack_p99_us = 0;
    uint64_t backlog = 0;  // payloads queued behind the inflight windows at the step's end
    bool passed = false;
};

// Everything a run measured; written as the summary and as --json.
struct results {
    std::string transport;  // tcp | tls | ws | wss
    std::string tls;        // the negotiated TLS version and cipher ("" without TLS)
    std::string scenario;
    double connect_s = 0;  // time to connect (and subscribe) every connection
    double run_s = 0;      // the load phase
    double drain_s = 0;    // after the load: waiting for acks and deliveries
    uint64_t connections = 0;
    uint64_t published = 0;  // PUBLISH packets written (retransmissions excluded)
    uint64_t acked = 0;      // PUBACK / PUBCOMP received
    uint64_t rejected = 0;   // acks with a failure reason code
    uint64_t readings_sent = 0;
    uint64_t readings_acked = 0;
    uint64_t dropped_queue_full = 0;  // payloads never sent: the device's queue was full
    uint64_t errors = 0;              // connection failures and protocol errors
    uint64_t reconnects = 0;
    uint64_t sessions_resumed = 0;  // CONNACKs with session present
    double msgs_per_s = 0;          // during the load phase: acked (QoS>0) or published (QoS 0)
    double readings_per_s = 0;
    histogram ack_latency;  // publish -> PUBACK/PUBCOMP, us
    // Every CONNACK of the run (churn: most of them in the load phase), and socket() ->
    // CONNACK per connection (TCP connect, TLS handshake, WebSocket upgrade, CONNECT), us.
    uint64_t connects = 0;
    double connects_per_s = 0;  // during the load phase
    histogram connect_latency;
    bool subscribed = false;
    reconciliation totals;  // summed over subscribers
    histogram e2e_latency;  // publish -> receive, us
    double received_per_s = 0;
    // slow-subscriber: totals and e2e_latency cover the other subscribers only; the slow
    // one's deliveries (and what it had not received when the run stopped) are here.
    uint64_t slow_received = 0;
    uint64_t slow_lost = 0;
    // ramp
    std::vector<ramp_step> steps;
    double max_loss_free_readings_per_s = 0;
    // storm
    double storm_reconnect_s = 0;
    double storm_drain_s = 0;  // the devices' offline queues were empty (all sent)
    // As many messages as the backlog (queued + unacknowledged at reconnect) were
    // acknowledged / delivered to the subscriber since the reconnect (0: not within the
    // run). A count, not per-device tracking: new payloads acked before another device's
    // backlog also count, so this is when a backlog-sized volume was absorbed.
    double storm_acked_s = 0;
    double storm_delivered_s = 0;
    uint64_t storm_backlog_peak = 0;     // payloads queued on the devices at reconnect
    uint64_t storm_backlog_unacked = 0;  // + unacknowledged in flight at the disconnect
    // --verify-pg
    bool verified_pg = false;
    pg_verdict pg;
};

// Runs the scenario to completion (bounded by its durations and drain timeout) and
// returns its measurements. Returns errc-style failures for setup problems (bad host).
result<results> run(const options& opts);

}  // namespace sluice::loadgen
