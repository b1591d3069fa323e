// SPDX-License-Identifier: Apache-2.0
//
// The broker's unit of routing: one application message, immutable once built and
// shared (by shared_ptr) between every subscriber, queue, retained slot and shard it
// reaches, so that fan-out never copies the payload. Per-subscriber details (QoS,
// packet id, retain flag, subscription ids, topic alias) are decided at send time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "mqtt/types.h"

namespace sluice::broker {

using session_key = uint64_t;  // (shard index << 48) | per-shard serial; 0 = none

struct message {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    bool retain = false;
    // Properties forwarded unchanged to subscribers (MQTT 5 §3.3.2.3): payload format,
    // content type, response topic, correlation data, user properties. Never topic
    // alias or subscription identifiers, which are per connection / per subscriber.
    mqtt::properties props;
    // Absolute expiry on the monotonic clock in ms (0 = never), from Message Expiry Interval,
    // and that interval as received: what is forwarded never exceeds it (MQTT-3.3.2-6).
    int64_t expires_at_ms = 0;
    uint32_t expiry_interval_s = 0;
    session_key publisher = 0;
    // Published on another node of the cluster and relayed here (relay.h): routed to this
    // node's subscribers, never relayed back.
    bool from_other_node = false;
    // In a cluster that balances shared subscriptions across nodes: this copy is for one
    // shared group only ("$share/{group}/{filter}"), taken from that group's Kafka consumer
    // group (relay.h); empty for the usual routing.
    std::string shared_group;
    // Where the relay read it in the messages topic (relay.h); -1 when it did not (this
    // node's own clients, shared group copies). A session resumed from another node skips
    // what its replay already brought (shard::replay_done).
    int32_t relay_partition = -1;
    int64_t relay_offset = -1;
};

using message_ptr = std::shared_ptr<const message>;

// The Message Expiry Interval to forward at `now_ms` (same monotonic clock as expires_at_ms):
// what is left in whole seconds, rounded down so it never exceeds the received interval minus
// the time spent here, and at least 1 while the message is still alive.
inline uint32_t remaining_expiry_s(const message& m, int64_t now_ms) {
    int64_t left_s = std::max<int64_t>(1, (m.expires_at_ms - now_ms) / 1000);
    if (m.expiry_interval_s != 0) left_s = std::min<int64_t>(left_s, m.expiry_interval_s);
    return static_cast<uint32_t>(left_s);
}

}  // namespace sluice::broker
