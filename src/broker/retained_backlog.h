// SPDX-License-Identifier: Apache-2.0
//
// Retained messages a session's SUBSCRIBE matched and that are not sent yet (issue 10).
// A filter may match 100k retained messages and a subscriber may not read: sending them
// all at once pinned every message's bytes in the connection's output and held the loop
// for seconds, stalling everyone else. So SUBSCRIBE only takes a snapshot of the matching
// messages (handles to the shared messages, 16 bytes each), and the shard sends from it a
// bounded number per loop iteration while the connection's unsent output stays under a
// low watermark and, for QoS 1/2, while its inflight window has room
// (shard::drain_retained). A message replaced or cleared since the snapshot is skipped:
// the subscription already got the newer one live.
//
// Everything here runs on the owning shard's loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "broker/message.h"

namespace sluice::broker {

// Unsent output under which a connection gets more of its retained backlog; well under
// mqtt.max_pending_output_bytes, so that retained messages never make it "slow".
inline constexpr uint64_t k_retained_output_watermark = 256ull * 1024;
// Retained messages a shard sends per loop iteration, over all its sessions.
inline constexpr size_t k_retained_per_iteration = 1024;

// One SUBSCRIBE filter's matching retained messages, in the order they are sent.
struct retained_batch {
    std::string filter;
    std::vector<message_ptr> messages;
    size_t next = 0;  // messages[next] is sent next

    bool done() const { return next >= messages.size(); }
};

class retained_backlog {
public:
    // A new subscription to `filter` replaces what an older one to the same filter had
    // left: retained messages are sent again on every SUBSCRIBE (retain handling 0), not
    // twice for one.
    void add(std::string filter, std::vector<message_ptr> messages) {
        for (auto it = batches_.begin(); it != batches_.end(); ++it) {
            if (it->filter == filter) {
                batches_.erase(it);
                break;
            }
        }
        if (!messages.empty()) batches_.push_back(retained_batch{std::move(filter), std::move(messages), 0});
    }
    bool empty() const { return batches_.empty(); }
    retained_batch& front() { return batches_.front(); }
    void pop_front() { batches_.pop_front(); }
    size_t pending() const {
        size_t n = 0;
        for (const auto& b : batches_)
            n += b.messages.size() - b.next;
        return n;
    }

private:
    std::deque<retained_batch> batches_;
};

}  // namespace sluice::broker
