// SPDX-License-Identifier: Apache-2.0
//
// The bound on an online subscriber's queue, and what happens past it. A subscriber that
// stops reading must cost only its own resources: publishers are never slowed down for it
// (their acknowledgements depend on the bus and the state journal, never on a subscriber),
// so past its bound the subscriber is disconnected with Quota exceeded (0x97), the way
// EMQX and HiveMQ shed a slow consumer. A persistent session keeps its QoS 1/2 backlog
// (up to its own quota, max_queued_messages/bytes) and gets it on reconnect. A session
// that ends with its connection would lose everything by a disconnect, so by default
// (mqtt.clean_subscriber_overflow = drop) it stays connected and what passes its bound is
// dropped and counted, as QoS 0 to a slow connection is. Policy and metrics:
// docs/delivery.md.
//
// Disconnecting happens at the end of the loop iteration, not in the delivery path:
// closing a connection may end its session and publish its will, which must not happen
// while the shard is still routing the message that crossed the bound.
//
// Everything here runs on the owning shard's loop thread.
#pragma once

#include <cstdint>
#include <unordered_set>
#include <utility>

#include "broker/options.h"

namespace sluice::broker {

// True when an online subscriber with `queued_messages`/`queued_bytes` waiting beyond its
// inflight window cannot take `incoming_bytes` more, or when its connection already has
// more than max_pending_output_bytes unsent (`output_congested`).
inline bool subscriber_over_bound(const broker_options& o, size_t queued_messages, uint64_t queued_bytes,
                                  uint64_t incoming_bytes, bool output_congested) {
    return output_congested || queued_messages >= o.subscriber_queue_messages ||
           queued_bytes + incoming_bytes > o.subscriber_queue_bytes;
}

// Connections (by serial) whose subscriber passed its bound during this loop iteration.
class slow_subscribers {
public:
    // Returns true the first time `serial` is marked.
    bool mark(uint64_t serial) { return serials_.insert(serial).second; }
    bool empty() const { return serials_.empty(); }
    std::unordered_set<uint64_t> take() { return std::exchange(serials_, {}); }

private:
    std::unordered_set<uint64_t> serials_;
};

}  // namespace sluice::broker
