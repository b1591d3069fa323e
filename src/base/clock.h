// SPDX-License-Identifier: Apache-2.0
//
// Wall-clock time as the integers Sluice stores and exchanges: Unix epoch milliseconds
// (receive times, state-store times, API timestamps) and microseconds (PostgreSQL's
// timestamptz resolution). One place for the conversion so no module rounds differently.
// For intervals use a steady clock, never these: wall time can jump.
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

inline int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline int64_t unix_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace sluice
