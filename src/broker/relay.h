// SPDX-License-Identifier: Apache-2.0
//
// The way out to the other broker nodes of a cluster (docs/cluster.md, "MQTT across
// nodes"): every message a client of this node publishes (and every will) is handed to
// the relay, which makes it reach the other nodes' subscribers; what they publish comes
// back in as messages marked from_other_node, which are routed here and not relayed
// again. The Kafka implementation is cluster/kafka_relay.h; a single node has none.
#pragma once

#include "broker/ack_barrier.h"
#include "broker/message.h"

namespace sluice::broker {

class relay {
public:
    virtual ~relay() = default;
    // Called on the publishing shard's loop; must not block. `barrier` (QoS 1/2 only) is
    // held until the other nodes can get the message, or failed when they cannot, so the
    // publisher's acknowledgement means the cluster has it.
    virtual void forward(const message_ptr& msg, const ack_barrier_ptr& barrier) = 0;
};

}  // namespace sluice::broker
