// SPDX-License-Identifier: Apache-2.0
//
// Unit tests of the binary COPY encoder against byte layouts from the PostgreSQL
// manual (COPY binary format, array_send). Round trips through a real server are in
// store_test.cc.
#include "store/copy_format.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::store {
namespace {

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int x : b)
        s.push_back(static_cast<char>(x));
    return s;
}

TEST(copy_encoder, header_and_trailer) {
    copy_encoder e;
    e.header();
    e.trailer();
    EXPECT_EQ(e.data(), std::string("PGCOPY\n\xff\r\n\0", 11) + bytes({0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}));
}

TEST(copy_encoder, scalars_are_length_prefixed_big_endian) {
    copy_encoder e;
    e.begin_tuple(3);
    e.int2(-2);
    e.int4(0x01020304);
    e.null_field();
    EXPECT_EQ(e.data(), bytes({0, 3, 0, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 4, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff}));
    e.clear();
    e.float8(1.0);  // 0x3FF0000000000000
    EXPECT_EQ(e.data(), bytes({0, 0, 0, 8, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}));
}

TEST(copy_encoder, timestamptz_counts_from_2000) {
    copy_encoder e;
    e.timestamptz(k_pg_epoch_offset_us + 1);
    EXPECT_EQ(e.data(), bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1}));
    e.clear();
    e.timestamptz(0);  // 1970: negative
    EXPECT_EQ(static_cast<unsigned char>(e.data()[4]), 0xffu);
}

TEST(copy_encoder, int4_array_layout) {
    copy_encoder e;
    const int32_t v[] = {7, -1};
    e.int4_array(v);
    EXPECT_EQ(e.data(), bytes({0, 0, 0, 36,  // field length: 20 header + 2 * 8
                               0, 0, 0, 1,   // ndim
                               0, 0, 0, 0,   // no nulls
                               0, 0, 0, 23,  // int4 oid
                               0, 0, 0, 2,   // dim size
                               0, 0, 0, 1,   // lower bound
                               0, 0, 0, 4,  0, 0, 0, 7, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}));
}

TEST(copy_encoder, text_and_bytea_are_raw) {
    copy_encoder e;
    e.bytea(std::string_view("a\0b", 3));
    EXPECT_EQ(e.data(), bytes({0, 0, 0, 3, 'a', 0, 'b'}));
}

}  // namespace
}  // namespace sluice::store
