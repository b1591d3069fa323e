// SPDX-License-Identifier: Apache-2.0
//
// What the store's packed layout buys, measured side by side in one run against a
// private PostgreSQL (tests/support/pg_instance.h, fsync on): readings/s of
// telemetry_store::write_batch (packed rows with rollup aggregates + offsets, one transaction)
// vs raw binary COPY of the same readings into a narrow table with and without a
// (device_id, metric_id, time) btree; bytes per reading on disk; and the time of a
// one-hour query for one device and metric. Numbers and discussion: docs/storage.md.
//
// Arg: readings per series per batch (a batch is always 100,000 readings at 1 Hz, so
// Arg 1 = 100,000 series each sending one reading, Arg 60 = 1,667 series a minute each).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include <benchmark/benchmark.h>

#include "base/log.h"
#include "store/copy_format.h"
#include "store/pg.h"
#include "store/store.h"
#include "tests/support/pg_instance.h"

namespace sluice::store {
namespace {

constexpr int k_batch = 100'000;
constexpr int k_metrics = 10;
constexpr int64_t k_t0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

test::pg_instance* g_pg = nullptr;

std::string fresh_db(const char* name) {
    auto db = g_pg->create_database(name);
    SLUICE_CHECK(db.has_value(), "create database failed");
    return *db;
}

double scalar_double(const std::string& url, const std::string& sql) {
    auto r = test::pg_instance::scalar(url, sql);
    SLUICE_CHECK(r.has_value(), "query failed: %s", sql.c_str());
    return std::stod(*r);
}

// Sensor-like readings: 1 Hz with millisecond jitter, a random walk quantized to 0.01.
class generator {
public:
    explicit generator(int per_series, int device_offset = 0)
        : per_series_(per_series),
          series_(k_batch / per_series),
          device_offset_(device_offset),
          level_(static_cast<size_t>(series_), 20.0) {}

    // Batch i covers seconds [i * per_series, (i + 1) * per_series).
    std::vector<row> batch(int i) {
        std::vector<row> rows;
        rows.reserve(static_cast<size_t>(series_ * per_series_));
        for (int s = 0; s < series_; ++s) {
            for (int k = 0; k < per_series_; ++k) {
                double& v = level_[static_cast<size_t>(s)];
                v = std::round((v + step_(rng_)) * 100.0) / 100.0;
                const int64_t sec = static_cast<int64_t>(i) * per_series_ + k;
                rows.push_back({k_t0 + sec * 1'000'000 + jitter_(rng_) * 1000, device_offset_ + s / k_metrics + 1,
                                s % k_metrics + 1, v, 0});
            }
        }
        return rows;
    }

private:
    int per_series_;
    int series_;
    int device_offset_;
    std::vector<double> level_;
    std::mt19937_64 rng_{1};
    std::normal_distribution<double> step_{0.0, 0.05};
    std::uniform_int_distribution<int64_t> jitter_{0, 20};
};

void narrow_copy(pg::connection& conn, const std::vector<row>& rows) {
    SLUICE_CHECK(conn.exec("BEGIN").has_value(), "begin");
    SLUICE_CHECK(conn.begin_copy("COPY narrow FROM STDIN (FORMAT binary)").has_value(), "copy");
    copy_encoder enc;
    enc.header();
    for (const row& r : rows) {
        enc.begin_tuple(5);
        enc.timestamptz(r.time_us);
        enc.int4(r.device_id);
        enc.int4(r.metric_id);
        enc.float8(r.value);
        enc.int2(r.flags);
        if (enc.size() > (1 << 20)) SLUICE_CHECK(conn.put(enc).has_value(), "put");
    }
    enc.trailer();
    SLUICE_CHECK(conn.put(enc).has_value(), "put");
    SLUICE_CHECK(conn.end_copy().has_value(), "end copy");
    SLUICE_CHECK(conn.exec("COMMIT").has_value(), "commit");
}

void narrow(benchmark::State& state, bool indexed) {
    const std::string url = fresh_db(indexed ? "narrow_idx" : "narrow");
    pg::connection conn(url, std::chrono::seconds(10), "bench");
    SLUICE_CHECK(conn.ensure().has_value(), "connect");
    SLUICE_CHECK(conn.exec("CREATE TABLE narrow (time timestamptz NOT NULL, device_id int4 NOT NULL, "
                           "metric_id int4 NOT NULL, value float8 NOT NULL, flags int2 NOT NULL)")
                     .has_value(),
                 "create");
    if (indexed) SLUICE_CHECK(conn.exec("CREATE INDEX ON narrow (device_id, metric_id, time)").has_value(), "index");
    generator gen(static_cast<int>(state.range(0)));
    int i = 0;
    int64_t readings = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto rows = gen.batch(i++);
        state.ResumeTiming();
        narrow_copy(conn, rows);
        readings += static_cast<int64_t>(rows.size());
    }
    state.SetItemsProcessed(readings);
    state.counters["B/reading"] =
        scalar_double(url, "SELECT pg_total_relation_size('narrow')") / static_cast<double>(readings);
}

void bm_narrow_copy_indexed(benchmark::State& state) {
    narrow(state, true);
}
void bm_narrow_copy_no_index(benchmark::State& state) {
    narrow(state, false);
}

void bm_write_batch(benchmark::State& state) {
    const std::string url = fresh_db("packed");
    store_options o;
    o.telemetry_url = url;
    o.parallel_connections = 1;
    auto store = open_postgres(o);
    SLUICE_CHECK(store.has_value() && (*store)->migrate().has_value(), "open");
    generator gen(static_cast<int>(state.range(0)));
    int i = 0;
    int64_t readings = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto rows = gen.batch(i);
        std::vector<offset_update> off = {{"bench", 0, ++i}};
        state.ResumeTiming();
        auto r = (*store)->write_batch(rows, {}, off);
        SLUICE_CHECK(r.has_value(), "write_batch: %s", r.error().message().c_str());
        readings += static_cast<int64_t>(rows.size());
    }
    state.SetItemsProcessed(readings);
    const double n = static_cast<double>(readings);
    const char* size_sql =
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'sluice_telemetry.telemetry_packed'::regclass";
    state.counters["B/reading"] = scalar_double(url, size_sql) / n;
    // Steady state: maintain() merges the fragments of closed windows; VACUUM FULL
    // stands for the free space that later inserts reuse.
    auto m = (*store)->maintain(std::chrono::system_clock::time_point(std::chrono::microseconds(k_t0)) +
                                std::chrono::hours(24 * 30));
    SLUICE_CHECK(m.has_value(), "maintain");
    SLUICE_CHECK(test::pg_instance::query(url, "VACUUM FULL sluice_telemetry.telemetry_packed").has_value(), "vacuum");
    state.counters["compacted_B/reading"] = scalar_double(url, size_sql) / n;
}

// Two pipeline threads, each with its own connection and partition, write at once.
void bm_write_batch_parallel(benchmark::State& state) {
    const std::string url = fresh_db("packed_par");
    store_options o;
    o.telemetry_url = url;
    o.parallel_connections = 2;
    auto store = open_postgres(o);
    SLUICE_CHECK(store.has_value() && (*store)->migrate().has_value(), "open");
    const int per_series = static_cast<int>(state.range(0));
    generator gen_a(per_series, 0), gen_b(per_series, 1'000'000);
    int i = 0;
    int64_t readings = 0;
    for (auto _ : state) {
        auto a = gen_a.batch(i);
        auto b = gen_b.batch(i);
        ++i;
        const auto start = std::chrono::steady_clock::now();
        std::thread tb([&] {
            std::vector<offset_update> off = {{"bench", 1, i}};
            SLUICE_CHECK((*store)->write_batch(b, {}, off).has_value(), "write_batch");
        });
        std::vector<offset_update> off = {{"bench", 0, i}};
        SLUICE_CHECK((*store)->write_batch(a, {}, off).has_value(), "write_batch");
        tb.join();
        state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        readings += static_cast<int64_t>(a.size() + b.size());
    }
    state.SetItemsProcessed(readings);
}

// One hour of one device and metric, out of 2 hours x 166 series (17 devices x 10 metrics) at 1 Hz.
void query_bench(benchmark::State& state, bool packed) {
    const std::string url = fresh_db(packed ? "q_packed" : "q_narrow");
    generator gen(600);  // 166 series, 10 minutes per batch
    std::string sql;
    if (packed) {
        store_options o;
        o.telemetry_url = url;
        auto store = open_postgres(o);
        SLUICE_CHECK(store.has_value() && (*store)->migrate().has_value(), "open");
        for (int i = 0; i < 12; ++i)
            SLUICE_CHECK((*store)->write_batch(gen.batch(i), {}, {}).has_value(), "write");
        sql =
            "SELECT count(*), avg(value) FROM sluice_telemetry.telemetry_range(7, 3, "
            "'2026-01-01 00:30:00+00', '2026-01-01 01:30:00+00')";
    } else {
        pg::connection conn(url, std::chrono::seconds(10), "bench");
        SLUICE_CHECK(conn.ensure().has_value(), "connect");
        SLUICE_CHECK(conn.exec("CREATE TABLE narrow (time timestamptz NOT NULL, device_id int4 NOT NULL, "
                               "metric_id int4 NOT NULL, value float8 NOT NULL, flags int2 NOT NULL); "
                               "CREATE INDEX ON narrow (device_id, metric_id, time)")
                         .has_value(),
                     "create");
        for (int i = 0; i < 12; ++i)
            narrow_copy(conn, gen.batch(i));
        sql =
            "SELECT count(*), avg(value) FROM narrow WHERE device_id = 7 AND metric_id = 3 "
            "AND time >= '2026-01-01 00:30:00+00' AND time < '2026-01-01 01:30:00+00'";
    }
    SLUICE_CHECK(test::pg_instance::query(url, "VACUUM ANALYZE").has_value(), "analyze");
    pg::connection conn(url, std::chrono::seconds(10), "bench");
    SLUICE_CHECK(conn.ensure().has_value(), "connect");
    int64_t rows = 0;
    for (auto _ : state) {
        auto q = conn.query(sql.c_str());
        SLUICE_CHECK(q.has_value(), "query");
        rows = std::stoll(std::string(q->get(0, 0)));
        benchmark::DoNotOptimize(rows);
    }
    state.counters["readings"] = static_cast<double>(rows);
}

void bm_query_hour_packed(benchmark::State& state) {
    query_bench(state, true);
}
void bm_query_hour_narrow_indexed(benchmark::State& state) {
    query_bench(state, false);
}

BENCHMARK(bm_narrow_copy_indexed)->Arg(10)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(30);
BENCHMARK(bm_narrow_copy_no_index)->Arg(10)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(30);
BENCHMARK(bm_write_batch)->Arg(1)->Arg(10)->Arg(60)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(30);
BENCHMARK(bm_write_batch_parallel)->Arg(10)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(15);
BENCHMARK(bm_query_hour_packed)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_query_hour_narrow_indexed)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace sluice::store

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    sluice::log::set_level(std::getenv("SLUICE_BENCH_DEBUG") != nullptr ? sluice::log::level::debug
                                                                        : sluice::log::level::warn);
    sluice::test::pg_instance_options po;
    po.shared_buffers = "512MB";
    auto pg = sluice::test::pg_instance::start(po);
    if (!pg) {
        std::fprintf(stderr, "cannot start PostgreSQL: %s\n", pg.error().message().c_str());
        return 1;
    }
    sluice::store::g_pg = pg->get();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
