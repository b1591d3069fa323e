// SPDX-License-Identifier: Apache-2.0
//
// Compile-only check that sluice_edge.h builds the way firmware builds it: C++17,
// -fno-exceptions, -fno-rtti, -Wpedantic, and without any other Sluice header.
#include "sluice_edge.h"

namespace {
uint8_t buffer[sluice_edge::default_capacity];
}

// A firmware-style loop: sample, add, publish when told to.
extern "C" std::size_t sluice_edge_freestanding_check(uint64_t now_ms, const double* samples, std::size_t n) {
    static sluice_edge::batch_encoder encoder(buffer, sizeof buffer);
    std::size_t published = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const auto status = encoder.add_rounded(static_cast<uint32_t>(i % 8 + 1), now_ms, samples[i], 2);
        if (status != sluice_edge::add_status::added) {
            published += encoder.finish().size;
            if (status != sluice_edge::add_status::added_flush)
                (void)encoder.add(static_cast<uint32_t>(i % 8 + 1), now_ms, samples[i]);
        }
    }
    if (encoder.should_flush(now_ms)) published += encoder.finish().size;
    return published;
}
