// SPDX-License-Identifier: Apache-2.0
//
// The broker's unit of routing: one application message, immutable once built and
// shared (by shared_ptr) between every subscriber, queue, retained slot and shard it
// reaches, so that fan-out never copies the payload. Per-subscriber details (QoS,
// packet id, retain flag, subscription ids, topic alias) are decided at send time.
#pragma once

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
    // Absolute expiry on the monotonic clock in ms (0 = never), from Message Expiry Interval.
    int64_t expires_at_ms = 0;
    session_key publisher = 0;
};

using message_ptr = std::shared_ptr<const message>;

}  // namespace sluice::broker
