// SPDX-License-Identifier: Apache-2.0
//
// Decode throughput of the three payload shapes a device sends, in readings per second
// (items/s): JSON single reading, JSON batch, and 140-byte compact binary payloads from
// the edge encoder. One decoder reused across iterations, as a pipeline worker does.
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pipeline/decoder.h"
#include "sluice_edge.h"

namespace {

using sluice::pipeline::decoded_payload;
using sluice::pipeline::payload_decoder;
using sluice::pipeline::payload_format;

void run(benchmark::State& state, const std::vector<std::string>& payloads) {
    payload_decoder dec;
    decoded_payload out;
    std::size_t i = 0, readings = 0, bytes = 0;
    for (auto _ : state) {
        const auto& p = payloads[i++ % payloads.size()];
        auto r = dec.decode(p, payload_format::auto_detect, 1'700'000'000'000, out);
        if (!r) state.SkipWithError(std::string(dec.reason()).c_str());
        readings += out.readings.size();
        bytes += p.size();
        benchmark::DoNotOptimize(out.readings.data());
    }
    state.SetItemsProcessed(static_cast<int64_t>(readings));
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void bm_json_single(benchmark::State& state) {
    std::vector<std::string> payloads;
    std::mt19937 rng(1);
    for (int i = 0; i < 256; ++i) {
        char buf[160];
        std::snprintf(buf, sizeof buf, R"({"ts": %lld, "temperature": %.1f, "humidity": %.1f})",
                      1732212345123LL + i * 100, 60 + (rng() % 300) / 10.0, 30 + (rng() % 400) / 10.0);
        payloads.emplace_back(buf);
    }
    run(state, payloads);
}
BENCHMARK(bm_json_single);

void bm_json_batch(benchmark::State& state) {
    std::vector<std::string> payloads;
    std::mt19937 rng(2);
    for (int i = 0; i < 64; ++i) {
        std::string p = R"({"seq": )" + std::to_string(i) + R"(, "readings": [)";
        for (int k = 0; k < 10; ++k) {
            char buf[200];
            std::snprintf(
                buf, sizeof buf,
                R"(%s{"ts": %lld, "temperature": %.2f, "humidity": %.2f, "pressure": %.2f, "vibration": %.3f})",
                k ? "," : "", 1732212345123LL + i * 1000 + k * 100, 20 + (rng() % 1000) / 100.0,
                40 + (rng() % 1000) / 100.0, 1013 + (rng() % 100) / 100.0, (rng() % 1000) / 1000.0);
            p += buf;
        }
        p += "]}";
        payloads.push_back(std::move(p));
    }
    run(state, payloads);
}
BENCHMARK(bm_json_batch);

void bm_binary_140(benchmark::State& state) {
    std::vector<std::string> payloads;
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0.0, 0.5);
    const double base[8] = {21.5, 45.0, 1013.25, 3.3, 230.0, 50.0, 0.0, 1200.0};
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    for (uint64_t t = 1732212345000; payloads.size() < 256; t += 100) {
        for (uint32_t m = 0; m < 8; ++m) {
            if (enc.add_rounded(m + 1, t, base[m] + noise(rng), 2) == sluice_edge::add_status::added_flush) {
                const auto p = enc.finish();
                payloads.emplace_back(reinterpret_cast<const char*>(p.data), p.size);
            }
        }
    }
    run(state, payloads);
}
BENCHMARK(bm_binary_140);

}  // namespace

BENCHMARK_MAIN();
