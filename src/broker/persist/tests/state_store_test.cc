// SPDX-License-Identifier: Apache-2.0
//
// The state store's contracts, end to end on real files: state survives close/reopen and
// kill -9 (simulated by cutting the file system off mid-run), a torn journal tail is
// truncated, corruption in the middle is reported and stops replay, compaction keeps the
// state, flush()ed changes survive a simulated power loss (bus::fault_injection_fs drops
// every unsynced byte), the store heals after write failures, and concurrent writers lose
// nothing.
#include "broker/persist/state_store.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "broker/persist/format.h"
#include "broker/persist/records.h"
#include "bus/fault_injection_fs.h"
#include "bus/wal/crc32c.h"

namespace sluice::broker::persist {
namespace {

namespace fs = std::filesystem;
using state_map = std::map<std::pair<kind, std::string>, std::string>;

class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "sluice-persist-XXXXXX").string();
        SLUICE_CHECK(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
        path_ = tmpl + "/store";  // open() must create it
    }
    ~temp_dir() { fs::remove_all(fs::path(path_).parent_path()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

state_map dump(const state_store& s) {
    state_map m;
    s.load([&](kind k, std::string_view key, std::string_view value) {
        m.emplace(std::make_pair(k, std::string(key)), std::string(value));
    });
    return m;
}

std::unique_ptr<state_store> open_store(const std::string& dir, options opts = {}) {
    auto r = state_store::open(dir, std::move(opts));
    EXPECT_TRUE(r) << r.error().message();
    return r ? std::move(*r) : nullptr;
}

// The single journal file in `dir`.
std::string journal_path(const std::string& dir) {
    std::string found;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (format::parse_journal_file_name(e.path().filename().string())) {
            EXPECT_TRUE(found.empty()) << "two journals: " << found << " and " << e.path();
            found = e.path().string();
        }
    }
    EXPECT_FALSE(found.empty());
    return found;
}

std::string read_file(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_file(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `n` keys "key-<i>" = "value-<i>" with a flush after each (one journal group
// each), then cuts the file system off as kill -9 would: the journal keeps its records,
// no clean-close compaction happens.
void write_then_kill(const std::string& dir, int n) {
    auto ffs = std::make_shared<bus::fault_injection_fs>();
    options o;
    o.fs = ffs;
    auto s = open_store(dir, o);
    ASSERT_NE(s, nullptr);
    for (int i = 1; i <= n; ++i) {
        s->put(kind::session, "key-" + std::to_string(i), "value-" + std::to_string(i));
        ASSERT_TRUE(s->flush());
    }
    ffs->crash();
    s.reset();  // close() fails quietly against the dead file system
}

TEST(state_store, put_erase_reopen) {
    temp_dir d;
    state_map model;
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        EXPECT_TRUE(dump(*s).empty());
        for (int i = 0; i < 3; ++i) {
            session_record rec;
            rec.client_id = "client-" + std::to_string(i);
            rec.subscriptions.push_back({"a/#", 1, false, false, 0, 0});
            s->put(kind::session, rec.client_id, encode(rec));
            model[{kind::session, rec.client_id}] = encode(rec);
        }
        message_record retained;
        retained.topic = "status/x";
        retained.payload = "up";
        s->put(kind::retained, "status/x", encode(retained));
        s->put(kind::retained, "status/y", "old");
        s->put(kind::retained, "status/y", "new");  // overwrite
        model[{kind::retained, "status/x"}] = encode(retained);
        model[{kind::retained, "status/y"}] = "new";
        s->erase(kind::session, "client-1");
        model.erase({kind::session, "client-1"});
        s->erase(kind::session, "never-existed");
        for (uint64_t order = 1; order <= 3; ++order) {
            s->put(kind::session_message, session_message_key("client-0", order), "m0");
            s->put(kind::session_message, session_message_key("client-2", order), "m2");
            model[{kind::session_message, session_message_key("client-2", order)}] = "m2";
        }
        s->erase_prefix(kind::session_message, session_message_prefix("client-0"));
        // Same bytes under another kind are a different key.
        s->put(kind::retained, "client-0", "x");
        model[{kind::retained, "client-0"}] = "x";

        ASSERT_TRUE(s->flush());
        EXPECT_EQ(dump(*s), model);
        EXPECT_EQ(s->get_stats().live_keys, model.size());
        ASSERT_TRUE(s->close());
        ASSERT_TRUE(s->close());  // idempotent
        EXPECT_EQ(s->compact().error(), errc::closed);
    }
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s), model);
    auto st = s->get_stats();
    EXPECT_EQ(st.live_keys, model.size());
    // A clean close compacted: the journal holds only its header.
    EXPECT_EQ(st.journal_bytes, format::k_file_header_size);
    EXPECT_TRUE(fs::exists(d.path() + "/" + format::k_snapshot_name));
}

TEST(state_store, a_directory_is_open_once) {
    temp_dir d;
    auto first = open_store(d.path());
    ASSERT_NE(first, nullptr);
    auto second = state_store::open(d.path());
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), errc::locked);
    first.reset();
    EXPECT_NE(open_store(d.path()), nullptr);
}

TEST(state_store, flushed_state_survives_kill_without_close) {
    temp_dir d;
    write_then_kill(d.path(), 5);
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    auto m = dump(*s);
    ASSERT_EQ(m.size(), 5u);
    EXPECT_EQ((m[{kind::session, "key-3"}]), "value-3");
}

TEST(state_store, torn_tail_is_truncated) {
    temp_dir d;
    write_then_kill(d.path(), 3);
    const std::string j = journal_path(d.path());
    const std::string bytes = read_file(j);
    write_file(j, bytes.substr(0, bytes.size() - 5));  // tear the last record
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        auto m = dump(*s);
        EXPECT_EQ(m.size(), 2u);
        EXPECT_FALSE(m.count({kind::session, "key-3"}));
        EXPECT_EQ(s->get_stats().journal_bytes, bytes.size() - format::encoded_record_size("key-3", "value-3"));
        s->put(kind::session, "key-4", "value-4");
        ASSERT_TRUE(s->flush());
    }
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    auto m = dump(*s);
    EXPECT_EQ(m.size(), 3u);
    EXPECT_EQ((m[{kind::session, "key-4"}]), "value-4");
}

TEST(state_store, zero_filled_and_garbage_tails_are_truncated) {
    temp_dir d;
    write_then_kill(d.path(), 2);
    const std::string j = journal_path(d.path());
    const std::string bytes = read_file(j);
    write_file(j, bytes + std::string(8192, '\0'));
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(dump(*s).size(), 2u);
        EXPECT_EQ(s->get_stats().journal_bytes, bytes.size());
    }
    // Cleanly closed now: the journal is empty after the snapshot; tear its header-only
    // tail with garbage that cannot be a record.
    const std::string j2 = journal_path(d.path());
    write_file(j2, read_file(j2) + "\x01\x02\x03 not a record");
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s).size(), 2u);
}

TEST(state_store, corruption_in_the_middle_stops_replay_with_an_error) {
    temp_dir d;
    write_then_kill(d.path(), 3);
    const std::string j = journal_path(d.path());
    std::string bytes = read_file(j);
    const auto at = bytes.find("value-2");
    ASSERT_NE(at, std::string::npos);
    bytes[at] = 'V';
    write_file(j, bytes);

    for (int attempt = 0; attempt < 2; ++attempt) {  // refusing changes nothing on disk
        auto r = state_store::open(d.path());
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), errc::corruption);
        EXPECT_EQ(read_file(j), bytes);
    }

    options repair;
    repair.repair = true;
    {
        auto s = open_store(d.path(), repair);
        ASSERT_NE(s, nullptr);
        auto m = dump(*s);
        ASSERT_EQ(m.size(), 1u);  // replay stopped at the damaged record
        EXPECT_EQ((m[{kind::session, "key-1"}]), "value-1");
        EXPECT_EQ(read_file(j + ".corrupt"), bytes);
    }
    auto s = open_store(d.path());  // repaired: opens without the option
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s).size(), 1u);
}

TEST(state_store, damaged_snapshot_is_corruption) {
    temp_dir d;
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        s->put(kind::retained, "a", "retained value a");
        s->put(kind::retained, "b", "retained value b");
        ASSERT_TRUE(s->close());
    }
    const std::string snap = d.path() + "/" + format::k_snapshot_name;
    const std::string good = read_file(snap);

    std::string flipped = good;
    flipped[flipped.find("retained value b")] ^= 0x01;
    write_file(snap, flipped);
    EXPECT_EQ(state_store::open(d.path()).error(), errc::corruption);

    // Cut off before its end record: also corruption (a snapshot is synced before rename).
    write_file(snap, good.substr(0, good.size() - format::encoded_record_size("", "12345678")));
    EXPECT_EQ(state_store::open(d.path()).error(), errc::corruption);

    write_file(snap, good);
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s).size(), 2u);
}

TEST(state_store, recovery_checks_files_around_the_snapshot) {
    temp_dir d;
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        s->put(kind::session, "c", "v");
        ASSERT_TRUE(s->close());  // snapshot generation 1, journal generation 1
    }
    // Left over from an interrupted compaction: ignored and removed.
    write_file(d.path() + "/" + format::k_snapshot_temp_name, "half a snapshot");
    // A journal older than the snapshot: already in it, removed.
    write_file(d.path() + "/" + format::journal_file_name(0), "stale");
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(dump(*s).size(), 1u);
        EXPECT_FALSE(fs::exists(d.path() + "/" + format::k_snapshot_temp_name));
        EXPECT_FALSE(fs::exists(d.path() + "/" + format::journal_file_name(0)));
    }
    // A journal newer than the snapshot means the snapshot was lost.
    const std::string newer = d.path() + "/" + format::journal_file_name(99);
    write_file(newer, format::encode_file_header(format::file_type::journal, 99));
    EXPECT_EQ(state_store::open(d.path()).error(), errc::corruption);
    fs::remove(newer);

    // A journal header of a newer format version is refused, not misread.
    const std::string j = journal_path(d.path());
    std::string header = read_file(j).substr(0, format::k_file_header_size);
    header[4] = 2;
    const uint32_t crc = bus::wal::crc32c(header.data(), 16);
    for (int i = 0; i < 4; ++i)
        header[16 + static_cast<size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xFF);
    const std::string original = read_file(j);
    write_file(j, header);
    EXPECT_EQ(state_store::open(d.path()).error(), errc::unsupported_version);

    // A journal whose header never reached the disk is recreated.
    write_file(j, original.substr(0, 7));
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s).size(), 1u);
}

TEST(state_store, automatic_compaction_keeps_state_and_bounds_the_journal) {
    temp_dir d;
    options o;
    o.compact_min_bytes = 8192;
    o.compact_ratio = 2.0;
    state_map model;
    uint64_t written = 0;
    {
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        for (int round = 0; round < 200; ++round) {
            for (int k = 0; k < 10; ++k) {
                const std::string key = "client-" + std::to_string(k);
                const std::string value(100, static_cast<char>('a' + (round + k) % 26));
                s->put(kind::session, key, value);
                model[{kind::session, key}] = value;
                written += format::encoded_record_size(key, value);
            }
            if (round % 7 == 0) {
                s->erase(kind::session, "client-3");
                model.erase({kind::session, "client-3"});
            }
            ASSERT_TRUE(s->flush());
        }
        const auto st = s->get_stats();
        EXPECT_GT(st.compactions, 0u);
        EXPECT_LT(st.journal_bytes, written / 4);
        EXPECT_EQ(dump(*s), model);
    }
    auto s = open_store(d.path(), o);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s), model);
}

TEST(state_store, reopen_after_compaction_and_more_writes) {
    temp_dir d;
    auto ffs = std::make_shared<bus::fault_injection_fs>();
    options o;
    o.fs = ffs;
    state_map model;
    {
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        for (uint64_t i = 0; i < 20; ++i) {
            s->put(kind::session_message, session_message_key("c1", i), "q" + std::to_string(i));
            s->put(kind::session_message, session_message_key("c2", i), "q" + std::to_string(i));
            model[{kind::session_message, session_message_key("c1", i)}] = "q" + std::to_string(i);
        }
        s->put(kind::retained, "r", "1");
        ASSERT_TRUE(s->compact());
        EXPECT_EQ(s->get_stats().compactions, 1u);
        // After the snapshot: overwrite, erase, erase a whole session's messages.
        s->put(kind::retained, "r", "2");
        model[{kind::retained, "r"}] = "2";
        s->erase(kind::session_message, session_message_key("c1", 0));
        model.erase({kind::session_message, session_message_key("c1", 0)});
        s->erase_prefix(kind::session_message, session_message_prefix("c2"));
        ASSERT_TRUE(s->flush());
        ffs->crash();
    }
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s), model);
}

TEST(state_store, power_loss_keeps_exactly_the_flushed_state) {
    temp_dir d;
    auto ffs = std::make_shared<bus::fault_injection_fs>();
    options o;
    o.fs = ffs;
    o.sync_interval = std::chrono::hours(1);  // only flush() writes: the test is deterministic
    {
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        for (int i = 0; i < 50; ++i)
            s->put(kind::session, "durable-" + std::to_string(i), "v1");
        ASSERT_TRUE(s->flush());
        s->put(kind::session, "durable-0", "v2");  // not flushed: lost
        for (int i = 0; i < 50; ++i)
            s->put(kind::session, "lost-" + std::to_string(i), "v");
        ffs->crash();
    }  // the destructor's final write fails against the crashed fs
    ffs->drop_unsynced_data();
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    auto m = dump(*s);
    ASSERT_EQ(m.size(), 50u);
    for (const auto& [k, v] : m) {
        EXPECT_EQ(k.second.rfind("durable-", 0), 0u);
        EXPECT_EQ(v, "v1");
    }
}

TEST(state_store, power_loss_mid_stream_keeps_a_prefix) {
    temp_dir d;
    auto ffs = std::make_shared<bus::fault_injection_fs>();
    options o;
    o.fs = ffs;
    o.sync_interval = std::chrono::milliseconds(1);
    constexpr int n = 400;
    {
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        for (int i = 0; i < n; ++i) {
            s->put(kind::retained, "t/" + std::to_string(i), std::to_string(i));
            if (i == 99) {
                ASSERT_TRUE(s->flush());
            }
            if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        ffs->crash();
    }
    ffs->drop_unsynced_data();
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    const auto m = dump(*s);
    // Everything flushed is there, and what survived beyond it is a prefix of the order.
    const size_t survived = m.size();
    EXPECT_GE(survived, 100u);
    for (size_t i = 0; i < survived; ++i) {
        auto it = m.find({kind::retained, "t/" + std::to_string(i)});
        ASSERT_NE(it, m.end()) << "hole at " << i << " of " << survived;
        EXPECT_EQ(it->second, std::to_string(i));
    }
}

TEST(state_store, heals_after_write_and_compaction_failures) {
    temp_dir d;
    auto ffs = std::make_shared<bus::fault_injection_fs>();
    options o;
    o.fs = ffs;
    state_map model;
    auto put = [&](state_store& s, const std::string& key) {
        s.put(kind::session, key, "v-" + key);
        model[{kind::session, key}] = "v-" + key;
    };
    {
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        put(*s, "a");
        ASSERT_TRUE(s->flush());

        // Compaction fails before its rename: the old journal stays current.
        ffs->inject(bus::fault_injection_fs::op::rename, format::k_snapshot_temp_name, 1);
        put(*s, "b");
        EXPECT_EQ(s->compact().error(), errc::io_error);
        put(*s, "c");
        ASSERT_TRUE(s->flush());

        // A failed journal fsync: that flush reports it; the next group rewrites all
        // state into a new generation and succeeds.
        ffs->inject(bus::fault_injection_fs::op::sync, "journal-", 1);
        put(*s, "d");
        EXPECT_EQ(s->flush().error(), errc::io_error);
        EXPECT_EQ(s->last_error(), errc::io_error);
        put(*s, "e");
        ASSERT_TRUE(s->flush());
        EXPECT_EQ(s->get_stats().write_errors, 2u);

        // Compaction fails after its rename (the new journal cannot be created).
        ffs->inject(bus::fault_injection_fs::op::open, "journal-", 1);
        EXPECT_FALSE(s->compact());
        put(*s, "f");
        ASSERT_TRUE(s->flush());
        EXPECT_EQ(dump(*s), model);
        ffs->crash();
    }
    ffs->drop_unsynced_data();
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(dump(*s), model);
}

TEST(state_store, group_commit_shares_one_fsync) {
    temp_dir d;
    options o;
    o.sync_interval = std::chrono::hours(1);
    auto s = open_store(d.path(), o);
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 1000; ++i)
        s->put(kind::retained, "t/" + std::to_string(i), "payload");
    EXPECT_GT(s->get_stats().pending_bytes, 0u);
    ASSERT_TRUE(s->flush());
    EXPECT_EQ(s->get_stats().syncs, 1u);
    EXPECT_EQ(s->get_stats().pending_bytes, 0u);
    ASSERT_TRUE(s->flush());  // nothing new: no sync
    EXPECT_EQ(s->get_stats().syncs, 1u);
}

// Waits (bounded) until the writer has synced at least `n` groups.
bool wait_for_syncs(const state_store& s, uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (s.get_stats().syncs < n) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

TEST(state_store, writes_without_flush_after_the_interval_or_group_size) {
    temp_dir d;
    {
        options o;
        o.sync_interval = std::chrono::milliseconds(5);
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        s->put(kind::session, "k", "v");
        EXPECT_TRUE(wait_for_syncs(*s, 1));
    }
    {
        options o;
        o.sync_interval = std::chrono::hours(1);
        o.group_bytes = 4096;
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        for (int i = 0; i < 100; ++i)
            s->put(kind::session, "k" + std::to_string(i), std::string(100, 'x'));
        EXPECT_TRUE(wait_for_syncs(*s, 1));
    }
}

TEST(state_store, when_durable_calls_back_after_the_group_sync) {
    temp_dir d;
    auto ffs = std::make_shared<bus::fault_injection_fs>();
    options o;
    o.fs = ffs;
    o.sync_interval = std::chrono::milliseconds(20);
    auto s = open_store(d.path(), o);
    ASSERT_NE(s, nullptr);
    std::vector<int> order;  // only the writer thread touches it while callbacks run
    std::promise<std::error_code> first;
    std::promise<std::error_code> second;
    s->put(kind::session, "a", "1");
    s->when_durable([&](std::error_code ec) {
        order.push_back(1);
        first.set_value(ec);
    });
    s->put(kind::session, "b", "2");
    s->when_durable([&](std::error_code ec) {
        order.push_back(2);
        second.set_value(ec);
    });
    auto f1 = first.get_future();
    auto f2 = second.get_future();
    ASSERT_EQ(f2.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_FALSE(f1.get());
    EXPECT_FALSE(f2.get());
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_GE(s->get_stats().syncs, 1u);

    // Nothing queued: called back on the writer's next turn.
    std::promise<std::error_code> idle;
    s->when_durable([&](std::error_code ec) { idle.set_value(ec); });
    auto fi = idle.get_future();
    ASSERT_EQ(fi.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_FALSE(fi.get());

    // A failed group reports its error.
    ffs->inject(bus::fault_injection_fs::op::sync, "journal-", 1);
    std::promise<std::error_code> failed;
    s->put(kind::session, "c", "3");
    s->when_durable([&](std::error_code ec) { failed.set_value(ec); });
    auto ff = failed.get_future();
    ASSERT_EQ(ff.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(ff.get(), errc::io_error);
}

TEST(state_store, close_completes_pending_callbacks) {
    temp_dir d;
    options o;
    o.sync_interval = std::chrono::hours(1);
    auto s = open_store(d.path(), o);
    ASSERT_NE(s, nullptr);
    s->put(kind::retained, "t", "v");
    std::error_code got = make_error_code(errc::closed);
    bool called = false;
    s->when_durable([&](std::error_code ec) {
        called = true;
        got = ec;
    });
    EXPECT_FALSE(called);
    ASSERT_TRUE(s->close());  // joins the writer: its writes are visible here
    EXPECT_TRUE(called);
    EXPECT_FALSE(got);
}

TEST(state_store, concurrent_writers_lose_nothing) {
    temp_dir d;
    constexpr int threads = 4;
    constexpr int per_thread = 1000;
    {
        options o;
        o.compact_min_bytes = 16384;  // compactions run while writers write
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        std::atomic<bool> done{false};
        std::thread reader([&] {
            while (!done.load())
                (void)dump(*s).size();
        });
        std::vector<std::thread> writers;
        for (int t = 0; t < threads; ++t) {
            writers.emplace_back([&s, t] {
                for (int i = 0; i < per_thread; ++i) {
                    const std::string key = "w" + std::to_string(t) + "-" + std::to_string(i % 100);
                    s->put(kind::session, key, std::to_string(i));
                    if (i % 250 == 0) {
                        EXPECT_TRUE(s->flush());
                    }
                }
                s->erase(kind::session, "w" + std::to_string(t) + "-0");
                EXPECT_TRUE(s->flush());
            });
        }
        for (auto& w : writers)
            w.join();
        done = true;
        reader.join();
        ASSERT_TRUE(s->close());
    }
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    auto m = dump(*s);
    EXPECT_EQ(m.size(), static_cast<size_t>(threads * 99));
    for (int t = 0; t < threads; ++t) {
        EXPECT_FALSE(m.count({kind::session, "w" + std::to_string(t) + "-0"}));
        for (int k = 1; k < 100; ++k) {
            // The last write of key k by this thread was i = 900 + k.
            EXPECT_EQ((m[{kind::session, "w" + std::to_string(t) + "-" + std::to_string(k)}]), std::to_string(900 + k));
        }
    }
}

// Model-based (Redpanda storage/opfuzz style): random puts, erases, prefix erases,
// flushes, compactions, clean reopens and power losses against an in-memory model. After a
// power loss the store must hold the flushed state plus some prefix of the later changes.
TEST(state_store, random_operations_match_a_model) {
    struct change {
        int o;  // 0 put, 1 erase, 2 erase_prefix
        kind k;
        std::string key;
        std::string value;
    };
    auto apply = [](state_map& m, const change& c) {
        if (c.o == 0) {
            m[{c.k, c.key}] = c.value;
        } else if (c.o == 1) {
            m.erase({c.k, c.key});
        } else {
            for (auto it = m.begin(); it != m.end();) {
                it = (it->first.first == c.k && it->first.second.rfind(c.key, 0) == 0) ? m.erase(it) : std::next(it);
            }
        }
    };
    for (uint32_t seed = 1; seed <= 4; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        std::mt19937 rng(seed);
        temp_dir d;
        auto ffs = std::make_shared<bus::fault_injection_fs>();
        options o;
        o.fs = ffs;
        o.sync_interval = std::chrono::milliseconds(1);
        o.compact_min_bytes = 2048;
        o.compact_ratio = 1.5;
        auto s = open_store(d.path(), o);
        ASSERT_NE(s, nullptr);
        state_map durable;                // confirmed by flush()
        std::vector<change> unconfirmed;  // queued since
        int power_losses = 0;
        for (int step = 0; step < 300; ++step) {
            const uint32_t dice = rng() % 100;
            const kind k = static_cast<kind>(1 + rng() % 3);
            const std::string key = "k" + std::to_string(rng() % 12);
            if (dice < 55) {
                change c{0, k, key, std::string(rng() % 300, static_cast<char>('a' + rng() % 26))};
                s->put(c.k, c.key, c.value);
                unconfirmed.push_back(std::move(c));
            } else if (dice < 70) {
                s->erase(k, key);
                unconfirmed.push_back({1, k, key, {}});
            } else if (dice < 74) {
                s->erase_prefix(k, "k1");
                unconfirmed.push_back({2, k, "k1", {}});
            } else if (dice < 88) {
                ASSERT_TRUE(s->flush());
                for (const auto& c : unconfirmed)
                    apply(durable, c);
                unconfirmed.clear();
                ASSERT_EQ(dump(*s), durable);
            } else if (dice < 92) {
                ASSERT_TRUE(s->compact());
            } else if (dice < 96) {
                ASSERT_TRUE(s->close());
                for (const auto& c : unconfirmed)
                    apply(durable, c);
                unconfirmed.clear();
                s = open_store(d.path(), o);
                ASSERT_NE(s, nullptr);
                ASSERT_EQ(dump(*s), durable);
            } else {
                ffs->crash();
                s.reset();
                ffs->drop_unsynced_data();
                ffs = std::make_shared<bus::fault_injection_fs>();
                o.fs = ffs;
                s = open_store(d.path(), o);
                ASSERT_NE(s, nullptr);
                const state_map got = dump(*s);
                state_map candidate = durable;
                bool matched = got == candidate;
                for (size_t i = 0; i < unconfirmed.size() && !matched; ++i) {
                    apply(candidate, unconfirmed[i]);
                    matched = got == candidate;
                }
                ASSERT_TRUE(matched) << "recovered state is not the flushed state plus a prefix of "
                                     << unconfirmed.size() << " later changes";
                durable = got;
                unconfirmed.clear();
                ++power_losses;
            }
        }
        ASSERT_TRUE(s->flush());
        for (const auto& c : unconfirmed)
            apply(durable, c);
        EXPECT_EQ(dump(*s), durable);
        EXPECT_GT(s->get_stats().live_keys + static_cast<uint64_t>(power_losses), 0u);
    }
}

// A real kill -9: a child process writes a stream of changes, reporting over a pipe each
// index it has flush()ed; the parent SIGKILLs it mid-stream and reopens the directory.
TEST(state_store, real_kill_9_keeps_every_flushed_change) {
    temp_dir d;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(fds[0]);
        options o;
        o.sync_interval = std::chrono::milliseconds(2);
        auto r = state_store::open(d.path(), o);
        if (!r) ::_exit(2);
        auto& s = *r;
        for (uint32_t i = 0;; ++i) {
            s->put(kind::session_message, session_message_key("c", i), std::to_string(i));
            if (i % 10 == 9) {
                if (!s->flush()) ::_exit(3);
                if (::write(fds[1], &i, sizeof i) != sizeof i) ::_exit(4);
            }
        }
    }
    ::close(fds[1]);
    uint32_t last_flushed = 0;
    int reports = 0;
    while (reports < 100) {
        pollfd p{fds[0], POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 10000), 1) << "child stopped reporting";
        ASSERT_EQ(::read(fds[0], &last_flushed, sizeof last_flushed), static_cast<ssize_t>(sizeof last_flushed));
        ++reports;
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    ::close(fds[0]);

    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    const auto m = dump(*s);
    // Every flushed change, and beyond it a gap-free prefix of the stream.
    ASSERT_GT(m.size(), static_cast<size_t>(last_flushed));
    for (uint32_t i = 0; i < m.size(); ++i) {
        auto it = m.find({kind::session_message, session_message_key("c", i)});
        ASSERT_NE(it, m.end()) << "hole at " << i << " of " << m.size();
        EXPECT_EQ(it->second, std::to_string(i));
    }
}

TEST(state_store, large_values_round_trip) {
    temp_dir d;
    std::string big(3u << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 131);
    {
        auto s = open_store(d.path());
        ASSERT_NE(s, nullptr);
        s->put(kind::retained, "big", big);
        ASSERT_TRUE(s->flush());
    }
    auto s = open_store(d.path());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ((dump(*s)[{kind::retained, "big"}]), big);
}

}  // namespace
}  // namespace sluice::broker::persist
