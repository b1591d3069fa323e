// SPDX-License-Identifier: Apache-2.0
//
// Promise 1 under simulated crashes (LevelDB's fault_injection_test idea): every append
// whose callback reported success survives a crash that drops all unsynced data; I/O
// errors injected by name fail appends with io_error instead of acknowledging them.
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "bus/fault_injection_fs.h"
#include "bus/tests/test_util.h"
#include "bus/wal/format.h"
#include "bus/wal/wal.h"

namespace sluice::bus {
namespace {

using namespace std::chrono_literals;
using test::append_wait;
using test::make_message;
using test::read_all;
using test::temp_dir;

// Appenders run while the machine "crashes" at a random moment; afterwards every
// acknowledged record must be on disk with its exact content and offset.
void crash_round(uint32_t seed, durability mode) {
    temp_dir dir;
    wal_options o;
    o.dir = dir.wal();
    o.partitions = 2;
    o.segment_bytes = 8192;  // many rolls, so crashes also hit segment creation
    o.group_commit_max_delay = 100us;
    o.mode = mode;
    std::mutex mu;
    std::map<std::pair<uint32_t, uint64_t>, message> acked;
    uint64_t previously_acked = 0;
    // Two lives: a crash, a recovery, more appends, another crash.
    for (int life = 0; life < 2; ++life) {
        auto fs = std::make_shared<fault_injection_fs>();
        auto b = open_wal(o, fs);
        ASSERT_TRUE(b) << b.error().message();
        std::atomic<bool> go{true};
        std::vector<std::thread> ts;
        for (int t = 0; t < 4; ++t) {
            ts.emplace_back([&, t] {
                uint64_t i = 0;
                while (go.load()) {
                    message m = make_message(seed * 100000 + static_cast<uint64_t>(t) * 10000 + i++);
                    uint32_t part = static_cast<uint32_t>(i % 2);
                    (*b)->append(part, m, [&, m, part](result<uint64_t> r) {
                        if (!r) {
                            if (!fs->crashed())
                                ADD_FAILURE() << "append failed before the crash: " << r.error().message();
                            return;
                        }
                        std::lock_guard lock(mu);
                        acked[{part, *r}] = m;
                    });
                    if (i % 64 == 0) std::this_thread::sleep_for(100us);
                }
            });
        }
        // Let some appends be acknowledged in this life (the machine may be loaded),
        // then crash at a seed-dependent moment.
        for (int i = 0; i < 500; ++i) {
            {
                std::lock_guard lock(mu);
                if (acked.size() >= previously_acked + 20) break;
            }
            std::this_thread::sleep_for(1ms);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds((seed * 7 + static_cast<uint32_t>(life) * 13) % 40));
        fs->crash();  // from here no byte reaches the disk
        go = false;
        for (auto& t : ts)
            t.join();
        (*b)->stop();  // pending appends fail with io_error; none is acknowledged now
        fs->drop_unsynced_data();
        b->reset();
        std::lock_guard lock(mu);
        EXPECT_GT(acked.size(), previously_acked) << "the test must acknowledge something before the crash";
        previously_acked = acked.size();
    }
    auto b = open_wal(o);
    ASSERT_TRUE(b) << b.error().message();
    for (uint32_t part = 0; part < 2; ++part) {
        auto recs = read_all(**b, part);
        std::map<uint64_t, const message*> on_disk;
        for (const auto& rec : recs)
            on_disk[rec.offset] = &rec.msg;
        for (const auto& [key, m] : acked) {
            if (key.first != part) continue;
            auto it = on_disk.find(key.second);
            ASSERT_NE(it, on_disk.end()) << "acknowledged offset " << key.second << " of partition " << part
                                         << " lost (seed " << seed << ")";
            EXPECT_EQ(*it->second, m);
        }
    }
}

TEST(fault_injection, acknowledged_appends_survive_crash_fsync_mode) {
    for (uint32_t seed = 1; seed <= 6; ++seed)
        crash_round(seed, durability::fsync);
}

TEST(fault_injection, batch_async_survives_process_crash) {
    // A process crash (kill -9) keeps what write(2) handed to the kernel: model it by
    // reopening the files as they are, without dropping unsynced data.
    temp_dir dir;
    wal_options o;
    o.dir = dir.wal();
    o.mode = durability::batch_async;
    o.group_commit_max_delay = 50ms;
    std::map<uint64_t, message> acked;
    {
        auto b = open_wal(o);
        ASSERT_TRUE(b);
        for (uint64_t i = 0; i < 200; ++i) {
            auto off = append_wait(**b, 0, make_message(i));
            ASSERT_TRUE(off);
            acked[*off] = make_message(i);
        }
        // Leak the bus's files' state as-is: read them through a second instance
        // while the first still runs (no stop(), no final sync yet).
        auto recs = [&] {
            std::vector<record> out;
            auto data_dir = partition_dir(o.dir, 0);
            auto names = default_fs()->list(data_dir);
            for (const auto& n : *names) {
                auto base = wal::parse_segment_file_name(n);
                if (!base) continue;
                auto bytes = read_whole_file(*default_fs(), data_dir + "/" + n);
                wal::scan_segment(*bytes, *base, [&](const record& r, uint64_t) { out.push_back(r); });
            }
            return out;
        }();
        ASSERT_EQ(recs.size(), acked.size());
        for (const auto& r : recs)
            EXPECT_EQ(r.msg, acked.at(r.offset));
    }
}

TEST(fault_injection, failed_write_fails_appends_and_the_log_stays_consistent) {
    temp_dir dir;
    wal_options o;
    o.dir = dir.wal();
    auto fs = std::make_shared<fault_injection_fs>();
    auto b = open_wal(o, fs);
    ASSERT_TRUE(b);
    ASSERT_EQ(*append_wait(**b, 0, make_message(0)), 0u);
    fs->inject(fault_injection_fs::op::write, "partition-0", 1);
    auto failed = append_wait(**b, 0, make_message(1));
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), make_error_code(errc::io_error));
    // The offset is not burnt and the partition keeps working.
    ASSERT_EQ(*append_wait(**b, 0, make_message(1)), 1u);
    b->reset();
    std::vector<recovery_event> report;
    auto again = open_wal(o, default_fs(), &report);
    ASSERT_TRUE(again);
    EXPECT_TRUE(report.empty());
    auto recs = read_all(**again, 0);
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[1].msg, make_message(1));
}

TEST(fault_injection, failed_fsync_is_never_acknowledged) {
    temp_dir dir;
    wal_options o;
    o.dir = dir.wal();
    auto fs = std::make_shared<fault_injection_fs>();
    auto b = open_wal(o, fs);
    ASSERT_TRUE(b);
    ASSERT_TRUE(append_wait(**b, 0, make_message(0)));
    fs->inject(fault_injection_fs::op::sync, ".log");
    auto r = append_wait(**b, 0, make_message(1));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::io_error));
    // After a failed fsync the page cache state is unknown: the partition refuses
    // further appends until reopened (as PostgreSQL does after fsyncgate).
    fs->clear_faults();
    auto after = append_wait(**b, 0, make_message(2));
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error(), make_error_code(errc::io_error));
    EXPECT_EQ((*b)->get_stats(0).durable_end, 1u);
}

TEST(fault_injection, failed_cursor_commit_keeps_the_old_cursor) {
    temp_dir dir;
    wal_options o;
    o.dir = dir.wal();
    auto fs = std::make_shared<fault_injection_fs>();
    auto b = open_wal(o, fs);
    ASSERT_TRUE(b);
    for (uint64_t i = 0; i < 3; ++i)
        ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    ASSERT_TRUE((*b)->commit_cursor("pipeline", 0, 1));
    fs->inject(fault_injection_fs::op::rename, "cursors", 1);
    auto r = (*b)->commit_cursor("pipeline", 0, 3);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::io_error));
    EXPECT_EQ(*(*b)->cursor("pipeline", 0), std::optional<uint64_t>(1));
    fs->crash();
    b->reset();
    fs->drop_unsynced_data();
    auto again = open_wal(o);
    ASSERT_TRUE(again);
    EXPECT_EQ(*(*again)->cursor("pipeline", 0), std::optional<uint64_t>(1));
}

TEST(fault_injection, drop_unsynced_data_models_power_loss) {
    temp_dir dir;
    auto fs = std::make_shared<fault_injection_fs>();
    ASSERT_TRUE(fs->create_dirs(dir.path() + "/d"));
    auto synced = fs->open_writable(dir.path() + "/d/a");
    ASSERT_TRUE(synced);
    ASSERT_TRUE((*synced)->append("durable"));
    ASSERT_TRUE((*synced)->sync());
    ASSERT_TRUE(fs->sync_dir(dir.path() + "/d"));
    ASSERT_TRUE((*synced)->append("-lost"));
    auto never_synced_dir = fs->open_writable(dir.path() + "/d/b");
    ASSERT_TRUE((*never_synced_dir)->append("x"));
    ASSERT_TRUE((*never_synced_dir)->sync());
    EXPECT_EQ(fs->syncs(), 2u);
    fs->crash();
    EXPECT_FALSE((*synced)->append("more"));
    fs->drop_unsynced_data();
    EXPECT_EQ(test::slurp(dir.path() + "/d/a"), "durable");
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/d/b"));
}

}  // namespace
}  // namespace sluice::bus
