// SPDX-License-Identifier: Apache-2.0
//
// Broker limits and policies. Every field has a key in config/sluice.toml ([mqtt]
// section) with the same name and default; CONNACK advertises the limits to MQTT 5
// clients.
#pragma once

#include <cstdint>

namespace sluice::broker {

struct broker_options {
    // Largest packet the server accepts (checked before allocating). Advertised as Maximum Packet Size.
    uint32_t max_packet_size = 1024 * 1024;
    // How many QoS 1/2 PUBLISHes a client may have unacknowledged towards us (Receive Maximum).
    uint16_t receive_maximum = 1024;
    // Outbound window per session: QoS 1/2 messages sent but not yet acknowledged. The
    // client's own Receive Maximum lowers it for MQTT 5 clients.
    uint16_t max_inflight_messages = 256;
    // A session's own quota: QoS 1/2 messages it may hold beyond the inflight window
    // (the backlog an offline persistent session keeps). Past it new ones are dropped, counted.
    uint32_t max_queued_messages = 10000;
    uint64_t max_queued_bytes = 64ull * 1024 * 1024;
    // Bytes queued for all sessions together (offline backlogs and online queues beyond
    // the window). Past it, new QoS 1/2 messages for offline sessions are dropped and
    // counted (reason "global_quota"), so many offline sessions cannot exhaust memory and
    // the state journal. Online subscribers keep their own bound. 0 = no limit.
    uint64_t max_queued_bytes_total = 1024ull * 1024 * 1024;
    // A connection whose unsent output exceeds this is "slow": QoS 0 to it is dropped and
    // counted, and a QoS 1/2 message for it counts as over its subscriber queue.
    uint64_t max_pending_output_bytes = 16ull * 1024 * 1024;
    // The queue of an online subscriber (see broker/subscriber_queue.h): QoS 1/2 messages
    // waiting beyond its inflight window, and their bytes. Past either bound the subscriber
    // is disconnected with Quota exceeded (0x97) instead of slowing anyone down; a
    // persistent session keeps its backlog up to max_queued_messages/bytes.
    uint32_t subscriber_queue_messages = 1000;
    uint64_t subscriber_queue_bytes = 16ull * 1024 * 1024;
    // Past that bound, a subscriber whose session ends with its connection (clean session,
    // expiry 0) has nothing a disconnect would keep: by default (drop) it stays connected
    // and the QoS 1/2 messages past its bound are dropped and counted, as QoS 0 is.
    // `disconnect` treats it like a persistent one (0x97).
    enum class clean_overflow_policy : uint8_t { drop, disconnect };
    clean_overflow_policy clean_subscriber_overflow = clean_overflow_policy::drop;
    // A packet that has started must be complete within this many ms (whatever the
    // keep-alive, including 0), else the connection is closed (0x8D for MQTT 5). 0 = no limit.
    uint32_t partial_packet_timeout_ms = 10'000;
    // Bytes held for packets not yet complete, across all connections (net/input_budget.h);
    // the connection that takes the total past it is closed (0x97 for MQTT 5). 0 = no limit.
    uint64_t max_partial_input_bytes = 256ull * 1024 * 1024;
    // Connections on all MQTT listeners together, per source address, and new connections
    // per second per source address (net/connection_limits.h): past one, a new socket is
    // closed when accepted, before anything is read. 0 = no limit.
    uint32_t max_connections = 0;
    uint32_t max_connections_per_address = 0;
    uint32_t max_connection_rate_per_address = 0;
    // PUBLISHes per second one client may send (a burst of the same number). Past it the
    // PUBLISH is held and the client's socket not read until the rate allows it: a throttle,
    // not a loss, felt by the client as TCP back-pressure. 0 = no limit.
    uint32_t max_publish_rate = 0;
    // Largest topic name or filter (bytes) and most levels in one (broker/topic_limits.h):
    // past either a filter gets SUBACK 0x8F, a PUBLISH closes with 0x90. 0 = no limit.
    uint32_t max_topic_length = 4096;
    uint32_t max_topic_levels = 128;
    uint16_t topic_alias_maximum = 64;
    // 0 = accept the client's keep-alive; else the largest we allow (Server Keep Alive).
    uint16_t max_keep_alive = 0;
    // Longest a session is kept after disconnect (seconds), whatever a client asks for.
    // 0xFFFFFFFF = never expire.
    uint32_t max_session_expiry = 0xFFFFFFFF;
    // How long an MQTT 3.1/3.1.1 clean-session=0 session is kept after disconnect (the
    // protocol has no expiry of its own; capped by max_session_expiry). 0xFFFFFFFF = never.
    uint32_t v3_session_expiry = 7 * 24 * 3600;
    bool retain_available = true;
    bool wildcard_subscription_available = true;
    bool shared_subscription_available = true;
    bool subscription_identifiers_available = true;
    uint8_t maximum_qos = 2;
    // What an ingest PUBLISH meets while the bus is over its quota: `pause` holds it and
    // stops reading that client's socket until there is room (nothing is refused, the
    // client just waits); `refuse` answers QoS 1/2 with Quota exceeded (0x97; MQTT 3.1.1
    // clients are disconnected unacknowledged, so they retransmit later).
    enum class over_quota_policy : uint8_t { pause, refuse };
    over_quota_policy ingest_over_quota = over_quota_policy::pause;
    // Bytes of ingest PUBLISHes read but not yet durable in the bus, over all connections
    // and per connection ([ingest] max_inflight_bytes / max_inflight_bytes_per_connection).
    // Past either, the connection stops reading until appends complete
    // (broker/ingest_budget.h).
    uint64_t ingest_max_inflight_bytes = 64ull * 1024 * 1024;
    uint64_t ingest_max_inflight_bytes_per_connection = 4ull * 1024 * 1024;
    // The resend rule (broker/resend_window.h, docs/delivery.md): how many of a persistent
    // session's latest logged QoS 1/2 packet ids are remembered, durably, so that its
    // resend (DUP=1) of one of them is acknowledged without being logged twice. Clients
    // with more unacknowledged PUBLISHes than this may see duplicates after a restart.
    // 0 = rule off.
    uint16_t resend_window = 32;
    // Accept MQTT 3.1.1 CONNECTs with an empty client id and clean session (we assign one).
    bool allow_zero_length_client_id = true;
};

}  // namespace sluice::broker
