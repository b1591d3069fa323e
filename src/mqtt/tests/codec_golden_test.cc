// SPDX-License-Identifier: Apache-2.0
//
// Golden bytes written by hand from the MQTT 3.1.1 and 5.0 specifications: the variable byte
// integer table (§1.5.5 / 3.1.1 §2.2.3), the CONNECT variable header examples (5.0 §3.1.2.11,
// 3.1.1 §3.1.2.10), the PUBLISH and SUBSCRIBE examples of 3.1.1, and the short 5.0 forms.
// Each case is checked both ways: decode(bytes) == packet and encode(packet) == bytes.
#include <gtest/gtest.h>

#include "mqtt/codec.h"
#include "mqtt/tests/test_packets.h"

namespace sluice::mqtt {
namespace {

using test::decode_one;
using test::hex;
using test::to_hex;

void expect_both_ways(const packet& p, version v, std::string_view wire_hex) {
    const std::string wire = hex(wire_hex);
    auto decoded = decode_one(wire, v);
    ASSERT_TRUE(decoded) << wire_hex << ": " << decoded.error().message();
    EXPECT_TRUE(*decoded == p) << "decoded packet differs for " << wire_hex;
    std::string out;
    encode(p, v, out);
    EXPECT_EQ(to_hex(out), to_hex(wire));
}

TEST(golden, variable_byte_integer_table) {
    // Spec 5.0 §1.5.5 table 1-1 (and 3.1.1 table 2.4): the boundaries of 1..4 bytes.
    const std::pair<uint32_t, const char*> rows[] = {
        {0, "00"},           {127, "7F"},           {128, "80 01"},           {16383, "FF 7F"},
        {16384, "80 80 01"}, {2097151, "FF FF 7F"}, {2097152, "80 80 80 01"}, {268435455, "FF FF FF 7F"},
    };
    for (const auto& [value, bytes] : rows) {
        std::string out;
        encode_varint(value, out);
        EXPECT_EQ(to_hex(out), to_hex(hex(bytes))) << value;
        EXPECT_EQ(varint_size(value), out.size());
        // The same bytes as a remaining length.
        const std::string header = hex("30") + out;
        auto f = parse_frame(header, max_packet_size_limit);
        ASSERT_TRUE(f) << value;
        ASSERT_TRUE(f->has_value());
        EXPECT_EQ((*f)->remaining_length, value);
        EXPECT_EQ((*f)->header_size, 1 + out.size());
        EXPECT_EQ((*f)->type(), packet_type::publish);
    }
}

TEST(golden, connect_v5_spec_example) {
    // 5.0 §3.1.2.11 example variable header: "MQTT", level 5, flags CE (user name, password,
    // will QoS 1, will, clean start), keep alive 10, properties: session expiry interval 10.
    connect c;
    c.protocol = version::v5;
    c.clean_start = true;
    c.keep_alive = 10;
    c.props.session_expiry_interval = 10;
    c.client_id = "c1";
    c.will_message = will{"w", "x", 1, false, {}};
    c.username = "u";
    c.password = "p";
    expect_both_ways(c, version::v5,
                     "10 21  00 04 4D 51 54 54  05  CE  00 0A  05 11 00 00 00 0A"
                     "       00 02 63 31  00  00 01 77  00 01 78  00 01 75  00 01 70");
}

TEST(golden, connect_v311_spec_example) {
    // 3.1.1 §3.1.2.10 figure 3.6: "MQTT", level 4, flags CE, keep alive 10.
    connect c;
    c.protocol = version::v3_1_1;
    c.keep_alive = 10;
    c.client_id = "c1";
    c.will_message = will{"w", "x", 1, false, {}};
    c.username = "u";
    c.password = "p";
    expect_both_ways(c, version::v3_1_1,
                     "10 1A  00 04 4D 51 54 54  04  CE  00 0A"
                     "       00 02 63 31  00 01 77  00 01 78  00 01 75  00 01 70");
    // A CONNECT is decoded in its own version whatever the connection's version is.
    auto as_v5 = decode_one(hex("10 1A 00 04 4D 51 54 54 04 CE 00 0A 00 02 63 31 00 01 77 00 01 78"
                                "00 01 75 00 01 70"),
                            version::v5);
    ASSERT_TRUE(as_v5);
    EXPECT_EQ(std::get<connect>(*as_v5).protocol, version::v3_1_1);
}

TEST(golden, connect_v31_mqisdp) {
    connect c;
    c.protocol = version::v3_1;
    c.clean_start = true;
    c.keep_alive = 60;
    c.client_id = "c1";
    expect_both_ways(c, version::v3_1, "10 10  00 06 4D 51 49 73 64 70  03  02  00 3C  00 02 63 31");
}

TEST(golden, v31_connack_byte_1_is_reserved) {
    // MQTT 3.1 has no Session Present flag: a resumed session still answers 00.
    std::string wire;
    encode(connack{true, reason_code::success, {}}, version::v3_1, wire);
    EXPECT_EQ(to_hex(wire), to_hex(hex("20 02 00 00")));
    // ... and a decoder reading 3.1 refuses a set bit there (found by the round-trip fuzzer).
    EXPECT_FALSE(decode_one(hex("20 02 01 00"), version::v3_1));
}

TEST(golden, v31_accepts_dup_on_pubrel_subscribe_unsubscribe) {
    // 3.1 coded these as QoS 1 messages; a resend may carry DUP (flags 0x0A).
    auto rel = decode_one(hex("6A 02 00 07"), version::v3_1);
    ASSERT_TRUE(rel) << rel.error().message();
    EXPECT_EQ(std::get<pubrel>(*rel).packet_id, 7);
    auto sub = decode_one(hex("8A 06 00 01 00 01 61 01"), version::v3_1);
    ASSERT_TRUE(sub) << sub.error().message();
    auto unsub = decode_one(hex("AA 05 00 02 00 01 61"), version::v3_1);
    ASSERT_TRUE(unsub) << unsub.error().message();
    // 3.1.1 and 5.0 still reject them (MQTT-2.2.2-2).
    EXPECT_FALSE(decode_one(hex("6A 02 00 07"), version::v3_1_1));
    EXPECT_FALSE(decode_one(hex("8A 06 00 01 00 01 61 01"), version::v5));
}

TEST(golden, connack) {
    expect_both_ways(connack{}, version::v3_1_1, "20 02 00 00");
    expect_both_ways(connack{true, reason_code::success, {}}, version::v3_1_1, "20 02 01 00");
    expect_both_ways(connack{false, reason_code::not_authorized, {}}, version::v3_1_1, "20 02 00 05");
    expect_both_ways(connack{}, version::v5, "20 03 00 00 00");
    connack c5{false, reason_code::bad_authentication_method, {}};
    c5.props.reason_string = "no";
    expect_both_ways(c5, version::v5, "20 08 00 8C 05 1F 00 02 6E 6F");
}

TEST(golden, publish_v311_spec_example) {
    // 3.1.1 §3.3.2.3 figure 3.12: topic "a/b", packet identifier 10 (here QoS 1, payload "hi").
    publish p;
    p.topic = "a/b";
    p.qos = 1;
    p.packet_id = 10;
    p.payload = "hi";
    expect_both_ways(p, version::v3_1_1, "32 09 00 03 61 2F 62 00 0A 68 69");
    publish q0;
    q0.topic = "a/b";
    q0.retain = true;
    expect_both_ways(q0, version::v3_1_1, "31 05 00 03 61 2F 62");
}

TEST(golden, publish_v5_with_properties) {
    publish p;
    p.topic = "a/b";
    p.payload = "hi";
    p.props.payload_format_indicator = 1;
    p.props.topic_alias = 5;
    expect_both_ways(p, version::v5, "30 0D 00 03 61 2F 62 05 01 01 23 00 05 68 69");
    // Empty topic name with a topic alias (5.0 §3.3.2.3.4).
    publish aliased;
    aliased.props.topic_alias = 5;
    expect_both_ways(aliased, version::v5, "30 06 00 00 03 23 00 05");
}

TEST(golden, subscribe_v311_spec_example) {
    // 3.1.1 §3.8.3 figure 3.22: packet id 10, "a/b" QoS 1, "c/d" QoS 2.
    subscribe s;
    s.packet_id = 10;
    s.entries = {{"a/b", 1, false, false, 0}, {"c/d", 2, false, false, 0}};
    expect_both_ways(s, version::v3_1_1, "82 0E 00 0A 00 03 61 2F 62 01 00 03 63 2F 64 02");
}

TEST(golden, subscribe_v5_options) {
    subscribe s;
    s.packet_id = 10;
    s.props.subscription_identifiers = {1};
    s.entries = {{"a/b", 1, true, true, 2}};  // 0x01 | no local 0x04 | RAP 0x08 | RH 2 << 4
    expect_both_ways(s, version::v5, "82 0B 00 0A 02 0B 01 00 03 61 2F 62 2D");
}

TEST(golden, suback_unsubscribe_unsuback) {
    expect_both_ways(suback{10, {reason_code::granted_qos_1, reason_code::unspecified_error}, {}}, version::v3_1_1,
                     "90 04 00 0A 01 80");
    expect_both_ways(suback{10, {reason_code::granted_qos_2, reason_code::not_authorized}, {}}, version::v5,
                     "90 05 00 0A 00 02 87");
    expect_both_ways(unsubscribe{10, {"a/b", "c/d"}, {}}, version::v3_1_1, "A2 0C 00 0A 00 03 61 2F 62 00 03 63 2F 64");
    expect_both_ways(unsubscribe{10, {"a/b"}, {}}, version::v5, "A2 08 00 0A 00 00 03 61 2F 62");
    expect_both_ways(unsuback{10, {}, {}}, version::v3_1_1, "B0 02 00 0A");
    expect_both_ways(unsuback{10, {reason_code::no_subscription_existed}, {}}, version::v5, "B0 04 00 0A 00 11");
}

TEST(golden, publish_acks_and_short_forms) {
    expect_both_ways(puback{10, {}, {}}, version::v3_1_1, "40 02 00 0A");
    expect_both_ways(pubrec{10, {}, {}}, version::v3_1_1, "50 02 00 0A");
    expect_both_ways(pubrel{10, {}, {}}, version::v3_1_1, "62 02 00 0A");
    expect_both_ways(pubcomp{10, {}, {}}, version::v3_1_1, "70 02 00 0A");
    // 5.0 §3.4.2.1: reason code and properties may be omitted when success / empty.
    expect_both_ways(puback{10, {}, {}}, version::v5, "40 02 00 0A");
    expect_both_ways(puback{10, reason_code::no_matching_subscribers, {}}, version::v5, "40 03 00 0A 10");
    expect_both_ways(pubrel{10, reason_code::packet_identifier_not_found, {}}, version::v5, "62 03 00 0A 92");
    // Longer-than-needed forms decode to the same packet.
    auto long_form = decode_one(hex("40 04 00 0A 00 00"), version::v5);
    ASSERT_TRUE(long_form);
    EXPECT_TRUE(*long_form == packet(puback{10, {}, {}}));
}

TEST(golden, ping_disconnect_auth) {
    expect_both_ways(pingreq{}, version::v3_1_1, "C0 00");
    expect_both_ways(pingresp{}, version::v5, "D0 00");
    expect_both_ways(disconnect{}, version::v3_1_1, "E0 00");
    expect_both_ways(disconnect{}, version::v5, "E0 00");
    expect_both_ways(disconnect{reason_code::disconnect_with_will_message, {}}, version::v5, "E0 01 04");
    // 3.1.1 has no reason code: a 5.0 DISCONNECT reason is dropped for 3.1.1.
    std::string out;
    encode(disconnect{reason_code::server_shutting_down, {}}, version::v3_1_1, out);
    EXPECT_EQ(to_hex(out), "E0 00");
    expect_both_ways(auth{}, version::v5, "F0 00");
    expect_both_ways(auth{reason_code::re_authenticate, {}}, version::v5, "F0 01 19");
}

TEST(golden, reason_code_names) {
    EXPECT_STREQ(to_string(reason_code::malformed_packet), "Malformed Packet");
    EXPECT_STREQ(to_string(reason_code::normal_disconnection), "Success");
    EXPECT_STREQ(to_string(reason_code::packet_too_large), "Packet too large");
    EXPECT_STREQ(to_string(static_cast<reason_code>(0x7F)), "Unknown");
    EXPECT_STREQ(to_string(packet_type::unsuback), "UNSUBACK");
    EXPECT_EQ(type_of(packet(auth{})), packet_type::auth);
    EXPECT_EQ(type_of(packet(connect{})), packet_type::connect);
}

}  // namespace
}  // namespace sluice::mqtt
