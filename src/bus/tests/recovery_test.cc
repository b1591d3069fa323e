// SPDX-License-Identifier: Apache-2.0
//
// Recovery at open_wal(): each corruption case of docs/wal-format.md "Recovery" is
// produced on real segment files and must be handled distinctly: torn tails are cut
// off, corruption in the middle is quarantined and reported, never skipped silently.
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "bus/tests/test_util.h"
#include "bus/wal/crc32c.h"
#include "bus/wal/format.h"
#include "bus/wal/wal.h"

namespace sluice::bus {
namespace {

using namespace std::chrono_literals;
using test::append_wait;
using test::make_message;
using test::read_all;
using test::slurp;
using test::spit;
using test::temp_dir;
using action = recovery_event::action;

class recovery : public ::testing::Test {
protected:
    wal_options options() const {
        wal_options o;
        o.dir = dir_.wal();
        o.segment_bytes = 4096;
        o.group_commit_max_delay = 0us;
        return o;
    }
    // Writes n records and closes the WAL.
    void fill(uint64_t n) {
        auto b = open_wal(options());
        ASSERT_TRUE(b);
        for (uint64_t i = 0; i < n; ++i)
            ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    }
    std::vector<std::string> segments() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(partition_dir(dir_.wal(), 0)))
            if (e.path().extension() == ".log") out.push_back(e.path().string());
        std::sort(out.begin(), out.end());
        return out;
    }
    // Record start positions in a segment file.
    static std::vector<uint64_t> positions(const std::string& path) {
        std::vector<uint64_t> pos;
        std::string bytes = slurp(path);
        auto base = wal::parse_segment_file_name(std::filesystem::path(path).filename().string());
        wal::scan_segment(bytes, *base, [&](const record&, uint64_t p) { pos.push_back(p); });
        return pos;
    }
    std::unique_ptr<bus> reopen(std::vector<recovery_event>& report) {
        auto b = open_wal(options(), default_fs(), &report);
        EXPECT_TRUE(b) << b.error().message();
        return b ? std::move(*b) : nullptr;
    }
    // Reopens after tail damage and checks: one tail_truncated event of `kind`,
    // `expect` records intact, the next append continues the offsets.
    void expect_tail_truncated(wal::damage kind, uint64_t expect) {
        std::vector<recovery_event> report;
        auto b = reopen(report);
        ASSERT_TRUE(b);
        ASSERT_EQ(report.size(), 1u);
        EXPECT_EQ(report[0].what, action::tail_truncated);
        EXPECT_EQ(report[0].record_damage, kind) << wal::to_string(report[0].record_damage);
        EXPECT_GT(report[0].bytes_dropped, 0u);
        auto recs = read_all(*b, 0);
        ASSERT_EQ(recs.size(), expect);
        for (uint64_t i = 0; i < expect; ++i)
            EXPECT_EQ(recs[i].msg, make_message(i));
        auto off = append_wait(*b, 0, make_message(expect));
        ASSERT_TRUE(off);
        EXPECT_EQ(*off, expect);
        b.reset();
        // A second open finds nothing left to repair.
        std::vector<recovery_event> again;
        auto b2 = reopen(again);
        EXPECT_TRUE(again.empty());
        EXPECT_EQ(read_all(*b2, 0).size(), expect + 1);
    }

    temp_dir dir_;
};

TEST_F(recovery, clean_log_reports_nothing) {
    fill(50);
    std::vector<recovery_event> report;
    auto b = reopen(report);
    EXPECT_TRUE(report.empty());
    EXPECT_EQ(read_all(*b, 0).size(), 50u);
}

TEST_F(recovery, torn_tail_is_truncated) {
    fill(50);
    auto last = segments().back();
    std::string bytes = slurp(last);
    spit(last, bytes.substr(0, bytes.size() - 30));
    expect_tail_truncated(wal::damage::torn_record, 49);
}

TEST_F(recovery, bad_crc_in_last_record_is_truncated) {
    fill(50);
    auto last = segments().back();
    std::string bytes = slurp(last);
    bytes[bytes.size() - 3] ^= 0x20;
    spit(last, bytes);
    expect_tail_truncated(wal::damage::bad_crc, 49);
}

TEST_F(recovery, zero_filled_tail_is_truncated) {
    fill(50);
    auto last = segments().back();
    spit(last, slurp(last) + std::string(8192, '\0'));
    expect_tail_truncated(wal::damage::zero_filled, 50);
}

TEST_F(recovery, truncated_record_header_is_truncated) {
    fill(50);
    auto last = segments().back();
    auto pos = positions(last);
    std::string bytes = slurp(last);
    spit(last, bytes.substr(0, pos.back() + 4));
    expect_tail_truncated(wal::damage::truncated_header, 49);
}

TEST_F(recovery, bad_length_at_tail_is_truncated) {
    fill(50);
    auto last = segments().back();
    auto pos = positions(last);
    std::string bytes = slurp(last);
    bytes[pos.back() + 7] = '\x40';  // length ~1 GiB
    spit(last, bytes);
    expect_tail_truncated(wal::damage::bad_length, 49);
}

TEST_F(recovery, corruption_in_a_sealed_segment_is_quarantined) {
    fill(100);
    auto segs = segments();
    ASSERT_GE(segs.size(), 4u);
    const std::string victim = segs[1];
    const uint64_t first = *wal::parse_segment_file_name(std::filesystem::path(segs[1]).filename().string());
    const uint64_t end = *wal::parse_segment_file_name(std::filesystem::path(segs[2]).filename().string());
    auto pos = positions(victim);
    std::string bytes = slurp(victim);
    bytes[pos[2] + 30] ^= 0x01;
    spit(victim, bytes);

    std::vector<recovery_event> report;
    auto b = reopen(report);
    ASSERT_TRUE(b);
    ASSERT_EQ(report.size(), 1u);
    EXPECT_EQ(report[0].what, action::segment_quarantined);
    EXPECT_EQ(report[0].record_damage, wal::damage::bad_crc);
    EXPECT_EQ(report[0].first_offset, first);
    EXPECT_EQ(report[0].end_offset, end);
    EXPECT_TRUE(std::filesystem::exists(victim + ".corrupt"));
    EXPECT_FALSE(std::filesystem::exists(victim));
    EXPECT_EQ(b->get_stats(0).quarantined_segments, 1u);
    EXPECT_EQ(b->get_stats(0).durable_end, 100u);

    // A reader hits the quarantined range loudly, not silently.
    auto r = b->open_reader(0, 0);
    ASSERT_TRUE(r);
    std::vector<record> out;
    for (;;) {
        auto n = (*r)->poll(out, 1000, 0ms);
        if (!n) {
            EXPECT_EQ(n.error(), make_error_code(errc::corruption));
            break;
        }
        ASSERT_GT(*n, 0u) << "reader skipped past the quarantined range";
    }
    EXPECT_EQ(out.size(), first);
    EXPECT_EQ((*r)->position(), first);
    // Past the range everything is intact, and new appends continue the offsets.
    auto after = read_all(*b, 0, end);
    ASSERT_EQ(after.size(), 100 - end);
    for (const auto& rec : after)
        EXPECT_EQ(rec.msg, make_message(rec.offset));
    EXPECT_EQ(*append_wait(*b, 0, make_message(100)), 100u);
    b.reset();

    // The gap is remembered across restarts.
    std::vector<recovery_event> again;
    auto b2 = reopen(again);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].what, action::offsets_missing);
    EXPECT_EQ(again[0].first_offset, first);
    EXPECT_EQ(again[0].end_offset, end);
    auto r2 = b2->open_reader(0, first);
    ASSERT_TRUE(r2);
    auto n2 = (*r2)->poll(out, 10, 0ms);
    ASSERT_FALSE(n2);
    EXPECT_EQ(n2.error(), make_error_code(errc::corruption));
}

TEST_F(recovery, corruption_in_the_middle_of_the_last_segment_is_quarantined) {
    fill(100);
    auto last = segments().back();
    const uint64_t first = *wal::parse_segment_file_name(std::filesystem::path(last).filename().string());
    auto pos = positions(last);
    ASSERT_GE(pos.size(), 4u);
    std::string bytes = slurp(last);
    bytes[pos[1] + 5] ^= 0x7f;  // length of the second record of the last segment
    spit(last, bytes);

    std::vector<recovery_event> report;
    auto b = reopen(report);
    ASSERT_TRUE(b);
    ASSERT_EQ(report.size(), 1u);
    EXPECT_EQ(report[0].what, action::segment_quarantined);
    EXPECT_EQ(report[0].first_offset, first);
    EXPECT_EQ(report[0].end_offset, 100u);  // found from the valid records after the damage
    EXPECT_TRUE(std::filesystem::exists(last + ".corrupt"));
    // Offsets are never reused: the next append continues after the quarantined range.
    EXPECT_EQ(*append_wait(*b, 0, make_message(100)), 100u);
    EXPECT_EQ(read_all(*b, 0).size(), first);
}

TEST_F(recovery, corrupt_segment_header_is_quarantined) {
    fill(100);
    auto segs = segments();
    std::string bytes = slurp(segs[0]);
    bytes[1] = 'X';
    spit(segs[0], bytes);
    std::vector<recovery_event> report;
    auto b = reopen(report);
    ASSERT_TRUE(b);
    ASSERT_EQ(report.size(), 1u);
    EXPECT_EQ(report[0].what, action::segment_quarantined);
    EXPECT_EQ(report[0].header, wal::header_status::bad);
    EXPECT_EQ(report[0].first_offset, 0u);
}

TEST_F(recovery, unsynced_new_segment_is_removed) {
    fill(30);
    auto last = segments().back();
    auto b0 = open_wal(options());
    const uint64_t end = (*b0)->get_stats(0).durable_end;
    b0->reset();
    // A crash during a roll: the new file exists, its header never reached the disk.
    const std::string fresh = partition_dir(dir_.wal(), 0) + "/" + wal::segment_file_name(end);
    spit(fresh, std::string(24, '\0'));
    std::vector<recovery_event> report;
    auto b = reopen(report);
    ASSERT_TRUE(b);
    ASSERT_EQ(report.size(), 1u);
    EXPECT_EQ(report[0].what, action::empty_segment_removed);
    EXPECT_EQ(report[0].header, wal::header_status::zero_filled);
    EXPECT_EQ(*append_wait(*b, 0, make_message(30)), 30u);
    EXPECT_EQ(read_all(*b, 0).size(), 31u);
}

TEST_F(recovery, unsupported_format_version_refuses_to_open) {
    fill(10);
    auto last = segments().back();
    std::string bytes = slurp(last);
    bytes[4] = 9;
    uint32_t crc = wal::crc32c(bytes.data(), 20);
    for (int i = 0; i < 4; ++i)
        bytes[20 + static_cast<size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xFF);
    spit(last, bytes);
    auto b = open_wal(options());
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error(), make_error_code(errc::corruption));
    EXPECT_TRUE(std::filesystem::exists(last));  // a newer build's data is left alone
}

TEST_F(recovery, corrupt_cursor_file_is_set_aside) {
    fill(10);
    {
        auto b = open_wal(options());
        ASSERT_TRUE((*b)->commit_cursor("pipeline", 0, 5));
    }
    const std::string path = cursors_path(dir_.wal());
    std::string bytes = slurp(path);
    bytes[6] ^= 1;
    spit(path, bytes);
    auto b = open_wal(options());
    ASSERT_TRUE(b);
    EXPECT_EQ(*(*b)->cursor("pipeline", 0), std::nullopt);
    EXPECT_TRUE(std::filesystem::exists(path + ".corrupt"));
}

}  // namespace
}  // namespace sluice::bus
