// SPDX-License-Identifier: Apache-2.0
//
// Lag in seconds that never goes blind (issue 11): the age of the oldest reading not yet
// stored, i.e. now minus the receive time of the record at the pipeline's committed
// offset. It keeps growing while the database is down, also once the log reached its
// quota and no new record arrives (the old "newest durable minus newest stored" stopped
// there). The receive time is read from the bus once per committed offset and cached, so
// a scrape reads at most one record per partition.
//
// Thread-safety: called from the HTTP thread; a mutex guards the cache.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "base/thread_annotations.h"

namespace sluice::bus {
class bus;
}

namespace sluice::app {

class lag_probe {
public:
    explicit lag_probe(bus::bus& log) : log_(log) {}

    // Receive time (Unix ms) of the record at `offset` of `partition`, or 0 when it
    // cannot be read (no such record yet, deleted, or unreadable).
    int64_t receive_time_at(uint32_t partition, uint64_t offset);

private:
    struct entry {
        uint64_t offset = UINT64_MAX;
        int64_t time_ms = 0;
    };
    bus::bus& log_;
    sluice::mutex mu_;
    std::unordered_map<uint32_t, entry> cache_ SLUICE_GUARDED_BY(mu_);
};

}  // namespace sluice::app
