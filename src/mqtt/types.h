// SPDX-License-Identifier: Apache-2.0
//
// The MQTT 3.1.1 / 5.0 packets as plain values. The codec (mqtt/codec.h) turns bytes into these
// and back; the broker reads and builds them. One struct per packet type, all with defaulted
// operator== so that round trips can be compared; 3.1.1 packets simply leave the 5.0-only fields
// (properties, reason codes) at their defaults. See docs/mqtt-codec.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace sluice::mqtt {

// Protocol level byte of CONNECT. v3_1 is "MQIsdp" level 3 and is coded exactly like 3.1.1.
enum class version : uint8_t { v3_1 = 3, v3_1_1 = 4, v5 = 5 };

enum class packet_type : uint8_t {
    connect = 1,
    connack,
    publish,
    puback,
    pubrec,
    pubrel,
    pubcomp,
    subscribe,
    suback,
    unsubscribe,
    unsuback,
    pingreq,
    pingresp,
    disconnect,
    auth
};

// MQTT 5.0 reason codes (spec §2.4). Several names share a value, as in the spec.
enum class reason_code : uint8_t {
    success = 0x00,
    normal_disconnection = 0x00,
    granted_qos_0 = 0x00,
    granted_qos_1 = 0x01,
    granted_qos_2 = 0x02,
    disconnect_with_will_message = 0x04,
    no_matching_subscribers = 0x10,
    no_subscription_existed = 0x11,
    continue_authentication = 0x18,
    re_authenticate = 0x19,
    unspecified_error = 0x80,
    malformed_packet = 0x81,
    protocol_error = 0x82,
    implementation_specific_error = 0x83,
    unsupported_protocol_version = 0x84,
    client_identifier_not_valid = 0x85,
    bad_user_name_or_password = 0x86,
    not_authorized = 0x87,
    server_unavailable = 0x88,
    server_busy = 0x89,
    banned = 0x8A,
    server_shutting_down = 0x8B,
    bad_authentication_method = 0x8C,
    keep_alive_timeout = 0x8D,
    session_taken_over = 0x8E,
    topic_filter_invalid = 0x8F,
    topic_name_invalid = 0x90,
    packet_identifier_in_use = 0x91,
    packet_identifier_not_found = 0x92,
    receive_maximum_exceeded = 0x93,
    topic_alias_invalid = 0x94,
    packet_too_large = 0x95,
    message_rate_too_high = 0x96,
    quota_exceeded = 0x97,
    administrative_action = 0x98,
    payload_format_invalid = 0x99,
    retain_not_supported = 0x9A,
    qos_not_supported = 0x9B,
    use_another_server = 0x9C,
    server_moved = 0x9D,
    shared_subscriptions_not_supported = 0x9E,
    connection_rate_exceeded = 0x9F,
    maximum_connect_time = 0xA0,
    subscription_identifiers_not_supported = 0xA1,
    wildcard_subscriptions_not_supported = 0xA2
};

// The spec's name of the code ("Malformed Packet"); for shared values, the first name in §2.4.
// Unknown values give "Unknown".
const char* to_string(reason_code code);
const char* to_string(packet_type type);

struct user_property {
    std::string key;
    std::string value;
    friend bool operator==(const user_property&, const user_property&) = default;
};

// Every MQTT 5.0 property (spec §2.2.2.2), as decoded. Encoded in ascending identifier order.
struct properties {
    std::optional<uint8_t> payload_format_indicator;           // 0x01
    std::optional<uint32_t> message_expiry_interval;           // 0x02
    std::optional<std::string> content_type;                   // 0x03
    std::optional<std::string> response_topic;                 // 0x08
    std::optional<std::string> correlation_data;               // 0x09 (binary)
    std::vector<uint32_t> subscription_identifiers;            // 0x0B (PUBLISH may carry several)
    std::optional<uint32_t> session_expiry_interval;           // 0x11
    std::optional<std::string> assigned_client_identifier;     // 0x12
    std::optional<uint16_t> server_keep_alive;                 // 0x13
    std::optional<std::string> authentication_method;          // 0x15
    std::optional<std::string> authentication_data;            // 0x16 (binary)
    std::optional<uint8_t> request_problem_information;        // 0x17
    std::optional<uint32_t> will_delay_interval;               // 0x18
    std::optional<uint8_t> request_response_information;       // 0x19
    std::optional<std::string> response_information;           // 0x1A
    std::optional<std::string> server_reference;               // 0x1C
    std::optional<std::string> reason_string;                  // 0x1F
    std::optional<uint16_t> receive_maximum;                   // 0x21
    std::optional<uint16_t> topic_alias_maximum;               // 0x22
    std::optional<uint16_t> topic_alias;                       // 0x23
    std::optional<uint8_t> maximum_qos;                        // 0x24
    std::optional<uint8_t> retain_available;                   // 0x25
    std::vector<user_property> user_properties;                // 0x26 (repeatable, order kept)
    std::optional<uint32_t> maximum_packet_size;               // 0x27
    std::optional<uint8_t> wildcard_subscription_available;    // 0x28
    std::optional<uint8_t> subscription_identifier_available;  // 0x29
    std::optional<uint8_t> shared_subscription_available;      // 0x2A

    bool empty() const;
    friend bool operator==(const properties&, const properties&) = default;
};

struct will {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    bool retain = false;
    properties props;
    friend bool operator==(const will&, const will&) = default;
};

struct connect {
    version protocol = version::v5;
    bool clean_start = true;
    uint16_t keep_alive = 0;
    std::string client_id;
    std::optional<will> will_message;
    std::optional<std::string> username;
    std::optional<std::string> password;
    properties props;
    friend bool operator==(const connect&, const connect&) = default;
};

// For 3.1.1 the encoder maps reason codes to return codes 0..5 (0x84->1, 0x85->2, 0x88->3,
// 0x86->4, 0x87->5; 0x8C->4, 0x8A->5, any other failure -> 3) and the decoder maps 0..5 back.
struct connack {
    bool session_present = false;
    reason_code code = reason_code::success;
    properties props;
    friend bool operator==(const connack&, const connack&) = default;
};

struct publish {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    uint16_t packet_id = 0;  // meaningful only when qos > 0
    properties props;
    friend bool operator==(const publish&, const publish&) = default;
};

struct puback {
    uint16_t packet_id = 0;
    reason_code code = reason_code::success;
    properties props;
    friend bool operator==(const puback&, const puback&) = default;
};
struct pubrec {
    uint16_t packet_id = 0;
    reason_code code = reason_code::success;
    properties props;
    friend bool operator==(const pubrec&, const pubrec&) = default;
};
struct pubrel {
    uint16_t packet_id = 0;
    reason_code code = reason_code::success;
    properties props;
    friend bool operator==(const pubrel&, const pubrel&) = default;
};
struct pubcomp {
    uint16_t packet_id = 0;
    reason_code code = reason_code::success;
    properties props;
    friend bool operator==(const pubcomp&, const pubcomp&) = default;
};

struct subscription {
    std::string filter;
    uint8_t qos = 0;
    bool no_local = false;             // 5.0 only
    bool retain_as_published = false;  // 5.0 only
    uint8_t retain_handling = 0;       // 5.0 only: 0, 1 or 2
    friend bool operator==(const subscription&, const subscription&) = default;
};

struct subscribe {
    uint16_t packet_id = 0;
    std::vector<subscription> entries;
    properties props;
    friend bool operator==(const subscribe&, const subscribe&) = default;
};

// 3.1.1 return codes are 0, 1, 2 and 0x80; the encoder maps every 5.0 failure code to 0x80.
struct suback {
    uint16_t packet_id = 0;
    std::vector<reason_code> codes;
    properties props;
    friend bool operator==(const suback&, const suback&) = default;
};

struct unsubscribe {
    uint16_t packet_id = 0;
    std::vector<std::string> filters;
    properties props;
    friend bool operator==(const unsubscribe&, const unsubscribe&) = default;
};

// 3.1.1 UNSUBACK has no payload: codes are dropped by the encoder and empty when decoded.
struct unsuback {
    uint16_t packet_id = 0;
    std::vector<reason_code> codes;
    properties props;
    friend bool operator==(const unsuback&, const unsuback&) = default;
};

struct pingreq {
    friend bool operator==(const pingreq&, const pingreq&) = default;
};
struct pingresp {
    friend bool operator==(const pingresp&, const pingresp&) = default;
};

struct disconnect {
    reason_code code = reason_code::normal_disconnection;
    properties props;
    friend bool operator==(const disconnect&, const disconnect&) = default;
};

// 5.0 only.
struct auth {
    reason_code code = reason_code::success;
    properties props;
    friend bool operator==(const auth&, const auth&) = default;
};

// The alternatives are in packet_type order: index() + 1 == packet_type.
using packet = std::variant<connect, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe, suback, unsubscribe,
                            unsuback, pingreq, pingresp, disconnect, auth>;

packet_type type_of(const packet& p);

}  // namespace sluice::mqtt
