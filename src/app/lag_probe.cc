// SPDX-License-Identifier: Apache-2.0
//
// Lag probe (see lag_probe.h).
#include "app/lag_probe.h"

#include <chrono>
#include <vector>

#include "bus/bus.h"

namespace sluice::app {

int64_t lag_probe::receive_time_at(uint32_t partition, uint64_t offset) {
    sluice::mutex_lock lock(mu_);
    entry& e = cache_[partition];
    if (e.offset == offset && e.time_ms != 0) return e.time_ms;
    auto reader = log_.open_reader(partition, offset);
    if (!reader) return 0;
    std::vector<bus::record> out;
    auto n = (*reader)->poll(out, 1, std::chrono::milliseconds(0));
    if (!n || *n == 0 || out.front().offset != offset) return 0;
    e.offset = offset;
    e.time_ms = out.front().msg.receive_time_ms;
    return e.time_ms;
}

}  // namespace sluice::app
