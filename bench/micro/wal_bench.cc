// SPDX-License-Identifier: Apache-2.0
//
// WAL append throughput in fsync mode (every acknowledgement means "on disk") for
// 100-byte messages with 1, 8 and 64 concurrent appenders, each waiting for its
// acknowledgement before the next append (as a device waits for PUBACK), side by side
// with this disk's raw rate of one 100-byte write + fdatasync, in the same run.
// Group commit is what lets the WAL beat the raw rate: many appends share one fsync.
// Runs in $SLUICE_BENCH_DIR (default: the current directory, so it measures that disk).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "base/log.h"
#include "bus/wal/wal.h"

namespace {

using namespace sluice::bus;

std::string make_temp_dir() {
    const char* root = std::getenv("SLUICE_BENCH_DIR");
    std::string tmpl = std::string(root ? root : ".") + "/wal-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
}

message bench_message(uint64_t i) {
    message m;
    m.receive_time_ms = 1732212345000 + static_cast<int64_t>(i);
    m.client_id = "dev-1234";
    m.topic = "devices/dev-1234/telemetry";
    m.payload.assign(100, 'x');
    m.qos = 1;
    return m;
}

void BM_raw_fdatasync(benchmark::State& state) {
    const std::string dir = make_temp_dir();
    const std::string path = dir + "/raw";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        state.SkipWithError("open failed");
        return;
    }
    const std::string payload(100, 'x');
    for (auto _ : state) {
        if (::write(fd, payload.data(), payload.size()) != static_cast<ssize_t>(payload.size()) ||
            ::fdatasync(fd) != 0) {
            state.SkipWithError("write/fdatasync failed");
            break;
        }
    }
    ::close(fd);
    std::filesystem::remove_all(dir);
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_raw_fdatasync)->UseRealTime()->MinTime(2.0);

struct shared_wal {
    std::string dir;
    std::unique_ptr<bus> wal;
};
shared_wal* g_wal = nullptr;
std::atomic<uint64_t> g_fsyncs_before{0};

void BM_wal_append_fsync(benchmark::State& state) {
    if (state.thread_index() == 0) {
        sluice::log::set_level(sluice::log::level::warn);
        g_wal = new shared_wal;
        g_wal->dir = make_temp_dir();
        wal_options o;
        o.dir = g_wal->dir + "/wal";
        o.mode = durability::fsync;
        o.group_commit_max_delay = std::chrono::microseconds(static_cast<int64_t>(state.range(0)));
        auto b = open_wal(o);
        if (!b) std::abort();
        g_wal->wal = std::move(*b);
        g_fsyncs_before = g_wal->wal->get_stats(0).fsyncs;
    }
    uint64_t i = 0;
    for (auto _ : state) {
        std::promise<bool> done;
        auto f = done.get_future();
        g_wal->wal->append(0, bench_message(i++),
                           [&done](sluice::result<uint64_t> r) { done.set_value(r.has_value()); });
        if (!f.get()) {
            state.SkipWithError("append failed");
            break;
        }
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    if (state.thread_index() == 0) {
        auto st = g_wal->wal->get_stats(0);
        state.counters["appends_per_fsync"] = benchmark::Counter(
            static_cast<double>(st.appends) / static_cast<double>(std::max<uint64_t>(1, st.fsyncs - g_fsyncs_before)));
        g_wal->wal->stop();
        std::filesystem::remove_all(g_wal->dir);
        delete g_wal;
        g_wal = nullptr;
    }
}
// Argument: group_commit_max_delay in microseconds (0: no gathering delay; groups form
// only from appends that arrive during the previous fsync).
BENCHMARK(BM_wal_append_fsync)->Arg(0)->Arg(1000)->Threads(1)->Threads(8)->Threads(64)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
