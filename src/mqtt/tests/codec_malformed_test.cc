// SPDX-License-Identifier: Apache-2.0
//
// One test per malformed case: hand-written bytes that break one rule of the spec, the errc
// the decoder must report, and the reason code the broker will send for it. Every case is a
// complete packet with a correct remaining length, so only the named rule is broken.
#include <gtest/gtest.h>

#include "mqtt/codec.h"
#include "mqtt/tests/test_packets.h"

namespace sluice::mqtt {
namespace {

using test::decode_one;
using test::hex;

constexpr version v5 = version::v5;
constexpr version v311 = version::v3_1_1;

struct malformed_case {
    const char* name;
    version v;
    const char* bytes;
    errc expected;
    reason_code reason;
};

// Compact CONNECT for 5.0 / 3.1.1 with the given flags byte, keep alive 60, empty client id.
#define CONNECT5(level, flags) "10 0D 00 04 4D 51 54 54 " level " " flags " 00 3C 00 00 00"
#define CONNECT311(flags) "10 0C 00 04 4D 51 54 54 04 " flags " 00 3C 00 00"

const malformed_case cases[] = {
    // Framing
    {"remaining_length_5th_byte", v5, "30 FF FF FF FF 01", errc::malformed_remaining_length,
     reason_code::malformed_packet},
    {"remaining_length_not_minimal", v5, "C0 80 00", errc::malformed_remaining_length, reason_code::malformed_packet},
    {"packet_type_0", v5, "00 00", errc::invalid_packet_type, reason_code::malformed_packet},
    {"auth_on_v311", v311, "F0 00", errc::invalid_packet_type, reason_code::malformed_packet},
    {"pingreq_flags", v5, "C1 00", errc::reserved_flags, reason_code::malformed_packet},
    {"pubrel_flags_0", v5, "60 02 00 01", errc::reserved_flags, reason_code::malformed_packet},
    {"subscribe_flags_0", v311, "80 06 00 01 00 01 61 00", errc::reserved_flags, reason_code::malformed_packet},
    {"unsubscribe_flags_0", v311, "A0 05 00 01 00 01 61", errc::reserved_flags, reason_code::malformed_packet},
    {"connack_flags", v311, "21 02 00 00", errc::reserved_flags, reason_code::malformed_packet},
    {"topic_runs_past_packet", v311, "30 03 00 03 61", errc::truncated, reason_code::malformed_packet},
    {"puback_too_short", v5, "40 01 00", errc::truncated, reason_code::malformed_packet},
    {"pingreq_with_body", v5, "C0 01 00", errc::trailing_bytes, reason_code::malformed_packet},
    {"puback_v311_with_reason", v311, "40 03 00 01 00", errc::trailing_bytes, reason_code::malformed_packet},
    {"disconnect_v311_with_body", v311, "E0 01 00", errc::trailing_bytes, reason_code::malformed_packet},
    {"connect_extra_byte", v311, "10 0D 00 04 4D 51 54 54 04 02 00 3C 00 00 FF", errc::trailing_bytes,
     reason_code::malformed_packet},
    {"property_length_not_minimal", v5, "30 05 00 01 61 80 00", errc::malformed_variable_byte_integer,
     reason_code::malformed_packet},
    {"subscription_id_5_bytes", v5, "30 0A 00 01 61 06 0B FF FF FF FF 7F", errc::malformed_variable_byte_integer,
     reason_code::malformed_packet},
    // Strings
    {"utf8_bad_continuation", v5, "30 05 00 02 C3 28 00", errc::malformed_utf8, reason_code::malformed_packet},
    {"utf8_surrogate", v5, "30 06 00 03 ED A0 80 00", errc::malformed_utf8, reason_code::malformed_packet},
    {"utf8_overlong_null", v5, "30 05 00 02 C0 80 00", errc::malformed_utf8, reason_code::malformed_packet},
    {"utf8_above_10ffff", v5, "30 07 00 04 F4 90 80 80 00", errc::malformed_utf8, reason_code::malformed_packet},
    {"utf8_null", v5, "30 05 00 02 61 00 00", errc::utf8_null_character, reason_code::malformed_packet},
    {"client_id_null", v311, "10 0D 00 04 4D 51 54 54 04 02 00 3C 00 01 00", errc::utf8_null_character,
     reason_code::malformed_packet},
    // CONNECT / CONNACK
    {"protocol_name_mqtx", v5, "10 0D 00 04 4D 51 54 58 05 02 00 3C 00 00 00", errc::bad_protocol_name,
     reason_code::malformed_packet},
    {"protocol_level_6", v5, CONNECT5("06", "02"), errc::unsupported_protocol_version,
     reason_code::unsupported_protocol_version},
    {"mqisdp_level_4", v311, "10 0E 00 06 4D 51 49 73 64 70 04 02 00 3C 00 00", errc::unsupported_protocol_version,
     reason_code::unsupported_protocol_version},
    {"connect_reserved_bit", v5, CONNECT5("05", "03"), errc::connect_reserved_flag, reason_code::malformed_packet},
    {"will_qos_without_will", v5, CONNECT5("05", "0A"), errc::will_flags_invalid, reason_code::malformed_packet},
    {"will_retain_without_will", v311, CONNECT311("22"), errc::will_flags_invalid, reason_code::malformed_packet},
    {"will_qos_3", v311, CONNECT311("1E"), errc::will_flags_invalid, reason_code::malformed_packet},
    {"password_without_username", v311, CONNECT311("42"), errc::password_without_username,
     reason_code::malformed_packet},
    {"will_topic_wildcard", v311, "10 12 00 04 4D 51 54 54 04 06 00 3C 00 00 00 01 23 00 01 78",
     errc::topic_name_invalid, reason_code::topic_name_invalid},
    {"connack_ack_flags", v5, "20 03 02 00 00", errc::connack_reserved_flags, reason_code::malformed_packet},
    {"connack_session_present_on_failure", v311, "20 02 01 05", errc::session_present_on_failure,
     reason_code::protocol_error},
    {"connack_v311_return_code_6", v311, "20 02 00 06", errc::invalid_reason_code, reason_code::malformed_packet},
    // PUBLISH
    {"publish_qos_3", v311, "36 03 00 01 61", errc::invalid_qos, reason_code::malformed_packet},
    {"publish_dup_qos_0", v311, "38 03 00 01 61", errc::dup_on_qos0, reason_code::malformed_packet},
    {"publish_topic_plus", v311, "30 05 00 03 61 2F 2B", errc::topic_name_invalid, reason_code::topic_name_invalid},
    {"publish_topic_hash_v5", v5, "30 05 00 02 61 23 00", errc::topic_name_invalid, reason_code::topic_name_invalid},
    {"publish_topic_empty_v311", v311, "30 02 00 00", errc::topic_name_invalid, reason_code::topic_name_invalid},
    {"publish_topic_empty_no_alias", v5, "30 03 00 00 00", errc::topic_alias_missing, reason_code::protocol_error},
    {"publish_packet_id_0", v311, "32 05 00 01 61 00 00", errc::zero_packet_id, reason_code::protocol_error},
    {"puback_packet_id_0", v5, "40 02 00 00", errc::zero_packet_id, reason_code::protocol_error},
    // SUBSCRIBE / UNSUBSCRIBE / acks
    {"subscribe_packet_id_0", v311, "82 06 00 00 00 01 61 00", errc::zero_packet_id, reason_code::protocol_error},
    {"subscribe_filter_a_plus_b", v311, "82 08 00 01 00 03 61 2B 62 01", errc::topic_filter_invalid,
     reason_code::topic_filter_invalid},
    {"subscribe_filter_hash_not_last", v311, "82 0A 00 01 00 05 61 2F 23 2F 62 01", errc::topic_filter_invalid,
     reason_code::topic_filter_invalid},
    {"subscribe_share_without_filter", v5, "82 0E 00 01 00 00 08 24 73 68 61 72 65 2F 67 00",
     errc::topic_filter_invalid, reason_code::topic_filter_invalid},
    {"subscribe_empty_filter", v311, "82 05 00 01 00 00 00", errc::topic_filter_invalid,
     reason_code::topic_filter_invalid},
    {"unsubscribe_filter_hash_first", v311, "A2 07 00 01 00 03 23 2F 61", errc::topic_filter_invalid,
     reason_code::topic_filter_invalid},
    {"unsubscribe_filter_plus_plus", v311, "A2 06 00 01 00 02 2B 2B", errc::topic_filter_invalid,
     reason_code::topic_filter_invalid},
    {"subscribe_options_qos_3", v311, "82 06 00 01 00 01 61 03", errc::invalid_qos, reason_code::malformed_packet},
    {"subscribe_options_reserved_v311", v311, "82 06 00 01 00 01 61 04", errc::subscription_options_reserved,
     reason_code::malformed_packet},
    {"subscribe_options_reserved_v5", v5, "82 07 00 01 00 00 01 61 C0", errc::subscription_options_reserved,
     reason_code::malformed_packet},
    {"subscribe_retain_handling_3", v5, "82 07 00 01 00 00 01 61 30", errc::invalid_retain_handling,
     reason_code::protocol_error},
    {"subscribe_no_local_shared", v5, "82 10 00 01 00 00 0A 24 73 68 61 72 65 2F 67 2F 61 04", errc::no_local_on_shared,
     reason_code::protocol_error},
    {"subscribe_empty_v5", v5, "82 03 00 01 00", errc::empty_subscribe, reason_code::protocol_error},
    {"subscribe_empty_v311", v311, "82 02 00 01", errc::empty_subscribe, reason_code::protocol_error},
    {"subscribe_missing_options", v311, "82 05 00 01 00 01 61", errc::truncated, reason_code::malformed_packet},
    {"unsubscribe_empty", v311, "A2 02 00 01", errc::empty_unsubscribe, reason_code::protocol_error},
    {"suback_empty", v311, "90 02 00 01", errc::empty_ack_payload, reason_code::protocol_error},
    {"unsuback_v5_empty", v5, "B0 03 00 01 00", errc::empty_ack_payload, reason_code::protocol_error},
    {"suback_v311_code_3", v311, "90 03 00 01 03", errc::invalid_reason_code, reason_code::malformed_packet},
    {"suback_v5_code_0x10", v5, "90 04 00 01 00 10", errc::invalid_reason_code, reason_code::malformed_packet},
    {"puback_v5_code_5", v5, "40 03 00 01 05", errc::invalid_reason_code, reason_code::malformed_packet},
    {"pubrel_v5_code_0x80", v5, "62 03 00 01 80", errc::invalid_reason_code, reason_code::malformed_packet},
    {"disconnect_v5_code_0x84", v5, "E0 01 84", errc::invalid_reason_code, reason_code::malformed_packet},
    {"auth_v5_code_0x80", v5, "F0 01 80", errc::invalid_reason_code, reason_code::malformed_packet},
    // Properties (5.0)
    {"property_length_past_packet", v5, "30 05 00 01 61 05 01", errc::malformed_property,
     reason_code::malformed_packet},
    {"property_value_cut", v5, "30 06 00 01 61 02 02 00", errc::malformed_property, reason_code::malformed_packet},
    {"user_property_value_cut", v5, "30 0A 00 01 61 06 26 00 01 6B 00 05", errc::malformed_property,
     reason_code::malformed_packet},
    {"property_string_bad_utf8", v5, "30 09 00 01 61 05 03 00 02 C3 28", errc::malformed_utf8,
     reason_code::malformed_packet},
    {"unknown_property_0x04", v5, "30 06 00 01 61 02 04 00", errc::unknown_property, reason_code::malformed_packet},
    {"unknown_property_0x7f", v5, "30 06 00 01 61 02 7F 00", errc::unknown_property, reason_code::malformed_packet},
    {"topic_alias_in_puback", v5, "40 07 00 01 00 03 23 00 05", errc::property_not_allowed,
     reason_code::malformed_packet},
    {"will_delay_in_publish", v5, "30 09 00 01 61 05 18 00 00 00 01", errc::property_not_allowed,
     reason_code::malformed_packet},
    {"session_expiry_in_publish", v5, "30 09 00 01 61 05 11 00 00 00 01", errc::property_not_allowed,
     reason_code::malformed_packet},
    {"reason_string_in_connect", v5, "10 11 00 04 4D 51 54 54 05 02 00 3C 04 1F 00 01 78 00 00",
     errc::property_not_allowed, reason_code::malformed_packet},
    {"message_expiry_twice", v5, "30 0E 00 01 61 0A 02 00 00 00 01 02 00 00 00 01", errc::duplicate_property,
     reason_code::protocol_error},
    {"subscription_id_twice_in_subscribe", v5, "82 0B 00 01 04 0B 01 0B 02 00 01 61 00", errc::duplicate_property,
     reason_code::protocol_error},
    {"receive_maximum_0", v5, "20 06 00 00 03 21 00 00", errc::invalid_property_value, reason_code::protocol_error},
    {"payload_format_2", v5, "30 06 00 01 61 02 01 02", errc::invalid_property_value, reason_code::protocol_error},
    {"subscription_id_0", v5, "30 06 00 01 61 02 0B 00", errc::invalid_property_value, reason_code::protocol_error},
    {"topic_alias_0", v5, "30 07 00 01 61 03 23 00 00", errc::invalid_property_value, reason_code::protocol_error},
    {"maximum_packet_size_0", v5, "20 08 00 00 05 27 00 00 00 00", errc::invalid_property_value,
     reason_code::protocol_error},
    {"response_topic_wildcard", v5, "30 09 00 01 61 05 08 00 02 61 23", errc::invalid_property_value,
     reason_code::protocol_error},
    {"auth_data_without_method", v5, "F0 06 18 04 16 00 01 78", errc::auth_data_without_method,
     reason_code::protocol_error},
};

class malformed : public ::testing::TestWithParam<malformed_case> {};

TEST_P(malformed, rejected_with_errc_and_reason_code) {
    const malformed_case& c = GetParam();
    auto r = decode_one(hex(c.bytes), c.v);
    ASSERT_FALSE(r) << c.name << " was accepted";
    EXPECT_EQ(r.error(), make_error_code(c.expected)) << c.name << ": got " << r.error().message();
    EXPECT_EQ(to_reason_code(r.error()), c.reason) << c.name << ": " << to_string(to_reason_code(r.error()));
    // The stream decoder reports the same error and stays failed.
    stream_decoder sd(c.v);
    sd.feed(hex(c.bytes));
    auto n = sd.next();
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), make_error_code(c.expected));
    auto again = sd.next();
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), n.error());
}

INSTANTIATE_TEST_SUITE_P(cases, malformed, ::testing::ValuesIn(cases),
                         [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(malformed_accepts, password_without_username_in_v5) {
    // 5.0 lifted the 3.1.1 rule (§3.1.2.9).
    auto r = decode_one(hex("10 10 00 04 4D 51 54 54 05 42 00 3C 00 00 00 00 01 70"), v5);
    ASSERT_TRUE(r) << r.error().message();
    const auto& c = std::get<connect>(*r);
    EXPECT_FALSE(c.username);
    EXPECT_EQ(c.password, "p");
}

TEST(malformed_accepts, repeated_subscription_id_and_user_properties_in_publish) {
    auto r = decode_one(hex("30 16 00 01 61 12 0B 01 0B 02 26 00 01 6B 00 01 76 26 00 01 6B 00 01 77"), v5);
    ASSERT_TRUE(r) << r.error().message();
    const auto& p = std::get<publish>(*r);
    EXPECT_EQ(p.props.subscription_identifiers, (std::vector<uint32_t>{1, 2}));
    ASSERT_EQ(p.props.user_properties.size(), 2u);
    EXPECT_EQ(p.props.user_properties[1].value, "w");
}

TEST(errc, category_and_messages) {
    const std::error_code ec = errc::packet_too_large;
    EXPECT_STREQ(ec.category().name(), "mqtt");
    EXPECT_EQ(ec.message(), "packet too large");
    EXPECT_EQ(to_reason_code(ec), reason_code::packet_too_large);
    EXPECT_EQ(to_reason_code(std::make_error_code(std::errc::io_error)), reason_code::implementation_specific_error);
    EXPECT_EQ(to_reason_code(std::error_code{}), reason_code::implementation_specific_error);
    // Every errc has a message of its own and a failure reason code.
    for (int i = 1; i <= static_cast<int>(errc::auth_data_without_method); ++i) {
        const std::error_code e = static_cast<errc>(i);
        EXPECT_EQ(e.message().find("unknown mqtt error"), std::string::npos) << i;
        EXPECT_GE(static_cast<int>(to_reason_code(e)), 0x80) << i;
        EXPECT_NE(to_reason_code(e), reason_code::implementation_specific_error) << i;
    }
}

}  // namespace
}  // namespace sluice::mqtt
