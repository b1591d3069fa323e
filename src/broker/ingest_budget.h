// SPDX-License-Identifier: Apache-2.0
//
// The ingest byte budget: how many bytes of ingest PUBLISHes may be read but not yet
// durable in the bus, in total and per connection (issue 11). A connection reserves a
// message's bus::append_cost() before it appends it and the append's callback releases
// it. A reservation also has to fit the bus's quota headroom, so in the `pause` policy
// an append never fails for the quota: a PUBLISH that does not fit is held (the
// connection stops reading) instead of being read, appended and refused, and no
// connection is ever closed for it. Bounding bytes rather than messages makes the bound
// hold for 25 KB messages as well as for 50-byte ones.
//
// Thread-safety: try_reserve() runs on event-loop threads, release() on bus threads;
// both are lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace sluice::broker {

class ingest_budget {
public:
    // `max_total`: bytes in flight over all connections; `max_per_connection`: per
    // connection. A connection with nothing in flight may always reserve one message
    // (up to the headroom), so a message larger than the per-connection bound still
    // gets through on its own.
    ingest_budget(uint64_t max_total, uint64_t max_per_connection)
        : max_total_(max_total), max_per_connection_(max_per_connection) {}

    // One connection's share; the append callback holds it, so it outlives the
    // connection when needed.
    struct connection_share {
        std::atomic<uint64_t> in_flight{0};
        std::atomic<bool> waiting{false};  // held a PUBLISH for lack of budget: wake it on release
    };

    // Reserves `cost` bytes for `share` if the connection's bound, the total bound and
    // `headroom` (the bus's quota headroom, bus::quota_headroom()) all allow it.
    // Returns false (nothing reserved) otherwise.
    bool try_reserve(connection_share& share, uint64_t cost, uint64_t headroom);
    // Returns a reservation (the append completed, or it was never made).
    void release(connection_share& share, uint64_t cost);

    uint64_t in_flight() const { return total_.load(std::memory_order_relaxed); }

private:
    const uint64_t max_total_;
    const uint64_t max_per_connection_;
    std::atomic<uint64_t> total_{0};
};

}  // namespace sluice::broker
