// SPDX-License-Identifier: Apache-2.0
//
// Behaviour of the WAL bus through its abstract interface: append/read, readers across
// segment boundaries, cursors, segment deletion, quota, group commit, durability modes,
// concurrency and stop().
#include "bus/wal/wal.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "bus/fault_injection_fs.h"
#include "bus/tests/test_util.h"

namespace sluice::bus {
namespace {

using namespace std::chrono_literals;
using test::append_wait;
using test::make_message;
using test::read_all;
using test::temp_dir;

wal_options small_options(const temp_dir& dir) {
    wal_options o;
    o.dir = dir.wal();
    o.segment_bytes = 4096;  // ~25 records of 100 bytes per segment
    o.group_commit_max_delay = 200us;
    return o;
}

size_t count_segments(const std::string& pdir) {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(pdir))
        n += e.path().extension() == ".log";
    return n;
}

TEST(wal, append_assigns_dense_offsets_and_reads_back) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    for (uint64_t i = 0; i < 10; ++i) {
        auto off = append_wait(**b, 0, make_message(i));
        ASSERT_TRUE(off);
        EXPECT_EQ(*off, i);
    }
    auto recs = read_all(**b, 0);
    ASSERT_EQ(recs.size(), 10u);
    for (uint64_t i = 0; i < 10; ++i) {
        EXPECT_EQ(recs[i].offset, i);
        EXPECT_EQ(recs[i].msg, make_message(i));
    }
    auto st = (*b)->get_stats(0);
    EXPECT_EQ(st.durable_end, 10u);
    EXPECT_EQ(st.appends, 10u);
    EXPECT_EQ(st.newest_receive_time_ms, make_message(9).receive_time_ms);
    EXPECT_GT(st.bytes_on_disk, 1000u);
    EXPECT_GE(st.fsyncs, 10u);
}

TEST(wal, records_survive_reopen_and_offsets_continue) {
    temp_dir dir;
    {
        auto b = open_wal(small_options(dir));
        ASSERT_TRUE(b);
        for (uint64_t i = 0; i < 60; ++i)
            ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    }
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    EXPECT_EQ((*b)->get_stats(0).durable_end, 60u);
    auto off = append_wait(**b, 0, make_message(60));
    ASSERT_TRUE(off);
    EXPECT_EQ(*off, 60u);
    auto recs = read_all(**b, 0);
    ASSERT_EQ(recs.size(), 61u);
    for (uint64_t i = 0; i < 61; ++i)
        EXPECT_EQ(recs[i].msg, make_message(i));
}

TEST(wal, reader_resumes_from_any_offset_across_segments) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    const uint64_t n = 120;
    for (uint64_t i = 0; i < n; ++i)
        ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    ASSERT_GE(count_segments(partition_dir(dir.wal(), 0)), 4u);
    for (uint64_t from = 0; from <= n; ++from) {
        auto r = (*b)->open_reader(0, from);
        ASSERT_TRUE(r) << from;
        EXPECT_EQ((*r)->position(), from);
        std::vector<record> out;
        // Small polls so that reads also stop and resume inside segments.
        while ((*r)->position() < n) {
            auto got = (*r)->poll(out, 7, 0ms);
            ASSERT_TRUE(got);
            ASSERT_GT(*got, 0u);
        }
        ASSERT_EQ(out.size(), n - from);
        for (size_t k = 0; k < out.size(); ++k) {
            ASSERT_EQ(out[k].offset, from + k);
            ASSERT_EQ(out[k].msg, make_message(from + k));
        }
    }
    EXPECT_FALSE((*b)->open_reader(0, n + 1));
    EXPECT_FALSE((*b)->open_reader(1, 0));
}

TEST(wal, reader_waits_for_new_records) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    auto r = (*b)->open_reader(0, 0);
    ASSERT_TRUE(r);
    std::vector<record> out;
    auto none = (*r)->poll(out, 10, 1ms);
    ASSERT_TRUE(none);
    EXPECT_EQ(*none, 0u);
    std::thread producer([&] {
        std::this_thread::sleep_for(20ms);
        (void)append_wait(**b, 0, make_message(0));
    });
    auto got = (*r)->poll(out, 10, 5000ms);
    producer.join();
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, 1u);
    EXPECT_EQ(out[0].msg, make_message(0));
}

TEST(wal, reader_follows_live_appends_across_rolls) {
    temp_dir dir;
    auto o = small_options(dir);
    o.segment_bytes = 2048;
    auto b = open_wal(o);
    ASSERT_TRUE(b);
    const uint64_t n = 600;
    std::thread producer([&] {
        std::atomic<uint64_t> done{0};
        for (uint64_t i = 0; i < n; ++i) {
            (*b)->append(0, make_message(i, 20 + i % 200), [&](result<uint64_t> r) {
                EXPECT_TRUE(r);
                ++done;
            });
            if (i % 50 == 0) std::this_thread::sleep_for(1ms);
        }
        while (done.load() < n)
            std::this_thread::sleep_for(1ms);
    });
    auto r = (*b)->open_reader(0, 0);
    ASSERT_TRUE(r);
    std::vector<record> out;
    while (out.size() < n) {
        auto got = (*r)->poll(out, 13, 5000ms);
        ASSERT_TRUE(got) << got.error().message();
        ASSERT_GT(*got, 0u) << "reader starved at " << out.size();
    }
    producer.join();
    for (uint64_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i].offset, i);
        ASSERT_EQ(out[i].msg, make_message(i, 20 + i % 200));
    }
}

TEST(wal, batch_async_syncs_on_the_window_timer) {
    temp_dir dir;
    auto o = small_options(dir);
    o.mode = durability::batch_async;
    o.group_commit_max_delay = 20ms;
    auto fs = std::make_shared<fault_injection_fs>();
    auto b = open_wal(o, fs);
    ASSERT_TRUE(b);
    const uint64_t before = fs->syncs();
    for (uint64_t i = 0; i < 5; ++i)
        ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    // Acknowledged after write(2); the timer syncs within about one window of the last
    // write, without stop(). Wait well past that window.
    std::this_thread::sleep_for(300ms);
    EXPECT_GT(fs->syncs(), before);
    // That sync covers everything acknowledged: a power loss now loses nothing.
    fs->crash();
    (*b)->stop();
    fs->drop_unsynced_data();
    b->reset();
    auto again = open_wal(o);
    ASSERT_TRUE(again);
    EXPECT_EQ(read_all(**again, 0).size(), 5u);
}

TEST(wal, cursors_survive_reopen) {
    temp_dir dir;
    auto o = small_options(dir);
    o.partitions = 2;
    {
        auto b = open_wal(o);
        ASSERT_TRUE(b);
        for (uint64_t i = 0; i < 5; ++i)
            ASSERT_TRUE(append_wait(**b, 1, make_message(i)));
        EXPECT_TRUE((*b)->commit_cursor("pipeline", 1, 3));
        EXPECT_TRUE((*b)->commit_cursor("archiver", 1, 5));
        EXPECT_FALSE((*b)->commit_cursor("pipeline", 1, 6));  // beyond the end
        EXPECT_FALSE((*b)->commit_cursor("pipeline", 2, 0));  // no such partition
        EXPECT_FALSE((*b)->commit_cursor("", 1, 0));
    }
    auto b = open_wal(o);
    ASSERT_TRUE(b);
    auto c = (*b)->cursor("pipeline", 1);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, std::optional<uint64_t>(3));
    EXPECT_EQ(*(*b)->cursor("archiver", 1), std::optional<uint64_t>(5));
    EXPECT_EQ(*(*b)->cursor("pipeline", 0), std::nullopt);
}

TEST(wal, segments_deleted_only_behind_all_cursors) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    const std::string pdir = partition_dir(dir.wal(), 0);
    for (uint64_t i = 0; i < 200; ++i)
        ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    const size_t before = count_segments(pdir);
    ASSERT_GE(before, 5u);
    // One consumer at 0, then one far ahead: nothing may be deleted.
    ASSERT_TRUE((*b)->commit_cursor("slow", 0, 0));
    ASSERT_TRUE((*b)->commit_cursor("fast", 0, 200));
    EXPECT_EQ(count_segments(pdir), before);
    EXPECT_EQ((*b)->get_stats(0).oldest_offset, 0u);
    // The slow one moves into the middle: only segments entirely below it go.
    ASSERT_TRUE((*b)->commit_cursor("slow", 0, 100));
    const size_t mid = count_segments(pdir);
    EXPECT_LT(mid, before);
    EXPECT_GT(mid, 1u);
    const uint64_t oldest = (*b)->get_stats(0).oldest_offset;
    EXPECT_LE(oldest, 100u);
    EXPECT_GT(oldest, 0u);
    // Everything from the oldest retained offset is still readable, older is gone.
    auto recs = read_all(**b, 0, oldest);
    ASSERT_EQ(recs.size(), 200 - oldest);
    EXPECT_EQ(recs.front().msg, make_message(oldest));
    auto gone = (*b)->open_reader(0, 0);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error(), make_error_code(errc::not_found));
    // Both at the end: all but the active segment go.
    ASSERT_TRUE((*b)->commit_cursor("slow", 0, 200));
    EXPECT_EQ(count_segments(pdir), 1u);
    // Reopen keeps the state consistent.
    b->reset();
    auto again = open_wal(small_options(dir));
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)->get_stats(0).durable_end, 200u);
    EXPECT_EQ(*append_wait(**again, 0, make_message(200)), 200u);
}

TEST(wal, reader_keeps_working_while_its_segment_is_deleted) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    for (uint64_t i = 0; i < 100; ++i)
        ASSERT_TRUE(append_wait(**b, 0, make_message(i)));
    auto r = (*b)->open_reader(0, 0);
    ASSERT_TRUE(r);
    std::vector<record> out;
    ASSERT_TRUE((*r)->poll(out, 3, 0ms));
    ASSERT_TRUE((*b)->commit_cursor("c", 0, 100));
    out.clear();
    auto got = (*r)->poll(out, 1000, 0ms);
    // The open segment file stays readable; the next one is gone: not_found, never wrong data.
    if (got) {
        for (const auto& rec : out)
            EXPECT_EQ(rec.msg, make_message(rec.offset));
    } else {
        EXPECT_EQ(got.error(), make_error_code(errc::not_found));
    }
}

TEST(wal, quota_fails_fast_and_clears_when_cursors_advance) {
    temp_dir dir;
    auto o = small_options(dir);
    o.quota_bytes = 16 * 1024;
    auto b = open_wal(o);
    ASSERT_TRUE(b);
    uint64_t stored = 0;
    std::error_code last;
    for (int i = 0; i < 1000 && !last; ++i) {
        auto off = append_wait(**b, 0, make_message(stored));
        if (off)
            ++stored;
        else
            last = off.error();
    }
    EXPECT_EQ(last, make_error_code(errc::quota_exceeded));
    EXPECT_TRUE((*b)->over_quota());
    EXPECT_GE((*b)->get_stats(0).bytes_on_disk, o.quota_bytes);
    EXPECT_GE((*b)->get_stats(0).bytes_on_disk, quota_hard_limit(o) - o.segment_bytes);
    EXPECT_LT((*b)->get_stats(0).bytes_on_disk, quota_hard_limit(o) + 2 * o.segment_bytes);
    auto again = append_wait(**b, 0, make_message(stored));
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), make_error_code(errc::quota_exceeded));
    // Nothing acknowledged was dropped.
    auto recs = read_all(**b, 0);
    ASSERT_EQ(recs.size(), stored);
    // The consumer catches up: segments go, the quota clears by itself.
    ASSERT_TRUE((*b)->commit_cursor("pipeline", 0, stored));
    EXPECT_FALSE((*b)->over_quota());
    auto off = append_wait(**b, 0, make_message(stored));
    ASSERT_TRUE(off);
    EXPECT_EQ(*off, stored);
}

TEST(wal, group_commit_shares_fsyncs) {
    temp_dir dir;
    auto fs = std::make_shared<fault_injection_fs>();
    auto o = small_options(dir);
    o.segment_bytes = 64 << 20;
    o.group_commit_max_delay = 5ms;
    auto b = open_wal(o, fs);
    ASSERT_TRUE(b);
    const uint64_t syncs_before = fs->syncs();
    const int n = 2000;
    std::atomic<int> ok{0};
    std::atomic<int> done{0};
    for (int i = 0; i < n; ++i) {
        (*b)->append(0, make_message(static_cast<uint64_t>(i)), [&](result<uint64_t> r) {
            ok += r.has_value();
            ++done;
        });
    }
    (*b)->stop();
    EXPECT_EQ(done.load(), n);
    EXPECT_EQ(ok.load(), n);
    const uint64_t syncs = fs->syncs() - syncs_before;
    EXPECT_GE(syncs, 1u);
    EXPECT_LE(syncs, static_cast<uint64_t>(n / 20)) << "each fsync should cover many appends";
    EXPECT_EQ((*b)->get_stats(0).fsyncs - 1, syncs);  // minus the segment header's sync at creation
}

TEST(wal, concurrent_appenders_get_unique_dense_offsets) {
    temp_dir dir;
    auto o = small_options(dir);
    o.partitions = 2;
    o.segment_bytes = 64 * 1024;
    auto b = open_wal(o);
    ASSERT_TRUE(b);
    const int threads = 8;
    const int per_thread = 300;
    std::mutex mu;
    std::vector<std::map<uint64_t, message>> acked(2);
    std::atomic<int> done{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                message m = make_message(static_cast<uint64_t>(t * per_thread + i));
                m.client_id = "thread-" + std::to_string(t);
                uint32_t part = static_cast<uint32_t>(i % 2);
                (*b)->append(part, m, [&, m, part](result<uint64_t> r) {
                    ASSERT_TRUE(r);
                    std::lock_guard lock(mu);
                    EXPECT_TRUE(acked[part].emplace(*r, m).second) << "offset assigned twice";
                    ++done;
                });
            }
        });
    }
    for (auto& t : ts)
        t.join();
    (*b)->stop();
    ASSERT_EQ(done.load(), threads * per_thread);
    for (uint32_t part = 0; part < 2; ++part) {
        auto recs = read_all(**b, part);
        ASSERT_EQ(recs.size(), acked[part].size());
        for (const auto& rec : recs)
            EXPECT_EQ(rec.msg, acked[part].at(rec.offset));
        // Per appender thread, order of appends is preserved in offsets.
        std::map<std::string, uint64_t> last_seq;
        for (const auto& rec : recs) {
            uint64_t seq = std::stoull(rec.msg.payload.substr(0, rec.msg.payload.find_first_not_of("0123456789")));
            auto it = last_seq.find(rec.msg.client_id);
            if (it != last_seq.end()) {
                EXPECT_GT(seq, it->second);
            }
            last_seq[rec.msg.client_id] = seq;
        }
    }
}

TEST(wal, stop_completes_pending_and_rejects_later_appends) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    std::atomic<int> ok{0};
    for (int i = 0; i < 100; ++i)
        (*b)->append(0, make_message(static_cast<uint64_t>(i)), [&](result<uint64_t> r) { ok += r.has_value(); });
    (*b)->stop();
    EXPECT_EQ(ok.load(), 100);
    auto late = append_wait(**b, 0, make_message(100));
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error(), make_error_code(errc::closed));
    auto r = (*b)->open_reader(0, 100);
    ASSERT_TRUE(r);
    std::vector<record> out;
    auto polled = (*r)->poll(out, 10, 1000ms);
    ASSERT_FALSE(polled);
    EXPECT_EQ(polled.error(), make_error_code(errc::closed));
    (*b)->stop();  // idempotent
}

TEST(wal, relaxed_modes_store_everything_on_clean_stop) {
    for (durability mode : {durability::batch_async, durability::none}) {
        temp_dir dir;
        auto o = small_options(dir);
        o.mode = mode;
        auto fs = std::make_shared<fault_injection_fs>();
        {
            auto b = open_wal(o, fs);
            ASSERT_TRUE(b);
            std::atomic<int> ok{0};
            for (int i = 0; i < 300; ++i)
                (*b)->append(0, make_message(static_cast<uint64_t>(i)),
                             [&](result<uint64_t> r) { ok += r.has_value(); });
            (*b)->stop();
            EXPECT_EQ(ok.load(), 300);
            EXPECT_LT((*b)->get_stats(0).fsyncs, 300u);
        }
        auto b = open_wal(o);
        ASSERT_TRUE(b);
        auto recs = read_all(**b, 0);
        ASSERT_EQ(recs.size(), 300u);
        for (uint64_t i = 0; i < 300; ++i)
            EXPECT_EQ(recs[i].msg, make_message(i));
    }
}

TEST(wal, retention_deletes_old_segments_without_cursors) {
    temp_dir dir;
    auto o = small_options(dir);
    o.retention = std::chrono::seconds(3600);
    auto b = open_wal(o);
    ASSERT_TRUE(b);
    for (uint64_t i = 0; i < 100; ++i) {
        message m = make_message(i);
        m.receive_time_ms = i < 50 ? 1000
                                   : std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count();
        ASSERT_TRUE(append_wait(**b, 0, m));
    }
    // The writer collects about once a second when retention is set.
    for (int i = 0; i < 50 && (*b)->get_stats(0).oldest_offset == 0; ++i)
        std::this_thread::sleep_for(100ms);
    const uint64_t oldest = (*b)->get_stats(0).oldest_offset;
    EXPECT_GT(oldest, 0u);
    EXPECT_LE(oldest, 50u);
}

TEST(wal, oversized_message_fails_without_breaking_the_partition) {
    temp_dir dir;
    auto b = open_wal(small_options(dir));
    ASSERT_TRUE(b);
    message big = make_message(0);
    big.topic.assign(70000, 't');
    auto r = append_wait(**b, 0, big);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::invalid_argument));
    auto off = append_wait(**b, 0, make_message(0));
    ASSERT_TRUE(off);
    EXPECT_EQ(*off, 0u);
}

TEST(wal, rejects_bad_options) {
    temp_dir dir;
    wal_options o;
    EXPECT_FALSE(open_wal(o));  // no dir
    o.dir = dir.wal();
    o.partitions = 0;
    EXPECT_FALSE(open_wal(o));
}

}  // namespace
}  // namespace sluice::bus
