// SPDX-License-Identifier: Apache-2.0
//
// Micro-benchmarks for the subscription index and the retained store: the cost of
// match() per PUBLISH against 10k and 100k subscriptions shaped like a fleet (mostly
// per-device literal filters, some '+' and '#' filters, shared ingest groups), plus
// subscribe/unsubscribe churn and a retained wildcard lookup. Run with
// --benchmark_repetitions=5 to get the median and MAD (STYLE.md §7).
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "broker/retained_store.h"
#include "broker/topic_index.h"

namespace {

using sluice::broker::delivery;
using sluice::broker::no_session;
using sluice::broker::retained_store;
using sluice::broker::session_key;
using sluice::broker::sub_options;
using sluice::broker::topic_index;

constexpr int k_sites = 20;
constexpr int k_lines = 10;

std::string device_prefix(size_t device) {
    const size_t site = device % k_sites;
    const size_t line = (device / k_sites) % k_lines;
    return "plant/" + std::to_string(site) + "/line/" + std::to_string(line) + "/dev" + std::to_string(device);
}

// n subscriptions, one session each: 70% literal per-device command topics, 15% per-device
// '+' filters, 10% '#' monitors of the first 1000 devices, 5% members of 4 shared
// ingest groups.
void populate(topic_index& idx, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const session_key s = i;
        const size_t kind = i % 20;
        const size_t device = i / 2;
        sub_options o{.qos = static_cast<uint8_t>(i % 3), .subscription_id = static_cast<uint32_t>(i % 7)};
        if (kind < 14) {
            (void)idx.subscribe(device_prefix(device) + "/cmd", s, o);
        } else if (kind < 17) {
            (void)idx.subscribe(device_prefix(device) + "/+/set", s, o);
        } else if (kind < 19) {
            (void)idx.subscribe(device_prefix(device % 1000) + "/#", s, o);
        } else {
            (void)idx.subscribe("$share/ingest" + std::to_string((i / 20) % 4) + "/plant/+/line/+/+/telemetry", s, o);
        }
    }
}

std::vector<std::string> sample_topics(size_t n, const char* suffix) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<size_t> dist(0, n / 2);
    std::vector<std::string> topics;
    for (int i = 0; i < 1024; ++i)
        topics.push_back(device_prefix(dist(rng)) + suffix);
    return topics;
}

void run_match(benchmark::State& state, const char* suffix) {
    const auto n = static_cast<size_t>(state.range(0));
    const size_t heap_before = mallinfo2().uordblks;
    topic_index idx;
    populate(idx, n);
    const size_t heap_bytes = mallinfo2().uordblks - heap_before;
    const auto topics = sample_topics(n, suffix);
    std::vector<delivery> out;
    size_t i = 0;
    size_t delivered = 0;
    for (auto _ : state) {
        idx.match(topics[i++ & 1023], no_session, out, [](session_key s) { return s % 5 != 0; });
        delivered += out.size();
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["deliveries/match"] =
        benchmark::Counter(static_cast<double>(delivered) / static_cast<double>(state.iterations()));
    state.counters["subscriptions"] = static_cast<double>(idx.subscription_count());
    state.counters["heap_bytes/subscription"] = static_cast<double>(heap_bytes) / static_cast<double>(n);
    state.counters["trie_nodes"] = static_cast<double>(idx.node_count());
}

// Device command topics: literal hits plus '#' monitors for some devices.
void bm_match_cmd(benchmark::State& state) {
    run_match(state, "/cmd");
}
// Telemetry: no plain subscriber, one delivery per shared ingest group.
void bm_match_telemetry(benchmark::State& state) {
    run_match(state, "/telemetry");
}
// A topic under no filter at all (only the trie descent).
void bm_match_miss(benchmark::State& state) {
    const auto n = static_cast<size_t>(state.range(0));
    topic_index idx;
    populate(idx, n);
    std::vector<delivery> out;
    for (auto _ : state) {
        idx.match("factory/unknown/topic/x", no_session, out);
        benchmark::DoNotOptimize(out.data());
    }
}

void bm_subscribe_unsubscribe(benchmark::State& state) {
    const auto n = static_cast<size_t>(state.range(0));
    topic_index idx;
    populate(idx, n);
    const std::string filter = device_prefix(n + 1) + "/+/set";
    for (auto _ : state) {
        benchmark::DoNotOptimize(idx.subscribe(filter, n + 1, {}));
        benchmark::DoNotOptimize(idx.unsubscribe(filter, n + 1));
    }
}

// Retained lookup for a new subscription "plant/3/line/+/+/status" over n topics.
void bm_retained_wildcard(benchmark::State& state) {
    const auto n = static_cast<size_t>(state.range(0));
    retained_store<std::shared_ptr<const int>> store;
    auto value = std::make_shared<const int>(1);
    for (size_t d = 0; d < n; ++d)
        store.set(device_prefix(d) + "/status", value);
    size_t visited = 0;
    for (auto _ : state) {
        store.match("plant/3/line/+/+/status", [&](std::string_view, const auto&) { ++visited; });
    }
    state.counters["matches"] =
        benchmark::Counter(static_cast<double>(visited) / static_cast<double>(state.iterations()));
}

double mad(const std::vector<double>& v) {
    std::vector<double> x(v);
    std::sort(x.begin(), x.end());
    const double median = x[x.size() / 2];
    for (double& e : x)
        e = std::abs(e - median);
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
}

}  // namespace

BENCHMARK(bm_match_cmd)->Arg(10000)->Arg(100000)->ComputeStatistics("mad", mad);
BENCHMARK(bm_match_telemetry)->Arg(10000)->Arg(100000)->ComputeStatistics("mad", mad);
BENCHMARK(bm_match_miss)->Arg(10000)->Arg(100000)->ComputeStatistics("mad", mad);
BENCHMARK(bm_subscribe_unsubscribe)->Arg(100000)->ComputeStatistics("mad", mad);
BENCHMARK(bm_retained_wildcard)->Arg(10000)->Arg(100000)->ComputeStatistics("mad", mad);

BENCHMARK_MAIN();
