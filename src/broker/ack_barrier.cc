// SPDX-License-Identifier: Apache-2.0
#include "broker/ack_barrier.h"

#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/shard.h"

namespace sluice::broker {

ack_barrier::~ack_barrier() {
    if (!armed_) return;
    shard* owner = &broker_.get_shard(shard_);
    uint64_t serial = serial_;
    uint64_t slot = slot_;
    bool ok = ok_.load(std::memory_order_relaxed);
    broker_.post(shard_, [owner, serial, slot, ok] {
        if (connection* c = owner->find_connection(serial)) c->ack_ready(slot, ok);
    });
}

}  // namespace sluice::broker
