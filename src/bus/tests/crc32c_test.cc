// SPDX-License-Identifier: Apache-2.0
//
// CRC-32C against the RFC 3720 B.4 test vectors, for the hardware and table paths.
#include "bus/wal/crc32c.h"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace sluice::bus::wal {
namespace {

struct vector_case {
    std::string data;
    uint32_t crc;
};

std::vector<vector_case> rfc3720_vectors() {
    std::vector<vector_case> v;
    v.push_back({std::string(32, '\0'), 0x8A9136AAu});
    v.push_back({std::string(32, '\xFF'), 0x62A8AB43u});
    std::string up, down;
    for (int i = 0; i < 32; ++i) {
        up.push_back(static_cast<char>(i));
        down.push_back(static_cast<char>(31 - i));
    }
    v.push_back({up, 0x46DD794Eu});
    v.push_back({down, 0x113FDB5Cu});
    const unsigned char pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                   0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    v.push_back({std::string(reinterpret_cast<const char*>(pdu), sizeof pdu), 0xD9963A56u});
    v.push_back({"123456789", 0xE3069283u});
    return v;
}

TEST(crc32c, rfc3720_vectors) {
    for (const auto& c : rfc3720_vectors()) {
        EXPECT_EQ(crc32c(c.data), c.crc);
        EXPECT_EQ(crc32c_extend_portable(0, c.data.data(), c.data.size()), c.crc);
    }
}

TEST(crc32c, extend_equals_whole_at_every_split) {
    std::string data;
    for (int i = 0; i < 100; ++i)
        data.push_back(static_cast<char>(i * 37 + 11));
    const uint32_t whole = crc32c(data);
    for (size_t split = 0; split <= data.size(); ++split) {
        uint32_t c = crc32c_extend(0, data.data(), split);
        c = crc32c_extend(c, data.data() + split, data.size() - split);
        EXPECT_EQ(c, whole) << split;
        EXPECT_EQ(crc32c_extend_portable(0, data.data() + split, data.size() - split),
                  crc32c(data.data() + split, data.size() - split));
    }
}

TEST(crc32c, detects_single_bit_flips) {
    std::string data(64, 'x');
    const uint32_t good = crc32c(data);
    for (size_t bit = 0; bit < data.size() * 8; ++bit) {
        std::string copy = data;
        copy[bit / 8] = static_cast<char>(copy[bit / 8] ^ (1 << (bit % 8)));
        EXPECT_NE(crc32c(copy), good);
    }
}

}  // namespace
}  // namespace sluice::bus::wal
