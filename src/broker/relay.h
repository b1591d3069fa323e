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

    // Shared subscriptions across nodes. When true, this node routes what its clients
    // publish and what other nodes relay to non-shared subscriptions only; each shared
    // group present here gets its messages from the relay instead (message::shared_group
    // set), which hands every message to one node of the cluster that has the group.
    virtual bool balances_shared_groups() const { return false; }
    // The first member of `filter` ("$share/{group}/{filter}") subscribed on this node, or
    // the last one left. Called on any shard's loop, under the broker's group lock; must
    // not block. `applied` (may be null) is held until the group takes this node's
    // messages from now on, so that a SUBACK means the subscription is in force.
    virtual void shared_group_added(const std::string& filter, const ack_barrier_ptr& applied) {
        (void)filter;
        (void)applied;
    }
    virtual void shared_group_removed(const std::string& filter) { (void)filter; }
};

}  // namespace sluice::broker
