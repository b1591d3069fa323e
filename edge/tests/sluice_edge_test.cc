// SPDX-License-Identifier: Apache-2.0
//
// The edge encoder on its own, compiled as C++17: exact bytes of the documented example
// and of each value kind (docs/payload-formats.md). Decoding is tested against the
// pipeline in src/pipeline/tests/edge_roundtrip_test.cc.
#include "sluice_edge.h"

#include <vector>

#include <gtest/gtest.h>

namespace {

std::vector<uint8_t> value_bytes(double v) {
    uint8_t tmp[9];
    const std::size_t n = sluice_edge::put_value(tmp, v);
    return {tmp, tmp + n};
}

TEST(sluice_edge, value_kinds_and_scales) {
    EXPECT_EQ(value_bytes(5), (std::vector<uint8_t>{0x00, 0x05}));
    EXPECT_EQ(value_bytes(-1), (std::vector<uint8_t>{0x00, 0xFF}));
    EXPECT_EQ(value_bytes(71.5), (std::vector<uint8_t>{0x11, 0xCB, 0x02}));
    EXPECT_EQ(value_bytes(1.25), (std::vector<uint8_t>{0x02, 0x7D}));  // int8 125, scale 2
    EXPECT_EQ(value_bytes(-100), (std::vector<uint8_t>{0x00, 0x9C}));
    EXPECT_EQ(value_bytes(-1000), (std::vector<uint8_t>{0x10, 0x18, 0xFC}));
    EXPECT_EQ(value_bytes(100000), (std::vector<uint8_t>{0x20, 0xA0, 0x86, 0x01, 0x00}));
    EXPECT_EQ(value_bytes(0.5), (std::vector<uint8_t>{0x01, 0x05}));
    EXPECT_EQ(value_bytes(1e10), (std::vector<uint8_t>{0x30, 0xF9, 0x02, 0x15, 0x50}));  // float32 exact
    EXPECT_EQ(value_bytes(0.1 + 0.2).size(), 9u);
    EXPECT_EQ(value_bytes(0.1 + 0.2)[0], 0x40);
}

TEST(sluice_edge, varint) {
    uint8_t out[10];
    EXPECT_EQ(sluice_edge::put_varint(out, 0), 1u);
    EXPECT_EQ(sluice_edge::put_varint(out, 127), 1u);
    EXPECT_EQ(sluice_edge::put_varint(out, 300), 2u);
    EXPECT_EQ(out[0], 0xAC);
    EXPECT_EQ(out[1], 0x02);
    EXPECT_EQ(sluice_edge::put_varint(out, ~uint64_t{0}), 10u);
    EXPECT_EQ(out[9], 0x01);
}

TEST(sluice_edge, documented_example) {
    uint8_t buf[sluice_edge::default_capacity];
    sluice_edge::batch_encoder enc(buf, sizeof buf, sluice_edge::default_flush_threshold, 42);
    EXPECT_EQ(enc.add(3, 1732212345123, 71.5), sluice_edge::add_status::added);
    EXPECT_EQ(enc.add(4, 1732212345123, 40.2), sluice_edge::add_status::added);
    EXPECT_EQ(enc.add(3, 1732212345223, 71.6), sluice_edge::add_status::added);
    EXPECT_EQ(enc.size(), 25u);
    const auto p = enc.finish();
    const std::vector<uint8_t> expected = {0xA1, 0x01, 0x2A, 0x23, 0xC9, 0xE6, 0x4F, 0x93, 0x01, 0x03, 0x00, 0x03, 0x11,
                                           0xCB, 0x02, 0x00, 0x04, 0x11, 0x92, 0x01, 0x64, 0x03, 0x11, 0xCC, 0x02};
    EXPECT_EQ(std::vector<uint8_t>(p.data, p.data + p.size), expected);
    // The next payload has seq 43 and no restart flag.
    EXPECT_EQ(enc.add(3, 1000, 1.0), sluice_edge::add_status::added);
    const auto q = enc.finish();
    EXPECT_EQ(q.data[1], 0x00);
    EXPECT_EQ(q.data[2], 43);
}

TEST(sluice_edge, smallest_buffer_holds_one_float64_reading) {
    // Header 19 (10-byte seq) + reading 15 (dt 1, 5-byte id, tag, float64) = 34 bytes.
    uint8_t buf[34];
    sluice_edge::batch_encoder enc(buf, sizeof buf, sizeof buf, ~uint64_t{0});
    EXPECT_EQ(enc.add(~uint32_t{0}, sluice_edge::max_time_ms, 0.1 + 0.2), sluice_edge::add_status::added_flush);
    EXPECT_EQ(enc.add(1, sluice_edge::max_time_ms, 1.0), sluice_edge::add_status::full);
    EXPECT_EQ(enc.finish().size, sizeof buf);
}

}  // namespace
