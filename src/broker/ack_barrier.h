// SPDX-License-Identifier: Apache-2.0
//
// Holds back an acknowledgement until every effect it promises has happened. For a
// PUBACK/PUBREC: every durable effect of the PUBLISH is on disk (the WAL append for ingest
// topics, the state-store records of the persistent sessions it was queued for on any
// shard, its retained slot). For a SUBACK/UNSUBACK: every other shard's subscription
// index applied the change. Each pending effect holds a reference; when the last one is
// dropped, the acknowledgement is posted to the client's loop (connection::ack_ready). A
// failed effect marks the barrier failed, and the publisher then gets a failure reason
// code (MQTT 5) or is disconnected (3.1.1).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace sluice::broker {

class broker;

class ack_barrier {
public:
    ack_barrier(broker& b, unsigned shard, uint64_t connection_serial, uint64_t slot)
        : broker_(b), shard_(shard), serial_(connection_serial), slot_(slot) {}
    ~ack_barrier();
    ack_barrier(const ack_barrier&) = delete;
    ack_barrier& operator=(const ack_barrier&) = delete;

    void fail() { ok_.store(false, std::memory_order_relaxed); }
    bool ok() const { return ok_.load(std::memory_order_relaxed); }
    // The publisher acknowledged synchronously (nothing else held the barrier): don't post.
    void disarm() { armed_ = false; }

private:
    broker& broker_;
    unsigned shard_;
    uint64_t serial_;
    uint64_t slot_;
    std::atomic<bool> ok_{true};
    bool armed_ = true;
};

using ack_barrier_ptr = std::shared_ptr<ack_barrier>;

}  // namespace sluice::broker
