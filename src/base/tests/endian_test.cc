// SPDX-License-Identifier: Apache-2.0
#include "base/endian.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(endian, byte_orders_are_fixed_whatever_the_host) {
    std::string s;
    append_le16(s, 0x0102);
    append_le32(s, 0x03040506u);
    append_le64(s, 0x0708090A0B0C0D0EULL);
    EXPECT_EQ(s, std::string("\x02\x01\x06\x05\x04\x03\x0E\x0D\x0C\x0B\x0A\x09\x08\x07"));
    std::string b;
    append_be16(b, 0x0102);
    append_be32(b, 0x03040506u);
    append_be64(b, 0x0708090A0B0C0D0EULL);
    EXPECT_EQ(b, std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x0C\x0D\x0E"));
}

TEST(endian, loads_invert_stores_at_any_alignment) {
    unsigned char buf[9 + 8] = {};
    for (size_t at = 0; at < 9; ++at) {
        store_le16(buf + at, 0xFEDCu);
        EXPECT_EQ(load_le16(buf + at), 0xFEDCu);
        store_le32(buf + at, 0xFEDCBA98u);
        EXPECT_EQ(load_le32(buf + at), 0xFEDCBA98u);
        store_le64(buf + at, 0xFEDCBA9876543210ULL);
        EXPECT_EQ(load_le64(buf + at), 0xFEDCBA9876543210ULL);
        EXPECT_EQ(load_be64(buf + at), 0x1032547698BADCFEULL);
        store_be16(buf + at, 0xFEDCu);
        EXPECT_EQ(load_be16(buf + at), 0xFEDCu);
        store_be32(buf + at, 0xFEDCBA98u);
        EXPECT_EQ(load_be32(buf + at), 0xFEDCBA98u);
        EXPECT_EQ(load_le32(buf + at), 0x98BADCFEu);
        store_be64(buf + at, 0xFEDCBA9876543210ULL);
        EXPECT_EQ(load_be64(buf + at), 0xFEDCBA9876543210ULL);
    }
}

}  // namespace
}  // namespace sluice
