// SPDX-License-Identifier: Apache-2.0
//
// Micro-benchmarks of the MQTT codec on the broker's hot path: a 100-byte QoS 1 PUBLISH
// (topic "devices/0042/telemetry", JSON payload) framed and decoded, encoded, and the fan-out
// header encoded without its payload. Run from a Release build; report ns/packet (the
// benchmark's time per iteration) with --benchmark_repetitions for median and MAD.
#include <string>

#include <benchmark/benchmark.h>

#include "mqtt/codec.h"

namespace {

using namespace sluice::mqtt;

publish sample_publish() {
    publish p;
    p.topic = "devices/0042/telemetry";
    p.qos = 1;
    p.packet_id = 4242;
    // Fill the payload so that the whole packet is exactly 100 bytes.
    const size_t overhead = 2 /*fixed header*/ + 2 + p.topic.size() + 2 /*packet id*/;
    p.payload = R"({"ts":1732212345123,"temperature":71.5,"humidity":40.2})";
    p.payload.resize(100 - overhead, ' ');
    return p;
}

std::string wire_of(const publish& p, version v) {
    std::string out;
    encode(p, v, out);
    return out;
}

void bm_decode_publish(benchmark::State& state, version v) {
    const std::string wire = wire_of(sample_publish(), v);
    for (auto _ : state) {
        auto f = parse_frame(wire, max_packet_size_limit);
        auto p = decode(**f, wire, v);
        benchmark::DoNotOptimize(p);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(wire.size()));
    state.counters["packet_bytes"] = static_cast<double>(wire.size());
}

void bm_encode_publish(benchmark::State& state, version v) {
    const packet p = sample_publish();
    std::string out;
    for (auto _ : state) {
        out.clear();
        encode(p, v, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void bm_encode_publish_header(benchmark::State& state, version v) {
    const publish p = sample_publish();
    std::string out;
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(encode_publish_header(p, p.payload.size(), v, out));
    }
}

void bm_stream_decode_publish(benchmark::State& state) {
    // 64 packets per feed, as when a socket read returns a full buffer.
    std::string batch;
    const std::string one = wire_of(sample_publish(), version::v5);
    for (int i = 0; i < 64; ++i)
        batch += one;
    stream_decoder sd(version::v5);
    for (auto _ : state) {
        sd.feed(batch);
        for (int i = 0; i < 64; ++i) {
            auto r = sd.next();
            benchmark::DoNotOptimize(r);
        }
    }
    state.SetItemsProcessed(state.iterations() * 64);
}

BENCHMARK_CAPTURE(bm_decode_publish, v311, version::v3_1_1);
BENCHMARK_CAPTURE(bm_decode_publish, v5, version::v5);
BENCHMARK_CAPTURE(bm_encode_publish, v311, version::v3_1_1);
BENCHMARK_CAPTURE(bm_encode_publish, v5, version::v5);
BENCHMARK_CAPTURE(bm_encode_publish_header, v5, version::v5);
BENCHMARK(bm_stream_decode_publish);

}  // namespace

BENCHMARK_MAIN();
