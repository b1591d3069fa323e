// SPDX-License-Identifier: Apache-2.0
//
// The "mqtt" error category and the errc -> reason code table. The table is documented in
// docs/mqtt-codec.md; change both together.
#include "mqtt/errc.h"

#include <string>

namespace sluice::mqtt {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "mqtt"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::malformed_remaining_length:
                return "malformed remaining length";
            case errc::packet_too_large:
                return "packet too large";
            case errc::invalid_packet_type:
                return "invalid packet type";
            case errc::reserved_flags:
                return "reserved fixed-header flags";
            case errc::truncated:
                return "packet truncated";
            case errc::trailing_bytes:
                return "trailing bytes after packet";
            case errc::malformed_variable_byte_integer:
                return "malformed variable byte integer";
            case errc::malformed_utf8:
                return "malformed UTF-8 string";
            case errc::utf8_null_character:
                return "U+0000 in UTF-8 string";
            case errc::bad_protocol_name:
                return "bad protocol name";
            case errc::unsupported_protocol_version:
                return "unsupported protocol version";
            case errc::connect_reserved_flag:
                return "CONNECT reserved flag set";
            case errc::will_flags_invalid:
                return "inconsistent will flags";
            case errc::password_without_username:
                return "password without user name";
            case errc::connack_reserved_flags:
                return "CONNACK reserved flags set";
            case errc::session_present_on_failure:
                return "session present on refused connection";
            case errc::invalid_qos:
                return "invalid QoS";
            case errc::dup_on_qos0:
                return "DUP flag on QoS 0 PUBLISH";
            case errc::topic_name_invalid:
                return "invalid topic name";
            case errc::topic_alias_missing:
                return "empty topic name without topic alias";
            case errc::zero_packet_id:
                return "packet identifier 0";
            case errc::topic_filter_invalid:
                return "invalid topic filter";
            case errc::subscription_options_reserved:
                return "subscription options reserved bits set";
            case errc::invalid_retain_handling:
                return "retain handling 3";
            case errc::no_local_on_shared:
                return "No Local on shared subscription";
            case errc::empty_subscribe:
                return "SUBSCRIBE without subscriptions";
            case errc::empty_unsubscribe:
                return "UNSUBSCRIBE without topic filters";
            case errc::empty_ack_payload:
                return "acknowledgement without reason codes";
            case errc::invalid_reason_code:
                return "reason code not valid for packet";
            case errc::malformed_property:
                return "malformed property";
            case errc::unknown_property:
                return "unknown property identifier";
            case errc::property_not_allowed:
                return "property not allowed in packet";
            case errc::duplicate_property:
                return "property included more than once";
            case errc::invalid_property_value:
                return "invalid property value";
            case errc::auth_data_without_method:
                return "authentication data without method";
        }
        return "unknown mqtt error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& mqtt_category() noexcept {
    static const category instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), mqtt_category()};
}

reason_code to_reason_code(std::error_code ec) noexcept {
    if (!ec || ec.category() != mqtt_category()) return reason_code::implementation_specific_error;
    switch (static_cast<errc>(ec.value())) {
        case errc::packet_too_large:
            return reason_code::packet_too_large;
        case errc::unsupported_protocol_version:
            return reason_code::unsupported_protocol_version;
        case errc::topic_name_invalid:
            return reason_code::topic_name_invalid;
        case errc::topic_filter_invalid:
            return reason_code::topic_filter_invalid;
        case errc::session_present_on_failure:
        case errc::topic_alias_missing:
        case errc::zero_packet_id:
        case errc::invalid_retain_handling:
        case errc::no_local_on_shared:
        case errc::empty_subscribe:
        case errc::empty_unsubscribe:
        case errc::empty_ack_payload:
        case errc::duplicate_property:
        case errc::invalid_property_value:
        case errc::auth_data_without_method:
            return reason_code::protocol_error;
        case errc::malformed_remaining_length:
        case errc::invalid_packet_type:
        case errc::reserved_flags:
        case errc::truncated:
        case errc::trailing_bytes:
        case errc::malformed_variable_byte_integer:
        case errc::malformed_utf8:
        case errc::utf8_null_character:
        case errc::bad_protocol_name:
        case errc::connect_reserved_flag:
        case errc::will_flags_invalid:
        case errc::password_without_username:
        case errc::connack_reserved_flags:
        case errc::invalid_qos:
        case errc::dup_on_qos0:
        case errc::subscription_options_reserved:
        case errc::invalid_reason_code:
        case errc::malformed_property:
        case errc::unknown_property:
        case errc::property_not_allowed:
            return reason_code::malformed_packet;
    }
    return reason_code::implementation_specific_error;
}

}  // namespace sluice::mqtt
