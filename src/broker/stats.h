// SPDX-License-Identifier: Apache-2.0
//
// Per-shard counters. Each shard writes only its own (relaxed atomics, one cache line
// group per shard); /metrics sums them across shards.
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice::broker {

struct shard_stats {
    std::atomic<uint64_t> connections_current{0};
    std::atomic<uint64_t> connections_total{0};
    std::atomic<uint64_t> sessions_current{0};
    std::atomic<uint64_t> messages_received{0};
    std::atomic<uint64_t> messages_sent{0};
    std::atomic<uint64_t> bytes_received{0};
    std::atomic<uint64_t> dropped_qos0_slow_subscriber{0};  // QoS 0 to a connection with too much unsent output
    std::atomic<uint64_t> dropped_qos0_offline{0};          // QoS 0 to an offline session (never queued)
    std::atomic<uint64_t> dropped_queue_full{0};            // QoS 1/2 beyond max_queued_messages/bytes
    std::atomic<uint64_t> dropped_subscriber_queue{0};      // QoS 1/2 past a clean subscriber's online bound
    std::atomic<uint64_t> dropped_global_quota{0};          // QoS 1/2 for offline sessions past max_queued_bytes_total
    std::atomic<uint64_t> dropped_spool_error{0};           // QoS 1/2 a session's spool could not write or read back
    std::atomic<uint64_t> slow_subscriber_disconnects{0};   // online subscribers past their queue (0x97)
    std::atomic<uint64_t> partial_packet_timeouts{0};       // closed: a packet not complete in time
    std::atomic<uint64_t> input_budget_closes{0};           // closed: partial input past the global budget
    std::atomic<uint64_t> topic_limit_refusals{0};          // filters refused / PUBLISHes closed: too long or deep
    std::atomic<uint64_t> dropped_too_large{0};             // larger than the client's Maximum Packet Size
    std::atomic<uint64_t> dropped_expired{0};               // Message Expiry Interval passed before delivery
    std::atomic<uint64_t> publish_rate_limited{0};          // PUBLISHes held by mqtt.max_publish_rate
    std::atomic<uint64_t> malformed_packets{0};
    std::atomic<uint64_t> protocol_errors{0};
    std::atomic<uint64_t> ingest_appended{0};
    std::atomic<uint64_t> ingest_failed{0};
    std::atomic<uint64_t> ingest_quota_refused{0};
    std::atomic<uint64_t> ingest_paused{0};  // publishes held (reading paused) at the quota
    std::atomic<uint64_t> wills_published{0};
    std::atomic<uint64_t> sessions_expired{0};
    std::atomic<uint64_t> keep_alive_timeouts{0};
    std::atomic<uint64_t> takeovers{0};
    // Sessions across nodes (relay.h): resumed here from another node, handed to another
    // node, and messages replayed to resumed sessions.
    std::atomic<uint64_t> sessions_resumed_from_cluster{0};
    std::atomic<uint64_t> sessions_claimed_elsewhere{0};
    std::atomic<uint64_t> messages_replayed_from_cluster{0};
    std::atomic<uint64_t> subscriptions{0};  // of this shard's sessions
    // DUP=1 resends of logged messages, acknowledged without logging (resend_window.h).
    std::atomic<uint64_t> resends_acknowledged{0};

    static void add(std::atomic<uint64_t>& c, uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    // Counts one more in `c` and returns the new total; `log_worthy` tells whether it is a
    // power of two, so that a repeated event is logged at 1, 2, 4, ... and not each time.
    static uint64_t count(std::atomic<uint64_t>& c) {
        add(c);
        return c.load(std::memory_order_relaxed);
    }
    static bool log_worthy(uint64_t total) { return (total & (total - 1)) == 0; }
    static void sub(std::atomic<uint64_t>& c, uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
    }
};

}  // namespace sluice::broker
