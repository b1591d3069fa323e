// SPDX-License-Identifier: Apache-2.0
//
// Why a packet was rejected. Each value is one specific violation of the MQTT 3.1.1 / 5.0
// specification, so tests and logs can say exactly what was wrong; to_reason_code() gives the
// reason code the broker puts in its CONNACK/DISCONNECT before closing the connection.
// The table of errc -> reason code is in docs/mqtt-codec.md; keep both in sync.
#pragma once

#include <cstdint>
#include <system_error>

#include "mqtt/types.h"

namespace sluice::mqtt {

enum class errc : int {
    // Framing (Malformed Packet 0x81 unless noted)
    malformed_remaining_length = 1,   // 5th length byte, or not the shortest encoding
    packet_too_large,                 // header + remaining length > max packet size (0x95)
    invalid_packet_type,              // type 0, or AUTH on a 3.1.1 connection
    reserved_flags,                   // fixed-header flag bits other than the spec's
    truncated,                        // a field runs past the end of the packet
    trailing_bytes,                   // bytes left after the last field
    malformed_variable_byte_integer,  // inside the packet (property length, subscription id)
    // Strings
    malformed_utf8,       // ill-formed UTF-8 or a UTF-16 surrogate
    utf8_null_character,  // U+0000 in a UTF-8 string
    // CONNECT / CONNACK
    bad_protocol_name,             // not "MQTT" (level 4/5) nor "MQIsdp" (level 3)
    unsupported_protocol_version,  // level not 3, 4 or 5 (0x84)
    connect_reserved_flag,         // CONNECT flags bit 0 set
    will_flags_invalid,            // will QoS 3, or will QoS/retain without the will flag
    password_without_username,     // 3.1.1: password flag without user name flag
    connack_reserved_flags,        // acknowledge flags bits 7-1 set
    session_present_on_failure,    // CONNACK refusing the connection with session present (0x82)
    // PUBLISH
    invalid_qos,          // QoS 3 in PUBLISH or a subscription
    dup_on_qos0,          // DUP flag with QoS 0
    topic_name_invalid,   // empty, or containing + or # (0x90)
    topic_alias_missing,  // 5.0: empty topic name without a topic alias (0x82)
    zero_packet_id,       // packet identifier 0 where one is required (0x82)
    // SUBSCRIBE / UNSUBSCRIBE / acks
    topic_filter_invalid,           // wildcard placement, empty filter, bad $share (0x8F)
    subscription_options_reserved,  // reserved bits of the subscription options set
    invalid_retain_handling,        // retain handling 3 (0x82)
    no_local_on_shared,             // No Local on a $share subscription (0x82)
    empty_subscribe,                // SUBSCRIBE without a subscription (0x82)
    empty_unsubscribe,              // UNSUBSCRIBE without a filter (0x82)
    empty_ack_payload,              // SUBACK/UNSUBACK (5.0) without a reason code (0x82)
    invalid_reason_code,            // reason/return code not allowed for this packet type
    // Properties (5.0)
    malformed_property,        // property length runs past the packet, or a value is cut
    unknown_property,          // identifier not defined by the spec
    property_not_allowed,      // identifier not allowed in this packet type
    duplicate_property,        // single-occurrence property repeated (0x82)
    invalid_property_value,    // e.g. receive maximum 0, a boolean byte > 1 (0x82)
    auth_data_without_method,  // authentication data without a method (0x82)
};

const std::error_category& mqtt_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// The reason code the broker sends for a decode error: mqtt errc -> 0x81/0x82/0x84/0x8F/0x90/0x95;
// any other category (or no error) -> 0x83 Implementation specific error.
reason_code to_reason_code(std::error_code ec) noexcept;

}  // namespace sluice::mqtt

template <>
struct std::is_error_code_enum<sluice::mqtt::errc> : std::true_type {};
