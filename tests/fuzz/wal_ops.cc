// SPDX-License-Identifier: Apache-2.0
//
// Model-based fuzz target for the WAL (in the spirit of Redpanda's storage/opfuzz): the
// input is a program of operations — appends (waited for, or left in flight), cursor
// commits, readers from arbitrary offsets, clean reopens and simulated power losses
// (fault_injection_fs: drop everything not synced). After every step the log must
// agree with a model: every acknowledged record is readable with its exact content at
// its offset (unless deleted behind all cursors), offsets are dense, nothing crashes.
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "bus/fault_injection_fs.h"
#include "bus/wal/wal.h"

namespace {

using namespace sluice::bus;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "wal_ops invariant failed: %s\n", what);
        std::abort();
    }
}

const std::string& work_dir() {
    static const std::string dir = [] {
        std::filesystem::path root = std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                               : std::filesystem::temp_directory_path();
        std::string tmpl = (root / "sluice-fuzz-walops-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
        sluice::log::set_level(sluice::log::level::off);
        return tmpl;
    }();
    return dir;
}

struct input {
    const uint8_t* p;
    size_t n;
    bool empty() const { return n == 0; }
    uint8_t byte() {
        if (n == 0) return 0;
        --n;
        return *p++;
    }
};

constexpr uint32_t k_partitions = 2;

struct harness {
    wal_options opts;
    std::shared_ptr<fault_injection_fs> fs;
    std::unique_ptr<bus> wal;
    std::mutex mu;
    std::map<uint64_t, message> acked[k_partitions];  // guarded by mu
    uint64_t counter = 0;

    void open() {
        fs = std::make_shared<fault_injection_fs>();
        auto b = open_wal(opts, fs);
        check(b.has_value(), "open_wal after a crash or restart");
        wal = std::move(*b);
    }

    message next_message(uint8_t size) {
        message m;
        m.receive_time_ms = static_cast<int64_t>(++counter);
        m.client_id = "c" + std::to_string(counter % 5);
        m.topic = "t/" + std::to_string(counter);
        m.payload.assign(size, static_cast<char>('a' + counter % 26));
        m.qos = static_cast<uint8_t>(counter % 3);
        return m;
    }

    void append(uint32_t part, message m, std::atomic<int>* pending) {
        if (pending) ++*pending;
        wal->append(part, m, [this, part, m, pending](sluice::result<uint64_t> r) {
            if (r) {
                std::lock_guard lock(mu);
                check(acked[part].emplace(*r, m).second, "offset acknowledged twice");
            } else {
                check(r.error() == make_error_code(errc::quota_exceeded) ||
                          r.error() == make_error_code(errc::io_error) || r.error() == make_error_code(errc::closed),
                      "append error kind");
            }
            if (pending) --*pending;
        });
    }

    // Every acknowledged record at or above the oldest retained offset reads back.
    void verify(uint32_t part, uint64_t from) {
        auto st = wal->get_stats(part);
        if (from < st.oldest_offset) from = st.oldest_offset;
        if (from > st.durable_end) from = st.durable_end;
        auto r = wal->open_reader(part, from);
        check(r.has_value(), "open_reader in range");
        std::vector<record> out;
        for (;;) {
            auto n = (*r)->poll(out, 64, std::chrono::milliseconds(0));
            check(n.has_value(), "poll in range");
            if (*n == 0) break;
        }
        check(out.size() == st.durable_end - from, "reader returns every record up to the end");
        std::lock_guard lock(mu);
        for (size_t i = 0; i < out.size(); ++i) {
            check(out[i].offset == from + i, "dense offsets");
            auto it = acked[part].find(out[i].offset);
            if (it != acked[part].end()) check(it->second == out[i].msg, "content of an acknowledged record");
        }
        for (auto it = acked[part].lower_bound(from); it != acked[part].end(); ++it)
            check(it->first < st.durable_end, "acknowledged offset below the durable end");
    }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)work_dir();
    std::atexit([] {
        std::error_code ec;
        std::filesystem::remove_all(work_dir(), ec);
    });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 512) return 0;  // keep each run short
    const std::string dir = work_dir() + "/wal";
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    harness h;
    h.opts.dir = dir;
    h.opts.partitions = k_partitions;
    h.opts.segment_bytes = 400;
    h.opts.quota_bytes = 6000;
    h.opts.group_commit_max_delay = std::chrono::microseconds(0);
    h.open();
    input in{data, size};
    while (!in.empty()) {
        const uint8_t op = in.byte();
        const uint32_t part = op & 1u;
        switch ((op >> 1) % 6) {
            case 0:
            case 1: {  // append and wait
                std::atomic<int> pending{0};
                h.append(part, h.next_message(in.byte()), &pending);
                while (pending.load() > 0)
                    std::this_thread::yield();
                break;
            }
            case 2: {  // a burst left in flight, then maybe a power loss right away
                std::atomic<int> pending{0};
                const int burst = 1 + in.byte() % 8;
                for (int i = 0; i < burst; ++i)
                    h.append(part, h.next_message(in.byte()), &pending);
                if (in.byte() & 1u) {
                    h.fs->crash();
                    h.wal->stop();
                    check(pending.load() == 0, "stop completes every pending append");
                    h.fs->drop_unsynced_data();
                    h.wal.reset();
                    h.open();
                } else {
                    while (pending.load() > 0)
                        std::this_thread::yield();
                }
                break;
            }
            case 3: {  // commit a cursor somewhere in [oldest, end]
                auto st = h.wal->get_stats(part);
                const uint64_t span = st.durable_end - st.oldest_offset;
                const uint64_t at = st.oldest_offset + (span == 0 ? 0 : in.byte() % (span + 1));
                auto r = h.wal->commit_cursor((in.byte() & 1u) ? "a" : "b", part, at);
                check(r.has_value(), "commit_cursor in range");
                auto c = h.wal->cursor((in.byte() & 1u) ? "a" : "b", part);
                check(c.has_value(), "cursor lookup");
                break;
            }
            case 4: {  // read from an arbitrary offset
                auto st = h.wal->get_stats(part);
                h.verify(part, st.oldest_offset + in.byte());
                break;
            }
            case 5: {  // clean restart
                h.wal.reset();
                h.open();
                break;
            }
        }
        check(h.wal->over_quota() ==
                  (h.wal->get_stats(0).bytes_on_disk + h.wal->get_stats(1).bytes_on_disk >= h.opts.quota_bytes),
              "over_quota matches bytes on disk");
    }
    for (uint32_t p = 0; p < k_partitions; ++p)
        h.verify(p, 0);
    h.wal->stop();
    return 0;
}
