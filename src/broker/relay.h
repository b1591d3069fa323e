// SPDX-License-Identifier: Apache-2.0
//
// The way out to the other broker nodes of a cluster (docs/cluster.md, "MQTT across
// nodes"): every message a client of this node publishes (and every will) is handed to
// the relay, which makes it reach the other nodes' subscribers; what they publish comes
// back in as messages marked from_other_node, which are routed here and not relayed
// again. The Kafka implementation is cluster/kafka_relay.h; a single node has none.
#pragma once

#include <optional>
#include <string>

#include "broker/ack_barrier.h"
#include "broker/message.h"
#include "broker/persist/records.h"

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

    // Sessions across nodes. A persistent session of this node was saved (`record`: its
    // subscriptions and expiry); `caught_up` when nothing routed to it waits here (no queue,
    // nothing in flight), so that another node resuming it needs only what is routed from
    // now on. Called on the session's shard loop; must not block.
    virtual void session_saved(const persist::session_record& record, bool caught_up) {
        (void)record;
        (void)caught_up;
    }
    // The session ended here (clean start, expiry, no longer persistent).
    virtual void session_ended(const std::string& client_id) { (void)client_id; }
    // Nothing routed to it waits here any more (periodically, for sessions it may resume).
    virtual void session_caught_up(const std::string& client_id) { (void)client_id; }
    // A client resumes a session this node does not hold: the session another node held,
    // if any (that node then ends its copy). The relay then replays to this node's shard
    // `shard`, through shard::deliver_replayed, what was routed to the session there and
    // may not have reached its client, and ends with shard::replay_done (always, once per
    // claim). Must not block.
    virtual std::optional<persist::session_record> claim_session(const std::string& client_id, unsigned shard) {
        (void)client_id;
        (void)shard;
        return std::nullopt;
    }
};

}  // namespace sluice::broker
