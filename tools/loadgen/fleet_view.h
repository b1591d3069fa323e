// SPDX-License-Identifier: Apache-2.0
//
// The main thread's view of a run: the workers' counters summed (they are atomics the
// workers keep writing), the progress line printed once a second, and the pacing helpers
// the phases wait with.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "accounting.h"
#include "options.h"
#include "shared_state.h"
#include "worker.h"

namespace sluice::loadgen {

// The workers' counters summed at one moment (each is read once, relaxed).
struct totals {
    uint64_t published = 0, acked = 0, rejected = 0, readings_sent = 0, readings_acked = 0, generated = 0;
    uint64_t received = 0, errors = 0, reconnects = 0, resumed = 0, dropped = 0, connects = 0;
    int64_t inflight = 0, queued = 0, ready = 0, sub_ready = 0;
};

totals sum(const std::vector<std::unique_ptr<worker>>& ws);
histogram merged_ack_latency(const std::vector<std::unique_ptr<worker>>& ws);
histogram merged_connect_latency(const std::vector<std::unique_ptr<worker>>& ws);

double seconds_since(clock_type::time_point t);
void sleep_ms(int ms);

class progress {
public:
    progress(const options& o, const std::vector<std::unique_ptr<worker>>& ws) : opts_(o), ws_(ws) {}
    // Prints one line when a second has passed since the last one.
    void tick(const char* label);

private:
    const options& opts_;
    const std::vector<std::unique_ptr<worker>>& ws_;
    clock_type::time_point last_ = clock_type::now();
    totals prev_;
    histogram prev_hist_;
    bool started_ = false;
};

// Waits `seconds`, printing the progress line under `label`.
void wait_for(progress& prog, double seconds, const char* label);

}  // namespace sluice::loadgen
