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
#include <vector>

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

// A persistent session in the sessions topic (docs/cluster.md "Sessions across nodes"),
// keyed by client id: u8 format version (1), u64 owner node, u64 epoch, i64 written at
// (wall-clock ms), u8 ended, u32 count and that many i64 positions, then (unless ended) the
// session as the state store keeps it (persist::encode(session_record)).
struct cluster_session {
    uint64_t owner = 0;  // the node that holds it
    // Raised by one each time a node takes the session (a new session or a resume): the
    // highest epoch owns it; equal epochs go to the higher node id.
    uint64_t epoch = 0;
    int64_t written_at_ms = 0;
    bool ended = false;  // clean start or expiry: nothing to resume
    // Per partition of the messages topic: everything before was routed to the session at
    // the owner and reached its client; a node resuming it replays from here.
    std::vector<int64_t> positions;
    broker::persist::session_record session;
};

std::string encode(const cluster_session& s);
// Errors: broker::persist::errc::corruption (malformed), unsupported_version.
result<cluster_session> decode_cluster_session(std::string_view bytes);

// The partition of `topic` among `partitions` (the same on every node and build).
uint32_t partition_of(std::string_view topic, uint32_t partitions);

}  // namespace sluice::cluster
