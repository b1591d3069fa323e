// SPDX-License-Identifier: Apache-2.0
//
// The value of a relayed message in Kafka: u8 format version (1), u64 little-endian id of
// the node that published it, then the message as the state store keeps it
// (persist::encode(message_record): topic, payload, QoS, retain, forwarded properties,
// absolute wall-clock expiry). The record's key is the MQTT topic, so one topic's messages
// stay in order in one partition, and the retained topic compacts to one per MQTT topic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "broker/persist/records.h"

namespace sluice::cluster {

struct relayed_message {
    uint64_t node = 0;
    broker::persist::message_record message;
};

std::string encode(const relayed_message& m);
// Errors: broker::persist::errc::corruption (malformed), unsupported_version.
result<relayed_message> decode_relayed(std::string_view bytes);

// The partition of `topic` among `partitions` (the same on every node and build).
uint32_t partition_of(std::string_view topic, uint32_t partitions);

}  // namespace sluice::cluster
