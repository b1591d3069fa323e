// SPDX-License-Identifier: Apache-2.0
//
// Round trips: every packet type, in every version, carrying every property its type allows,
// encodes and decodes back to an equal packet; plus what each version drops on encode.
#include <gtest/gtest.h>

#include "mqtt/codec.h"
#include "mqtt/tests/test_packets.h"

namespace sluice::mqtt {
namespace {

using test::encode_decode;
using test::sample_packets;
using test::to_hex;

class roundtrip : public ::testing::TestWithParam<version> {};

TEST_P(roundtrip, every_packet_type_with_every_property) {
    const version v = GetParam();
    const auto packets = sample_packets(v);
    EXPECT_EQ(packets.size(), v == version::v5 ? 15u : 14u);
    for (const packet& p : packets) {
        std::string wire;
        auto back = encode_decode(p, v, &wire);
        ASSERT_TRUE(back) << to_string(type_of(p)) << ": " << back.error().message() << " in " << to_hex(wire);
        EXPECT_EQ(type_of(*back), type_of(p));
        EXPECT_TRUE(*back == p) << to_string(type_of(p)) << " differs after round trip: " << to_hex(wire);
        // Encoding the decoded packet gives the same bytes.
        std::string again;
        encode(*back, v, again);
        EXPECT_EQ(to_hex(again), to_hex(wire)) << to_string(type_of(p));
    }
}

TEST_P(roundtrip, default_packets) {
    const version v = GetParam();
    std::vector<packet> packets = {connack{},          puback{7, {}, {}}, pubrec{7, {}, {}}, pubrel{7, {}, {}},
                                   pubcomp{7, {}, {}}, pingreq{},         pingresp{},        disconnect{}};
    publish q0;
    q0.topic = "t";
    packets.emplace_back(q0);
    connect c;
    c.protocol = v;
    packets.emplace_back(c);
    if (v == version::v5) packets.emplace_back(auth{});
    for (const packet& p : packets) {
        auto back = encode_decode(p, v);
        ASSERT_TRUE(back) << to_string(type_of(p)) << ": " << back.error().message();
        EXPECT_TRUE(*back == p) << to_string(type_of(p));
    }
}

INSTANTIATE_TEST_SUITE_P(versions, roundtrip, ::testing::Values(version::v3_1, version::v3_1_1, version::v5),
                         [](const auto& test_info) {
                             switch (test_info.param) {
                                 case version::v3_1:
                                     return std::string("v3_1");
                                 case version::v3_1_1:
                                     return std::string("v3_1_1");
                                 case version::v5:
                                     return std::string("v5");
                             }
                             return std::string("unknown");
                         });

TEST(roundtrip_v311, drops_properties_and_reason_codes) {
    // A 5.0 packet encoded for 3.1.1 loses what 3.1.1 cannot carry.
    const auto v5_packets = sample_packets(version::v5);
    for (const packet& p : v5_packets) {
        if (type_of(p) == packet_type::auth || type_of(p) == packet_type::connect) continue;
        auto back = encode_decode(p, version::v3_1_1);
        ASSERT_TRUE(back) << to_string(type_of(p)) << ": " << back.error().message();
        std::visit(
            [](const auto& pk) {
                if constexpr (requires { pk.props; }) {
                    EXPECT_TRUE(pk.props.empty());
                }
            },
            *back);
    }
    auto pub = encode_decode(v5_packets[2], version::v3_1_1);
    ASSERT_TRUE(pub);
    EXPECT_EQ(std::get<publish>(*pub).payload, std::get<publish>(v5_packets[2]).payload);
    auto ack = encode_decode(v5_packets[3], version::v3_1_1);
    ASSERT_TRUE(ack);
    EXPECT_EQ(std::get<puback>(*ack).code, reason_code::success);
    EXPECT_EQ(std::get<puback>(*ack).packet_id, 1);
    auto sa = encode_decode(v5_packets[8], version::v3_1_1);
    ASSERT_TRUE(sa);
    // 0xA2 (wildcards not supported) becomes 3.1.1's only failure code, 0x80.
    EXPECT_EQ(std::get<suback>(*sa).codes.back(), reason_code::unspecified_error);
    auto ua = encode_decode(v5_packets[10], version::v3_1_1);
    ASSERT_TRUE(ua);
    EXPECT_TRUE(std::get<unsuback>(*ua).codes.empty());
}

TEST(roundtrip_v311, connack_return_codes) {
    struct row {
        reason_code in;
        uint8_t wire;
        reason_code back;
    };
    const row rows[] = {
        {reason_code::success, 0, reason_code::success},
        {reason_code::unsupported_protocol_version, 1, reason_code::unsupported_protocol_version},
        {reason_code::client_identifier_not_valid, 2, reason_code::client_identifier_not_valid},
        {reason_code::server_unavailable, 3, reason_code::server_unavailable},
        {reason_code::bad_user_name_or_password, 4, reason_code::bad_user_name_or_password},
        {reason_code::not_authorized, 5, reason_code::not_authorized},
        {reason_code::server_busy, 3, reason_code::server_unavailable},
        {reason_code::banned, 5, reason_code::not_authorized},
        {reason_code::bad_authentication_method, 4, reason_code::bad_user_name_or_password},
        {reason_code::unspecified_error, 3, reason_code::server_unavailable},
    };
    for (const row& r : rows) {
        std::string wire;
        auto back = encode_decode(connack{true, r.in, {}}, version::v3_1_1, &wire);
        ASSERT_TRUE(back);
        ASSERT_EQ(wire.size(), 4u);
        EXPECT_EQ(static_cast<uint8_t>(wire[3]), r.wire) << to_string(r.in);
        // Session present is only sent with success.
        EXPECT_EQ(wire[2], r.in == reason_code::success ? 1 : 0);
        EXPECT_EQ(std::get<connack>(*back).code, r.back);
    }
}

TEST(encode_publish_header, equals_encode_and_points_at_packet_id) {
    for (version v : {version::v3_1_1, version::v5}) {
        for (uint8_t qos : {0, 1, 2}) {
            publish p = std::get<publish>(sample_packets(v)[2]);
            p.qos = qos;
            p.dup = false;
            p.packet_id = qos ? 0x1234 : 0;
            p.payload.assign(300, 'x');  // a two-byte remaining length
            std::string full;
            encode(p, v, full);
            std::string head = "prefix";
            const size_t off = encode_publish_header(p, p.payload.size(), v, head);
            EXPECT_EQ(to_hex(head.substr(6) + p.payload), to_hex(full));
            if (qos == 0) {
                EXPECT_EQ(off, std::string::npos);
            } else {
                ASSERT_LT(off + 1, head.size());
                EXPECT_EQ(static_cast<uint8_t>(head[off]), 0x12);
                EXPECT_EQ(static_cast<uint8_t>(head[off + 1]), 0x34);
            }
        }
    }
}

TEST(encode_publish_header, ignores_payload_field) {
    publish p;
    p.topic = "a/b";
    p.payload = "not sent";
    p.qos = 1;
    p.packet_id = 9;
    std::string head;
    encode_publish_header(p, 0, version::v3_1_1, head);
    EXPECT_EQ(to_hex(head), "32 07 00 03 61 2F 62 00 09");
}

TEST(encode, appends_to_existing_bytes) {
    std::string out = "xy";
    encode(pingreq{}, version::v5, out);
    encode(pingresp{}, version::v5, out);
    EXPECT_EQ(to_hex(out), "78 79 C0 00 D0 00");
}

TEST(encode_death, auth_for_v311_is_a_bug) {
    std::string out;
    EXPECT_DEATH(encode(auth{}, version::v3_1_1, out), "AUTH");
}

TEST(encode_death, oversized_string_is_a_bug) {
    publish p;
    p.topic.assign(70000, 'a');
    std::string out;
    EXPECT_DEATH(encode(p, version::v5, out), "cannot be encoded");
}

}  // namespace
}  // namespace sluice::mqtt
