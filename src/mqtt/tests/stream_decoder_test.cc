// SPDX-License-Identifier: Apache-2.0
//
// Partial reads and framing limits: every packet split at every byte boundary decodes the
// same through stream_decoder; parse_frame never reads past its input; the maximum packet
// size is enforced from the fixed header alone, before the body is buffered.
#include <memory>

#include <gtest/gtest.h>

#include "mqtt/codec.h"
#include "mqtt/tests/test_packets.h"

namespace sluice::mqtt {
namespace {

using test::hex;
using test::sample_packets;

std::string encode_all(const std::vector<packet>& packets, version v) {
    std::string out;
    for (const packet& p : packets)
        encode(p, v, out);
    return out;
}

// Feeds `chunks` one after another and collects every packet; fails the test on an error.
std::vector<packet> drain(stream_decoder& sd, const std::vector<std::string_view>& chunks) {
    std::vector<packet> out;
    for (std::string_view chunk : chunks) {
        sd.feed(chunk);
        while (true) {
            auto n = sd.next();
            EXPECT_TRUE(n) << n.error().message();
            if (!n || !n->has_value()) break;
            out.push_back(std::move(**n));
        }
    }
    return out;
}

class split : public ::testing::TestWithParam<version> {};

TEST_P(split, every_packet_at_every_byte_boundary) {
    const version v = GetParam();
    for (const packet& p : sample_packets(v)) {
        std::string wire;
        encode(p, v, wire);
        for (size_t cut = 0; cut <= wire.size(); ++cut) {
            stream_decoder sd(v);
            const std::string_view w(wire);
            auto got = drain(sd, {w.substr(0, cut), w.substr(cut)});
            ASSERT_EQ(got.size(), 1u) << to_string(type_of(p)) << " cut at " << cut;
            EXPECT_TRUE(got[0] == p) << to_string(type_of(p)) << " cut at " << cut;
            EXPECT_EQ(sd.buffered(), 0u);
        }
    }
}

TEST_P(split, whole_stream_one_byte_at_a_time) {
    const version v = GetParam();
    const auto packets = sample_packets(v);
    const std::string wire = encode_all(packets, v);
    stream_decoder sd(v);
    std::vector<std::string_view> bytes;
    for (size_t i = 0; i < wire.size(); ++i)
        bytes.push_back(std::string_view(wire).substr(i, 1));
    const auto got = drain(sd, bytes);
    ASSERT_EQ(got.size(), packets.size());
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(got[i] == packets[i]) << i;
}

TEST_P(split, whole_stream_split_at_every_boundary) {
    const version v = GetParam();
    const auto packets = sample_packets(v);
    const std::string wire = encode_all(packets, v);
    for (size_t cut = 0; cut <= wire.size(); ++cut) {
        stream_decoder sd(v);
        const std::string_view w(wire);
        const auto got = drain(sd, {w.substr(0, cut), w.substr(cut)});
        ASSERT_EQ(got.size(), packets.size()) << "cut at " << cut;
        for (size_t i = 0; i < got.size(); ++i)
            EXPECT_TRUE(got[i] == packets[i]) << i << " cut at " << cut;
    }
}

INSTANTIATE_TEST_SUITE_P(versions, split, ::testing::Values(version::v3_1, version::v3_1_1, version::v5));

TEST(stream_decoder, switches_to_the_connect_version) {
    // The decoder starts as 5.0; a 3.1.1 CONNECT switches it, so the following 3.1.1 PUBACK
    // (which would be a valid 5.0 PUBACK too) and 3.1.1 SUBSCRIBE decode as 3.1.1.
    const auto v311 = sample_packets(version::v3_1_1);
    std::string wire;
    encode(v311[0], version::v3_1_1, wire);  // CONNECT
    encode(v311[7], version::v3_1_1, wire);  // SUBSCRIBE: no property length in 3.1.1
    stream_decoder sd(version::v5);
    sd.feed(wire);
    auto c = sd.next();
    ASSERT_TRUE(c && c->has_value());
    EXPECT_EQ(sd.current_version(), version::v3_1_1);
    auto s = sd.next();
    ASSERT_TRUE(s) << s.error().message();
    ASSERT_TRUE(s->has_value());
    EXPECT_TRUE(**s == v311[7]);
    auto none = sd.next();
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->has_value());
}

TEST(stream_decoder, set_version) {
    stream_decoder sd(version::v5);
    sd.set_version(version::v3_1_1);
    sd.feed(hex("F0 00"));  // AUTH does not exist in 3.1.1
    auto r = sd.next();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::invalid_packet_type));
}

TEST(stream_decoder, buffer_does_not_grow_with_consumed_packets) {
    stream_decoder sd(version::v5);
    std::string ping;
    encode(pingreq{}, version::v5, ping);
    for (int i = 0; i < 10000; ++i) {
        sd.feed(ping);
        auto r = sd.next();
        ASSERT_TRUE(r && r->has_value());
        EXPECT_EQ(sd.buffered(), 0u);
    }
}

TEST(parse_frame, never_reads_past_input) {
    // Each prefix of each packet is copied into a buffer of exactly its size: ASan reports any
    // read past it. Prefixes shorter than the fixed header give nullopt; longer ones give the
    // frame (the body need not be there yet).
    for (version v : {version::v3_1_1, version::v5}) {
        for (const packet& p : sample_packets(v)) {
            std::string wire;
            encode(p, v, wire);
            auto full = parse_frame(wire, max_packet_size_limit);
            ASSERT_TRUE(full && full->has_value());
            const size_t header = (*full)->header_size;
            for (size_t len = 0; len <= wire.size(); ++len) {
                auto exact = std::make_unique<char[]>(len == 0 ? 1 : len);
                std::copy(wire.data(), wire.data() + len, exact.get());
                auto r = parse_frame(std::string_view(exact.get(), len), max_packet_size_limit);
                ASSERT_TRUE(r);
                if (len < header) {
                    EXPECT_FALSE(r->has_value()) << len;
                } else {
                    ASSERT_TRUE(r->has_value()) << len;
                    EXPECT_EQ((*r)->total_size(), wire.size());
                }
            }
        }
    }
    // A long remaining length cut after each byte.
    const std::string big = hex("30 FF FF FF 7F");
    for (size_t len = 0; len < big.size(); ++len) {
        auto exact = std::make_unique<char[]>(len + 1);
        std::copy(big.data(), big.data() + len, exact.get());
        auto r = parse_frame(std::string_view(exact.get(), len), max_packet_size_limit);
        ASSERT_TRUE(r);
        EXPECT_FALSE(r->has_value()) << len;
    }
}

TEST(parse_frame, max_packet_size_from_header_alone) {
    // 268,435,455 bytes announced, only the 5 header bytes present: rejected at once.
    auto r = parse_frame(hex("30 FF FF FF 7F"), 1024);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::packet_too_large));
    EXPECT_EQ(to_reason_code(r.error()), reason_code::packet_too_large);
    // The limit counts the whole packet: header (2) + remaining length.
    auto at = parse_frame(hex("30 7E"), 128);
    ASSERT_TRUE(at && at->has_value());
    auto over = parse_frame(hex("30 7F"), 128);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error(), make_error_code(errc::packet_too_large));
    // The largest packet the spec allows passes with the default limit.
    auto max = parse_frame(hex("30 FF FF FF 7F"), max_packet_size_limit);
    ASSERT_TRUE(max && max->has_value());
    EXPECT_EQ((*max)->total_size(), size_t{max_packet_size_limit});
}

TEST(stream_decoder, max_packet_size_before_buffering_the_body) {
    stream_decoder sd(version::v5, 100);
    sd.feed(hex("30 FF FF 03"));  // announces ~64 KiB, with no body yet
    auto r = sd.next();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::packet_too_large));
    EXPECT_EQ(sd.buffered(), 4u);
    // A packet within the limit still decodes.
    stream_decoder ok(version::v5, 100);
    publish p;
    p.topic = "a";
    p.payload.assign(90, 'x');
    std::string wire;
    encode(p, version::v5, wire);
    ASSERT_LE(wire.size(), 100u);
    ok.feed(wire);
    auto got = ok.next();
    ASSERT_TRUE(got && got->has_value());
    p.payload.push_back('y');
    p.payload.append(10, 'z');
    wire.clear();
    encode(p, version::v5, wire);
    ok.feed(wire);
    auto too_big = ok.next();
    ASSERT_FALSE(too_big);
    EXPECT_EQ(too_big.error(), make_error_code(errc::packet_too_large));
}

}  // namespace
}  // namespace sluice::mqtt
