// SPDX-License-Identifier: Apache-2.0
//
// The state store's framing, one test per damage case (LevelDB db/log_test.cc style): a
// record round-trips, each kind of damage is named correctly, and scan() tells a torn
// tail (nothing valid after the damage) from corruption in the middle.
#include "broker/persist/format.h"

#include <vector>

#include <gtest/gtest.h>

#include "bus/wal/crc32c.h"

namespace sluice::broker::persist::format {
namespace {

// Frames a body by hand (so tests can build records encode_record refuses to write).
std::string frame(op o, uint8_t kind, std::string_view key, std::string_view value, uint32_t key_length = UINT32_MAX) {
    std::string body;
    body.push_back(static_cast<char>(o));
    body.push_back(static_cast<char>(kind));
    const uint32_t kl = key_length == UINT32_MAX ? static_cast<uint32_t>(key.size()) : key_length;
    for (int i = 0; i < 4; ++i)
        body.push_back(static_cast<char>((kl >> (8 * i)) & 0xFF));
    body.append(key);
    body.append(value);
    std::string framed;
    const auto len = static_cast<uint32_t>(body.size());
    for (int i = 0; i < 4; ++i)
        framed.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
    framed += body;
    const uint32_t crc = bus::wal::crc32c(framed);
    std::string out;
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((crc >> (8 * i)) & 0xFF));
    return out + framed;
}

std::string three_records() {
    std::string out;
    encode_record(out, op::put, 1, "client-a", "session bytes");
    encode_record(out, op::erase, 2, "some/topic", {});
    encode_record(out, op::erase_prefix, 3,
                  std::string("\0\x01"
                              "a",
                              3),
                  {});
    return out;
}

TEST(persist_format, record_round_trip) {
    std::string out;
    encode_record(out, op::put, 2, "a/b", std::string("v\0v", 3));
    ASSERT_EQ(out.size(), encoded_record_size("a/b", std::string("v\0v", 3)));
    record_view r;
    size_t size = 0;
    ASSERT_EQ(decode_record(out, r, size), damage::none);
    EXPECT_EQ(size, out.size());
    EXPECT_EQ(r.o, op::put);
    EXPECT_EQ(r.kind, 2);
    EXPECT_EQ(r.key, "a/b");
    EXPECT_EQ(r.value, std::string("v\0v", 3));
}

TEST(persist_format, file_header_round_trip_and_checks) {
    uint64_t g = 0;
    const auto j = encode_file_header(file_type::journal, 42);
    ASSERT_EQ(j.size(), k_file_header_size);
    EXPECT_EQ(decode_file_header(j, file_type::journal, g), header_status::ok);
    EXPECT_EQ(g, 42u);
    EXPECT_EQ(decode_file_header(j, file_type::snapshot, g), header_status::bad);
    EXPECT_EQ(decode_file_header(j.substr(0, 10), file_type::journal, g), header_status::short_file);
    EXPECT_EQ(decode_file_header(std::string(20, '\0'), file_type::journal, g), header_status::zero_filled);
    auto flipped = j;
    flipped[9] ^= 1;
    EXPECT_EQ(decode_file_header(flipped, file_type::journal, g), header_status::bad);
}

TEST(persist_format, journal_file_names) {
    EXPECT_EQ(journal_file_name(7), "journal-00000000000000000007.log");
    EXPECT_EQ(parse_journal_file_name(journal_file_name(UINT64_MAX)), UINT64_MAX);
    EXPECT_EQ(parse_journal_file_name("journal-00000000000000000007.log"), 7u);
    EXPECT_FALSE(parse_journal_file_name("journal-00000000000000000007.log.corrupt"));
    EXPECT_FALSE(parse_journal_file_name("journal-0000000000000000000x.log"));
    EXPECT_FALSE(parse_journal_file_name("journal-99999999999999999999.log"));  // overflows u64
    EXPECT_FALSE(parse_journal_file_name("state.snapshot"));
}

TEST(persist_format, damage_cases) {
    std::string rec;
    encode_record(rec, op::put, 1, "k", "value");
    record_view r;
    size_t size = 0;

    EXPECT_EQ(decode_record(rec.substr(0, 5), r, size), damage::truncated_header);
    EXPECT_EQ(decode_record(std::string(64, '\0'), r, size), damage::zero_filled);
    EXPECT_EQ(decode_record(rec.substr(0, rec.size() - 1), r, size), damage::torn_record);

    auto bad_crc = rec;
    bad_crc.back() ^= 0x20;
    EXPECT_EQ(decode_record(bad_crc, r, size), damage::bad_crc);

    auto bad_length = rec;
    bad_length[7] = 0x7F;  // length > k_max_body_size
    EXPECT_EQ(decode_record(bad_length, r, size), damage::bad_length);

    // CRC-valid records that break the rules are bad_record, not a torn write.
    EXPECT_EQ(decode_record(frame(op::erase, 1, "k", "v"), r, size), damage::bad_record);  // erase with value
    EXPECT_EQ(decode_record(frame(op::put, 0, "k", "v"), r, size), damage::bad_record);    // kind 0
    EXPECT_EQ(decode_record(frame(op{9}, 1, "k", ""), r, size), damage::bad_record);       // unknown op
    EXPECT_EQ(decode_record(frame(op::snapshot_end, 0, "", "1234567"), r, size), damage::bad_record);
    EXPECT_EQ(decode_record(frame(op::put, 1, "k", "v", 100), r, size), damage::bad_record);  // key length
    EXPECT_EQ(decode_record(frame(op::put, 1, "k", "v"), r, size), damage::none);
}

TEST(persist_format, scan_reports_records_and_tail_damage) {
    const auto recs = three_records();
    std::vector<std::string> keys;
    auto s = scan(recs, [&](const record_view& r) { keys.emplace_back(r.key); });
    EXPECT_EQ(s.first_damage, damage::none);
    EXPECT_EQ(s.records, 3u);
    EXPECT_EQ(s.valid_bytes, recs.size());
    ASSERT_EQ(keys.size(), 3u);
    EXPECT_EQ(keys[1], "some/topic");

    // Torn last record: damage, nothing valid after it.
    auto torn = scan(recs.substr(0, recs.size() - 2), nullptr);
    EXPECT_EQ(torn.first_damage, damage::torn_record);
    EXPECT_EQ(torn.records, 2u);
    EXPECT_FALSE(torn.valid_after_damage);

    // Zero-filled tail after valid records.
    auto zeros = scan(recs + std::string(4096, '\0'), nullptr);
    EXPECT_EQ(zeros.first_damage, damage::zero_filled);
    EXPECT_EQ(zeros.valid_bytes, recs.size());
    EXPECT_FALSE(zeros.valid_after_damage);

    // Garbage tail (a torn write that left random bytes).
    auto garbage = scan(recs + "\x13\x37\xbe\xef\x10\0\0\0junkjunkjunkjunk", nullptr);
    EXPECT_NE(garbage.first_damage, damage::none);
    EXPECT_EQ(garbage.records, 3u);
    EXPECT_FALSE(garbage.valid_after_damage);
}

TEST(persist_format, scan_detects_corruption_in_the_middle) {
    std::string first;
    encode_record(first, op::put, 1, "a", "first value");
    auto recs = first + three_records();
    recs[first.size() - 3] ^= 0x01;  // flip a bit in the first record's value
    auto s = scan(recs, nullptr);
    EXPECT_EQ(s.first_damage, damage::bad_crc);
    EXPECT_EQ(s.damage_pos, 0u);
    EXPECT_EQ(s.records, 0u);
    EXPECT_TRUE(s.valid_after_damage);

    // A corrupted length in the middle looks torn, but valid records follow.
    auto recs2 = first + three_records();
    recs2[first.size() + 6] = 0x40;  // second record's length becomes huge
    auto s2 = scan(recs2, nullptr);
    EXPECT_EQ(s2.records, 1u);
    EXPECT_NE(s2.first_damage, damage::none);
    EXPECT_TRUE(s2.valid_after_damage);
}

TEST(persist_format, search_after_damage_has_a_budget) {
    // Damage, then records whose CRCs are all wrong: no valid record follows.
    std::string recs = "\x01\x02\x03\x04";
    for (int i = 0; i < 50; ++i) {
        std::string r;
        encode_record(r, op::put, 1, "key", std::string(100, 'v'));
        r[0] ^= 0x55;
        recs += r;
    }
    auto full = scan(recs, nullptr);
    EXPECT_EQ(full.records, 0u);
    EXPECT_FALSE(full.valid_after_damage);
    EXPECT_FALSE(full.search_exhausted);
    // With a tiny budget the search gives up and assumes the worst (refuse, don't drop).
    auto limited = scan(recs, nullptr, 1000);
    EXPECT_TRUE(limited.valid_after_damage);
    EXPECT_TRUE(limited.search_exhausted);
}

}  // namespace
}  // namespace sluice::broker::persist::format
