// SPDX-License-Identifier: Apache-2.0
//
// The ingest byte budget (see ingest_budget.h).
#include "broker/ingest_budget.h"

namespace sluice::broker {

bool ingest_budget::try_reserve(connection_share& share, uint64_t cost, uint64_t headroom) {
    // Only the connection's own loop thread adds to its share, so check-then-add is safe
    // for the per-connection bound; the total is shared between loops and needs a CAS.
    const uint64_t mine = share.in_flight.load(std::memory_order_acquire);
    if (mine != 0 && mine + cost > max_per_connection_) return false;
    uint64_t total = total_.load(std::memory_order_relaxed);
    for (;;) {
        // The headroom counts bytes already on disk, not our reservations: everything in
        // flight has to fit it together.
        if (total + cost > headroom) return false;
        if (total != 0 && total + cost > max_total_) return false;
        if (total_.compare_exchange_weak(total, total + cost, std::memory_order_acq_rel)) break;
    }
    share.in_flight.fetch_add(cost, std::memory_order_acq_rel);
    return true;
}

void ingest_budget::release(connection_share& share, uint64_t cost) {
    share.in_flight.fetch_sub(cost, std::memory_order_acq_rel);
    total_.fetch_sub(cost, std::memory_order_acq_rel);
}

}  // namespace sluice::broker
