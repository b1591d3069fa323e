// SPDX-License-Identifier: Apache-2.0
//
// The values the broker keeps in the state store, as plain structs with pure encode and
// decode functions. They are deliberately independent of the broker's own types
// (broker::session, broker::message, mqtt::properties): the on-disk layout must not change
// when an in-memory type does, so the broker maps to and from these at the boundary.
// Every time here is wall-clock milliseconds since the Unix epoch, so that session expiry,
// will delay and message expiry keep running across a restart (the broker's monotonic
// clock does not survive one). Layouts: docs/decisions/0002-session-persistence.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "broker/persist/errc.h"

namespace sluice::broker::persist {

// The MQTT 5 properties a stored message keeps (those forwarded to subscribers).
struct message_properties {
    std::optional<uint8_t> payload_format_indicator;
    std::optional<std::string> content_type;
    std::optional<std::string> response_topic;
    std::optional<std::string> correlation_data;
    std::vector<std::pair<std::string, std::string>> user_properties;  // order kept
    friend bool operator==(const message_properties&, const message_properties&) = default;
};

// An application message: a retained message (kind::retained, key = topic) or the message
// inside a session_message_record.
struct message_record {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;  // 0..2
    bool retain = false;
    message_properties props;
    int64_t expires_at_ms = 0;  // absolute wall-clock expiry; 0 = never
    friend bool operator==(const message_record&, const message_record&) = default;
};

struct subscription_record {
    std::string filter;  // as subscribed, including any "$share/<group>/" prefix
    uint8_t qos = 0;     // 0..2
    bool no_local = false;
    bool retain_as_published = false;
    uint8_t retain_handling = 0;   // 0..2
    uint32_t subscription_id = 0;  // 0 = none
    friend bool operator==(const subscription_record&, const subscription_record&) = default;
};

struct will_record {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;  // 0..2
    bool retain = false;
    message_properties props;
    // Message Expiry Interval in seconds, counted from publication (not from now).
    std::optional<uint32_t> message_expiry_interval;
    int64_t due_at_ms = 0;  // wall-clock time the will is to be published
    friend bool operator==(const will_record&, const will_record&) = default;
};

// A session (kind::session, key = client id): everything but its outbound messages,
// which are separate session_message records so that one ack rewrites one small record.
struct session_record {
    std::string client_id;
    uint8_t protocol_version = 5;    // 3 (3.1), 4 (3.1.1) or 5
    uint32_t expiry_interval = 0;    // seconds; 0xFFFFFFFF = never
    int64_t disconnected_at_ms = 0;  // wall clock; 0 = connected when written
    std::vector<subscription_record> subscriptions;
    std::vector<uint16_t> inbound_qos2;  // PUBREC sent, awaiting PUBREL
    std::optional<will_record> will;
    friend bool operator==(const session_record&, const session_record&) = default;
};

// One outbound QoS 1/2 message of a session (kind::session_message, key =
// session_message_key(client_id, order)).
struct session_message_record {
    enum class state : uint8_t { queued = 0, await_puback = 1, await_pubrec = 2, await_pubcomp = 3 };
    uint64_t order = 0;      // send order within the session
    uint16_t packet_id = 0;  // 0 while queued
    state st = state::queued;
    uint8_t qos = 0;      // as granted to this subscriber, 0..2
    bool retain = false;  // the RETAIN flag as sent to this subscriber
    std::vector<uint32_t> subscription_ids;
    message_record message;
    friend bool operator==(const session_message_record&, const session_message_record&) = default;
};

// The last message a persistent session's client logged under one packet id (the resend
// rule, broker/resend_window.h): key = resend_entry_key(client_id, slot), slot =
// packet_id modulo the window size, so a session keeps at most that many keys.
struct resend_entry_record {
    uint16_t packet_id = 0;
    uint64_t fingerprint = 0;  // broker::resend_fingerprint(topic, payload)
    friend bool operator==(const resend_entry_record&, const resend_entry_record&) = default;
};

// Every log record of this bus partition below `next_offset` has its resend_entry record
// queued before this one (key = resend_checkpoint_key(partition)): a restart rebuilds
// the windows from the store and from the log's records from `next_offset` on.
struct resend_checkpoint_record {
    uint64_t next_offset = 0;
    friend bool operator==(const resend_checkpoint_record&, const resend_checkpoint_record&) = default;
};

// Where a persistent session's queued messages are on disk (kind::spool, key = client
// id): the records of spool file `file_id` in [read_offset, end_offset) are queued, not
// yet handed to the client (broker/session_spool.h). `count`/`bytes` describe that range
// so that a restart need not read it; `last_order` is the send order of its last record.
struct spool_record {
    uint64_t file_id = 0;
    uint64_t read_offset = 0;
    uint64_t end_offset = 0;
    uint64_t count = 0;
    uint64_t bytes = 0;  // topic + payload bytes, as the broker's queue quotas count them
    uint64_t last_order = 0;
    friend bool operator==(const spool_record&, const spool_record&) = default;
};

// Encoders never fail: every field fits by construction (REQUIRES: enum-like fields in
// range; checked with SLUICE_CHECK).
std::string encode(const message_record& m);
std::string encode(const session_record& s);
std::string encode(const session_message_record& m);
std::string encode(const resend_entry_record& e);
std::string encode(const resend_checkpoint_record& c);
std::string encode(const spool_record& s);

// Decoders check every length and range. Returns errc::corruption for malformed bytes and
// errc::unsupported_version for a record version this build does not know.
result<message_record> decode_message_record(std::string_view bytes);
result<session_record> decode_session_record(std::string_view bytes);
result<session_message_record> decode_session_message_record(std::string_view bytes);
result<resend_entry_record> decode_resend_entry_record(std::string_view bytes);
result<resend_checkpoint_record> decode_resend_checkpoint_record(std::string_view bytes);
result<spool_record> decode_spool_record(std::string_view bytes);

// Keys of session messages: u16 big-endian length of the client id, the client id, u64
// big-endian order. Keys of one session share the prefix session_message_prefix(client_id)
// (for state_store::erase_prefix) and sort by order.
std::string session_message_prefix(std::string_view client_id);
std::string session_message_key(std::string_view client_id, uint64_t order);
// Splits a session message key; false when `key` is not one.
bool parse_session_message_key(std::string_view key, std::string& client_id, uint64_t& order);

// Keys of resend entries: session_message_prefix(client_id), then the slot as u16
// big-endian (erase_prefix of kind::resend_entry with that prefix drops a session's).
std::string resend_entry_key(std::string_view client_id, uint16_t slot);
bool parse_resend_entry_key(std::string_view key, std::string& client_id, uint16_t& slot);
// u32 big-endian partition number.
std::string resend_checkpoint_key(uint32_t partition);
bool parse_resend_checkpoint_key(std::string_view key, uint32_t& partition);

}  // namespace sluice::broker::persist
