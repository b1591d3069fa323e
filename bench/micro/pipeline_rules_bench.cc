// SPDX-License-Identifier: Apache-2.0
//
// Per-message costs of the pipeline beyond decoding: topic rule matching (what the
// broker pays per PUBLISH in could_match(), and the pipeline in match()) over
// thousands of distinct topics, and the transformer (lookup, conversion, flags) per
// reading.
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pipeline/topic_rules.h"
#include "pipeline/transforms.h"

namespace {

using namespace sluice::pipeline;

std::vector<std::string> topics() {
    std::vector<std::string> t;
    for (int i = 0; i < 4096; ++i) {
        switch (i % 4) {
            case 0:
                t.push_back("devices/dev-" + std::to_string(i) + "/telemetry");
                break;
            case 1:
                t.push_back("factory/site" + std::to_string(i % 9) + "/line2/dev-" + std::to_string(i) + "/telemetry");
                break;
            case 2:
                t.push_back("devices/dev-" + std::to_string(i) + "/cmd/ack");
                break;
            default:
                t.push_back("home/room" + std::to_string(i) + "/light");
                break;
        }
    }
    return t;
}

rule_set rules() {
    rule_set set;
    std::string reason;
    (void)set.add("factory/{site}/{line}/{device}/telemetry", payload_format::json, reason);
    (void)set.add("devices/{device}/telemetry", payload_format::auto_detect, reason);
    return set;
}

void bm_rule_match(benchmark::State& state) {
    const auto t = topics();
    const auto set = rules();
    std::size_t i = 0;
    for (auto _ : state) {
        auto m = set.match(t[i++ & 4095]);
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_rule_match);

void bm_rule_could_match(benchmark::State& state) {
    const auto t = topics();
    const auto set = rules();
    std::size_t i = 0;
    for (auto _ : state)
        benchmark::DoNotOptimize(set.could_match(t[i++ & 4095]));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_rule_could_match);

void bm_transform(benchmark::State& state) {
    metric_dictionary dict;
    std::string reason;
    for (uint32_t id = 1; id <= 8; ++id) {
        metric_def def;
        def.id = id;
        def.name = "m" + std::to_string(id);
        def.unit = "degC";
        def.input_unit = "degF";
        def.valid_min = -40;
        def.valid_max = 125;
        def.warn_high = 90;
        (void)dict.add(def, reason);
    }
    transformer tf(dict);
    decoded_payload p;
    for (int k = 0; k < 25; ++k)
        p.readings.push_back({1000 + k, {}, static_cast<uint32_t>(k % 8 + 1), 70.0 + k % 5});
    std::vector<telemetry_row> rows;
    std::vector<rejected_reading> rejected;
    uint64_t seq = 0;
    for (auto _ : state) {
        rows.clear();
        p.seq = seq++;
        tf.apply(static_cast<uint32_t>(seq % 1000), "dev", p, 10'000, rows, rejected);
        benchmark::DoNotOptimize(rows.data());
    }
    state.SetItemsProcessed(state.iterations() * 25);
}
BENCHMARK(bm_transform);

}  // namespace

BENCHMARK_MAIN();
