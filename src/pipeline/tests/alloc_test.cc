// SPDX-License-Identifier: Apache-2.0
//
// The hot path does not allocate: after warm-up, decoding JSON and binary payloads and
// running them through the processor performs zero heap allocations per message. This
// binary replaces global operator new to count; it is its own test executable so the
// counter does not disturb other tests.
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "pipeline/processor.h"
#include "sluice_edge.h"

namespace {
std::atomic<uint64_t> allocations{0};
}

// Every replaceable form, so that no pointer crosses between our malloc-based
// allocator and the sanitizer's (libsimdjson uses the nothrow and array forms).
namespace {
void* counted_alloc(std::size_t n) noexcept {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
void* counted_alloc_or_throw(std::size_t n) {
    if (void* p = counted_alloc(n)) return p;
    throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) {
    return counted_alloc_or_throw(n);
}
void* operator new[](std::size_t n) {
    return counted_alloc_or_throw(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return counted_alloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return counted_alloc(n);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace sluice::pipeline {
namespace {

TEST(allocations, steady_state_decode_and_process_do_not_allocate) {
    rule_set rules = rule_set::defaults();
    metric_dictionary dict;
    std::string reason;
    ASSERT_TRUE(dict.add({.id = 1,
                          .name = "temperature",
                          .unit = "degC",
                          .input_unit = "degF",
                          .valid_min = {},
                          .valid_max = {},
                          .warn_low = {},
                          .warn_high = 90.0},
                         reason));
    ASSERT_TRUE(dict.add({.id = 2,
                          .name = "humidity",
                          .unit = "percent",
                          .input_unit = {},
                          .valid_min = {},
                          .valid_max = {},
                          .warn_low = {},
                          .warn_high = {}},
                         reason));
    processor proc(rules, dict, [](std::string_view, const topic_match&) -> std::optional<uint32_t> { return 7; });

    const std::string json = R"({"seq": 1, "ts": 1732212345123, "temperature": 71.5, "humidity": 40.2})";
    const std::string batch = R"({"readings": [{"ts": 1, "temperature": 70}, {"ts": 2, "humidity": 41.5}]})";
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    for (uint64_t t = 0; enc.add_rounded(static_cast<uint32_t>(t % 2 + 1), 1000 + t, 20.0 + static_cast<double>(t % 7),
                                         1) != sluice_edge::add_status::added_flush;
         ++t) {
    }
    const auto p = enc.finish();
    const std::string binary(reinterpret_cast<const char*>(p.data), p.size);

    std::vector<telemetry_row> rows;
    std::vector<rejected_reading> rejected;
    rows.reserve(1024);
    auto run = [&] {
        for (const std::string* payload : {&json, &batch, &binary}) {
            rows.clear();
            auto r = proc.process({"devices/d1/telemetry", "c1", *payload, 5000}, 5000, rows, rejected);
            ASSERT_TRUE(r.has_value()) << proc.reason();
        }
    };
    run();  // warm-up: parser, buffers, per-series state, the device's sequence entry
    run();
    const uint64_t before = allocations.load();
    for (int i = 0; i < 1000; ++i)
        run();
    EXPECT_EQ(allocations.load() - before, 0u);
    EXPECT_TRUE(rejected.empty());
    EXPECT_GT(proc.totals().rows, 3000u);
}

}  // namespace
}  // namespace sluice::pipeline
