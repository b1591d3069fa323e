// SPDX-License-Identifier: Apache-2.0
//
// The record format and segment scan (docs/wal-format.md): one test per damage case,
// in the spirit of LevelDB's db/log_test.cc, plus the cursor file encoding.
#include "bus/wal/format.h"

#include <gtest/gtest.h>

#include "bus/numbered_file.h"
#include "bus/tests/test_util.h"
#include "bus/wal/crc32c.h"
#include "bus/wal/cursors.h"

namespace sluice::bus::wal {
namespace {

using test::make_message;

// A segment with base 100 and `n` records; record_pos[i] is where record i starts.
struct built {
    std::string bytes;
    std::vector<size_t> record_pos;
};
built build_segment(int n, uint64_t base = 100) {
    built b;
    b.bytes = encode_segment_header(3, base);
    for (int i = 0; i < n; ++i) {
        b.record_pos.push_back(b.bytes.size());
        encode_record(b.bytes, base + static_cast<uint64_t>(i), make_message(static_cast<uint64_t>(i), 40));
    }
    return b;
}

TEST(wal_format, file_names_round_trip) {
    EXPECT_EQ(segment_file_name(42), "00000000000000000042.log");
    EXPECT_EQ(parse_segment_file_name("00000000000000000042.log"), 42u);
    EXPECT_EQ(parse_segment_file_name(segment_file_name(UINT64_MAX)), UINT64_MAX);
    EXPECT_FALSE(parse_segment_file_name("00000000000000000042.log.corrupt"));
    EXPECT_FALSE(parse_segment_file_name("0000000000000000004x.log"));
    EXPECT_FALSE(parse_segment_file_name("99999999999999999999.log"));  // overflows uint64
    EXPECT_FALSE(parse_segment_file_name("cursors"));
}

TEST(numbered_file, prefix_and_suffix_must_match_exactly) {
    EXPECT_EQ(numbered_file_name("journal-", 7, ".log"), "journal-00000000000000000007.log");
    EXPECT_EQ(parse_numbered_file_name("journal-00000000000000000007.log", "journal-", ".log"), 7u);
    EXPECT_FALSE(parse_numbered_file_name("journal-00000000000000000007.log", "", ".log"));
    EXPECT_FALSE(parse_numbered_file_name("journal-00000000000000000007.tmp", "journal-", ".log"));
    EXPECT_FALSE(parse_numbered_file_name("snapshot00000000000000000007.log", "journal-", ".log"));
    EXPECT_FALSE(parse_numbered_file_name("journal-0000000000000000007.log", "journal-", ".log"));  // 19 digits
}

TEST(wal_format, header_layout_is_pinned) {
    std::string h = encode_segment_header(7, 0x0102030405060708ull);
    ASSERT_EQ(h.size(), k_segment_header_size);
    EXPECT_EQ(h.substr(0, 4), "SLWL");
    EXPECT_EQ(h[4], 2);  // version, little endian
    EXPECT_EQ(h[5], 0);
    EXPECT_EQ(h[6], 24);  // header size
    EXPECT_EQ(h[8], 7);   // partition
    EXPECT_EQ(h[12], 0x08);
    EXPECT_EQ(h[19], 0x01);
}

TEST(wal_format, records_round_trip) {
    auto b = build_segment(5);
    std::vector<record> seen;
    auto scan = scan_segment(b.bytes, 100, [&](const record& r, uint64_t pos) {
        EXPECT_EQ(pos, b.record_pos[seen.size()]);
        seen.push_back(r);
    });
    EXPECT_EQ(scan.header, header_status::ok);
    EXPECT_EQ(scan.first_damage, damage::none);
    EXPECT_EQ(scan.records, 5u);
    EXPECT_EQ(scan.next_offset, 105u);
    EXPECT_EQ(scan.valid_bytes, b.bytes.size());
    EXPECT_EQ(scan.partition, 3u);
    ASSERT_EQ(seen.size(), 5u);
    for (uint64_t i = 0; i < 5; ++i) {
        EXPECT_EQ(seen[i].offset, 100 + i);
        EXPECT_EQ(seen[i].msg, make_message(i, 40));
    }
    EXPECT_EQ(scan.newest_time_ms, make_message(4).receive_time_ms);
}

// Format version 2: a message with a packet id is a type 2 record, two bytes longer; both
// types mix in one segment.
TEST(wal_format, packet_id_records_round_trip) {
    std::string bytes = encode_segment_header(3, 100);
    std::vector<message> written;
    for (uint64_t i = 0; i < 4; ++i) {
        message m = make_message(i, 40);
        m.packet_id = i % 2 == 1 ? static_cast<uint16_t>(65535 - i) : 0;
        size_t before = bytes.size();
        encode_record(bytes, 100 + i, m);
        message plain = m;
        plain.packet_id = 0;
        EXPECT_EQ(bytes.size() - before, encoded_record_size(plain) + (m.packet_id != 0 ? 2 : 0));
        EXPECT_EQ(bytes[before + 8], m.packet_id != 0 ? 2 : 1);  // record type
        written.push_back(m);
    }
    std::vector<message> seen;
    auto scan = scan_segment(bytes, 100, [&](const record& r, uint64_t) { seen.push_back(r.msg); });
    EXPECT_EQ(scan.first_damage, damage::none);
    EXPECT_EQ(seen, written);

    // A type 2 record whose packet id is 0 is not one a writer makes.
    std::string bad = encode_segment_header(3, 100);
    message m = make_message(0, 40);
    m.packet_id = 1;
    encode_record(bad, 100, m);
    bad[k_segment_header_size + k_record_header_size + 17] = 0;  // packet id, low byte
    uint32_t crc = crc32c(bad.data() + k_segment_header_size + 4, bad.size() - k_segment_header_size - 4);
    for (int i = 0; i < 4; ++i)
        bad[k_segment_header_size + static_cast<size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xFF);
    EXPECT_EQ(scan_segment(bad, 100).first_damage, damage::bad_record);
}

TEST(wal_format, oversized_message_is_rejected) {
    message m = make_message(1);
    m.topic.assign(70000, 't');
    EXPECT_EQ(encoded_record_size(m), 0u);
    m = make_message(1);
    m.qos = 3;
    EXPECT_EQ(encoded_record_size(m), 0u);
}

TEST(wal_format, empty_segment_is_clean) {
    auto scan = scan_segment(encode_segment_header(0, 100), 100);
    EXPECT_EQ(scan.header, header_status::ok);
    EXPECT_EQ(scan.records, 0u);
    EXPECT_EQ(scan.next_offset, 100u);
}

TEST(wal_format, bad_crc_in_last_record_is_tail_damage) {
    auto b = build_segment(4);
    b.bytes[b.record_pos[3] + 20] ^= 0x40;
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::bad_crc);
    EXPECT_EQ(scan.damage_pos, b.record_pos[3]);
    EXPECT_EQ(scan.valid_bytes, b.record_pos[3]);
    EXPECT_EQ(scan.records, 3u);
    EXPECT_FALSE(scan.valid_after_damage);
}

TEST(wal_format, torn_tail) {
    auto b = build_segment(4);
    b.bytes.resize(b.bytes.size() - 10);
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::torn_record);
    EXPECT_EQ(scan.valid_bytes, b.record_pos[3]);
    EXPECT_FALSE(scan.valid_after_damage);
}

TEST(wal_format, zero_filled_tail) {
    auto b = build_segment(4);
    const size_t good = b.bytes.size();
    b.bytes.append(4096, '\0');
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::zero_filled);
    EXPECT_EQ(scan.valid_bytes, good);
    EXPECT_EQ(scan.records, 4u);
}

TEST(wal_format, zero_filled_over_last_record) {
    auto b = build_segment(4);
    std::fill(b.bytes.begin() + static_cast<std::ptrdiff_t>(b.record_pos[3]), b.bytes.end(), '\0');
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::zero_filled);
    EXPECT_EQ(scan.valid_bytes, b.record_pos[3]);
}

TEST(wal_format, truncated_header) {
    auto b = build_segment(4);
    b.bytes.resize(b.record_pos[3] + 5);
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::truncated_header);
    EXPECT_EQ(scan.valid_bytes, b.record_pos[3]);
}

TEST(wal_format, bad_length) {
    auto b = build_segment(4);
    b.bytes[b.record_pos[3] + 7] = '\x7f';  // length's high byte: ~2 GiB
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::bad_length);
    EXPECT_EQ(scan.valid_bytes, b.record_pos[3]);
    EXPECT_FALSE(scan.valid_after_damage);
}

TEST(wal_format, wrong_offset_is_bad_record) {
    std::string bytes = encode_segment_header(0, 100);
    encode_record(bytes, 100, make_message(0));
    const size_t second = bytes.size();
    encode_record(bytes, 105, make_message(1));  // CRC fine, offset not dense
    auto scan = scan_segment(bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::bad_record);
    EXPECT_EQ(scan.damage_pos, second);
}

TEST(wal_format, corruption_in_the_middle_is_detected) {
    auto b = build_segment(6);
    b.bytes[b.record_pos[2] + 25] ^= 0x01;  // bad CRC in record 2 of 6
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::bad_crc);
    EXPECT_EQ(scan.records, 2u);
    EXPECT_TRUE(scan.valid_after_damage);
    EXPECT_EQ(scan.max_offset_after_damage, 105u);
}

TEST(wal_format, bad_length_in_the_middle_is_detected) {
    auto b = build_segment(6);
    b.bytes[b.record_pos[1] + 7] = '\x55';
    auto scan = scan_segment(b.bytes, 100);
    EXPECT_EQ(scan.first_damage, damage::bad_length);
    EXPECT_TRUE(scan.valid_after_damage);
    EXPECT_EQ(scan.max_offset_after_damage, 105u);
}

TEST(wal_format, header_cases) {
    auto b = build_segment(2);
    EXPECT_EQ(scan_segment(b.bytes.substr(0, 10), 100).header, header_status::short_file);
    EXPECT_EQ(scan_segment(std::string(24, '\0'), 100).header, header_status::zero_filled);
    EXPECT_EQ(scan_segment(b.bytes, 101).header, header_status::wrong_base);
    std::string bad = b.bytes;
    bad[9] ^= 1;
    auto scan = scan_segment(bad, 100);
    EXPECT_EQ(scan.header, header_status::bad);
    EXPECT_TRUE(scan.valid_after_damage);  // the records tell how far the offsets went
    EXPECT_EQ(scan.max_offset_after_damage, 101u);
    for (char version : {'\0', '\3'}) {  // before the oldest readable, after the newest
        std::string other = b.bytes;
        other[4] = version;
        uint32_t crc = crc32c(other.data(), 20);
        for (int i = 0; i < 4; ++i)
            other[20 + static_cast<size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xFF);
        EXPECT_EQ(scan_segment(other, 100).header, header_status::unsupported_version);
    }
}

TEST(wal_cursors, encode_decode_and_reject_damage) {
    cursor_map m;
    m[{"pipeline", 0}] = 42;
    m[{"pipeline", 1}] = 7;
    m[{"archiver", 0}] = 0;
    std::string bytes = encode_cursors(m);
    auto back = decode_cursors(bytes);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, m);
    for (size_t i = 0; i < bytes.size(); ++i) {
        std::string bad = bytes;
        bad[i] ^= 0x10;
        EXPECT_FALSE(decode_cursors(bad)) << i;
    }
    EXPECT_FALSE(decode_cursors(bytes.substr(0, bytes.size() - 1)));
    EXPECT_TRUE(decode_cursors(encode_cursors({})));
}

}  // namespace
}  // namespace sluice::bus::wal
