// SPDX-License-Identifier: Apache-2.0
//
// Golden WAL files (tests/golden/wal/): every released format version stays readable
// forever, and corrupted copies keep being classified the same way. The files were
// written once by `generate` below (run with SLUICE_WAL_GOLDEN_REGEN=1 only when adding
// a new format version; never rewrite an existing version's files).
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "bus/tests/test_util.h"
#include "bus/wal/format.h"
#include "bus/wal/wal.h"

namespace sluice::bus {
namespace {

namespace fs = std::filesystem;
using test::slurp;
using test::spit;

const std::string k_golden = "tests/golden/wal";
constexpr uint64_t k_records = 40;

// The i-th record of the golden files of format `version`. Version 2 added packet ids.
message golden_message(uint64_t i, int version) {
    message m;
    m.receive_time_ms = 1732212345000 + static_cast<int64_t>(i) * 250;
    m.client_id = "press-" + std::to_string(i % 3);
    m.topic = "devices/press-" + std::to_string(i % 3) + "/telemetry";
    m.payload =
        "{\"ts\":" + std::to_string(1732212345000 + i * 250) + ",\"temperature\":" + std::to_string(20 + i % 9) + ".5}";
    if (i % 10 == 7) m.payload = std::string("\x01\x02\x00\xff binary", 11);
    m.qos = static_cast<uint8_t>(i % 3);
    if (version >= 2 && m.qos > 0 && i % 4 != 0) m.packet_id = static_cast<uint16_t>(1 + (i * 7919) % 65535);
    return m;
}

wal_options golden_options(const std::string& dir) {
    wal_options o;
    o.dir = dir;
    o.segment_bytes = 1024;
    o.group_commit_max_delay = std::chrono::microseconds(0);
    return o;
}

std::string version_dir(int version) {
    return k_golden + "/v" + std::to_string(version);
}
std::string golden_segment(int version, uint64_t base) {
    return partition_dir(version_dir(version), 0) + "/" + wal::segment_file_name(base);
}

// Every format version with golden files; add the new one here after generating it.
const int k_versions[] = {1, 2};

// Writes the files of the current format version only (k_format_version).
TEST(wal_golden, generate) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, before any thread of the test runs
    if (std::getenv("SLUICE_WAL_GOLDEN_REGEN") == nullptr) GTEST_SKIP() << "set SLUICE_WAL_GOLDEN_REGEN=1 to rewrite";
    const int version = wal::k_format_version;
    test::temp_dir tmp;
    {
        auto b = open_wal(golden_options(tmp.wal()));
        ASSERT_TRUE(b);
        for (uint64_t i = 0; i < k_records; ++i)
            ASSERT_TRUE(test::append_wait(**b, 0, golden_message(i, version)));
        ASSERT_TRUE((*b)->commit_cursor("pipeline", 0, 5));
    }
    fs::remove_all(version_dir(version));
    fs::create_directories(version_dir(version));
    fs::copy(tmp.wal(), version_dir(version), fs::copy_options::recursive);
    // Corrupted copies of the first segment, one per damage case.
    const std::string seg0 = slurp(golden_segment(version, 0));
    std::vector<uint64_t> pos;
    wal::scan_segment(seg0, 0, [&](const record&, uint64_t p) { pos.push_back(p); });
    const std::string bad = version_dir(version) + "-corrupt";
    fs::create_directories(bad);
    spit(bad + "/torn-tail.log", seg0.substr(0, seg0.size() - 7));
    spit(bad + "/zero-tail.log", seg0 + std::string(512, '\0'));
    spit(bad + "/truncated-header.log", seg0.substr(0, pos.back() + 3));
    std::string crc = seg0;
    crc[pos.back() + 12] ^= 0x04;
    spit(bad + "/bad-crc-tail.log", crc);
    std::string len = seg0;
    len[pos.back() + 7] = '\x7f';
    spit(bad + "/bad-length-tail.log", len);
    std::string mid = seg0;
    mid[pos[1] + 20] ^= 0x10;
    spit(bad + "/bad-crc-middle.log", mid);
    std::string hdr = seg0;
    hdr[0] = 'X';
    spit(bad + "/bad-header.log", hdr);
}

TEST(wal_golden, every_version_reads_back_exactly) {
    for (int version : k_versions) {
        SCOPED_TRACE(version);
        ASSERT_TRUE(fs::exists(golden_segment(version, 0))) << "run from the source root";
        test::temp_dir tmp;
        fs::copy(version_dir(version), tmp.wal(), fs::copy_options::recursive);
        std::vector<recovery_event> report;
        auto b = open_wal(golden_options(tmp.wal()), default_fs(), &report);
        ASSERT_TRUE(b) << b.error().message();
        EXPECT_TRUE(report.empty());
        auto recs = test::read_all(**b, 0);
        ASSERT_EQ(recs.size(), k_records);
        for (uint64_t i = 0; i < k_records; ++i) {
            EXPECT_EQ(recs[i].offset, i);
            EXPECT_EQ(recs[i].msg, golden_message(i, version)) << i;
        }
        EXPECT_EQ(*(*b)->cursor("pipeline", 0), std::optional<uint64_t>(5));
        // Each segment file on its own: header of its version, records dense from its base.
        size_t segments = 0;
        for (const auto& e : fs::directory_iterator(partition_dir(version_dir(version), 0))) {
            auto base = wal::parse_segment_file_name(e.path().filename().string());
            ASSERT_TRUE(base);
            auto scan = wal::scan_segment(slurp(e.path().string()), *base);
            EXPECT_EQ(scan.header, wal::header_status::ok);
            EXPECT_EQ(scan.version, version);
            EXPECT_EQ(scan.first_damage, wal::damage::none);
            ++segments;
        }
        EXPECT_GE(segments, 3u);
    }
}

TEST(wal_golden, corrupted_copies_keep_their_classification) {
    for (int version : k_versions) {
        SCOPED_TRACE(version);
        const std::string bad = version_dir(version) + "-corrupt";
        struct expect_case {
            const char* file;
            wal::header_status header;
            wal::damage d;
            bool middle;
        };
        const expect_case cases[] = {
            {"torn-tail.log", wal::header_status::ok, wal::damage::torn_record, false},
            {"zero-tail.log", wal::header_status::ok, wal::damage::zero_filled, false},
            {"truncated-header.log", wal::header_status::ok, wal::damage::truncated_header, false},
            {"bad-crc-tail.log", wal::header_status::ok, wal::damage::bad_crc, false},
            {"bad-length-tail.log", wal::header_status::ok, wal::damage::bad_length, false},
            {"bad-crc-middle.log", wal::header_status::ok, wal::damage::bad_crc, true},
            {"bad-header.log", wal::header_status::bad, wal::damage::none, true},
        };
        for (const auto& c : cases) {
            SCOPED_TRACE(c.file);
            auto scan = wal::scan_segment(slurp(bad + "/" + c.file), 0);
            EXPECT_EQ(scan.header, c.header);
            EXPECT_EQ(scan.first_damage, c.d);
            EXPECT_EQ(scan.valid_after_damage, c.middle);
            // Recovery on a WAL whose only segment is this file.
            test::temp_dir tmp;
            fs::create_directories(partition_dir(tmp.wal(), 0));
            fs::copy_file(bad + "/" + c.file, partition_dir(tmp.wal(), 0) + "/" + wal::segment_file_name(0));
            std::vector<recovery_event> report;
            auto b = open_wal(golden_options(tmp.wal()), default_fs(), &report);
            ASSERT_TRUE(b);
            ASSERT_EQ(report.size(), 1u);
            EXPECT_EQ(report[0].what,
                      c.middle ? recovery_event::action::segment_quarantined : recovery_event::action::tail_truncated);
            for (const auto& rec : test::read_all(**b, 0))
                EXPECT_EQ(rec.msg, golden_message(rec.offset, version));
        }
    }
}

}  // namespace
}  // namespace sluice::bus
