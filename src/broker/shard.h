// SPDX-License-Identifier: Apache-2.0
//
// One shard of the broker per event loop: the sessions whose client ids hash here,
// the connections on this loop, and a private replica of the subscription index.
// Routing a PUBLISH matches it against the local replica; deliveries to sessions of
// other shards are batched per target shard and posted once per loop iteration
// (flush_outbox), so no lock is taken per message. Subscription changes are applied
// locally and replicated to every other shard's index by posting.
//
// Everything here runs on the shard's loop thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker/ack_barrier.h"
#include "broker/message.h"
#include "broker/persist/records.h"
#include "broker/session.h"
#include "broker/stats.h"
#include "broker/subscriber_queue.h"
#include "broker/topic_index.h"
#include "mqtt/types.h"

namespace sluice::broker {

class broker;
class connection;

class shard {
public:
    shard(broker& owner, unsigned index);
    ~shard();

    unsigned index() const { return index_; }
    broker& owner() { return broker_; }
    shard_stats& stats() { return stats_; }
    const shard_stats& stats() const { return stats_; }
    int64_t now_ms() const { return now_ms_; }
    void set_now(int64_t now_ms) { now_ms_ = now_ms; }
    size_t subscription_count() const { return index_replica_.subscription_count(); }

    // Connections register themselves so periodic checks and async acks can find them.
    void attach(connection* c);
    void detach(connection* c);
    connection* find_connection(uint64_t serial);
    // The session of `client_id` on this shard, or nullptr.
    session* find_session(std::string_view client_id);

    // CONNECT accepted for `c`: returns its session (new or resumed) and whether it was
    // resumed. Takes over an existing connection of the same client id.
    session& open_session(connection& c, const mqtt::connect& pkt, bool& session_present);
    // The connection of `s` is gone. `publish_will`: abnormal close, the will is due
    // (after its delay). The session stays or ends per its expiry interval.
    void session_disconnected(session& s, bool publish_will, const mqtt::will* will, uint32_t will_delay);

    // Routes a new application message to every matching subscriber (all shards) and
    // updates the retained store when its RETAIN flag is set. `barrier`, when given, is
    // held by every durable effect (persistent-session queues, the retained slot) until it
    // is on disk.
    void publish(const message_ptr& msg, const ack_barrier_ptr& barrier = nullptr);
    // One shared group's copy (message::shared_group, relay.h) to one of its members here;
    // false when the group has no member on this node (any more).
    bool publish_to_group(const message_ptr& msg);

    // SUBSCRIBE: decides a reason code per entry and applies the granted ones here; every
    // other shard's index applies them from a posted task that holds `applied`, so the
    // SUBACK waits for its release. Appends the filters whose retained messages are due
    // after the SUBACK to `retained_filters`.
    std::vector<mqtt::reason_code> subscribe(session& s, const mqtt::subscribe& pkt, const ack_barrier_ptr& applied,
                                             std::vector<std::string>& retained_filters);
    // UNSUBSCRIBE, with the same barrier contract as subscribe().
    std::vector<mqtt::reason_code> unsubscribe(session& s, const mqtt::unsubscribe& pkt,
                                               const ack_barrier_ptr& applied);
    // Sends `s` the retained messages matching those of `filters` it is still subscribed
    // to: takes their snapshot now, sends it from the end of this loop iteration on, a
    // bounded amount at a time (retained_backlog.h).
    void deliver_retained(session& s, const std::vector<std::string>& filters);

    // Sends queued messages of `s` while its window allows.
    void pump(session& s);
    // Called by the loop: keep-alive, expiry, wills. `now_ms` is monotonic.
    void tick(int64_t now_ms);
    // Called at the end of each loop iteration: disconnects the subscribers that passed
    // their queue bound (0x97), then posts batched cross-shard deliveries.
    void flush_outbox();
    // Ends every session's connection (server shutting down).
    void shutdown();

    // Durable state (no-ops unless the broker has a state store and `s` is persistent).
    void persist_session(session& s);
    void persist_message(session& s, uint16_t packet_id, const inflight_entry& e);
    void forget_message(session& s, uint64_t order);
    // Sessions across nodes (relay.h). A message routed to client `client_id`'s session
    // on another node that may not have reached it: delivered to this node's session of
    // that client by its own subscriptions (QoS 1/2 only: what an offline session keeps).
    void deliver_replayed(const std::string& client_id, const message_ptr& msg);
    // The replay reached `replayed_to` (per partition of the messages topic): what was
    // routed to the session meanwhile goes out now, less what the replay brought.
    void replay_done(const std::string& client_id, const std::vector<int64_t>& replayed_to);
    // Another node resumed the session of `client_id`: this node's copy ends without its
    // will (the session lives on there); a connection of it is closed (0x8E in 5.0).
    void session_claimed_elsewhere(const std::string& client_id);
    // Rebuilds a session from its records (start-up, before the loops run).
    void restore(persist::session_record&& r, std::vector<persist::session_message_record>&& messages,
                 const persist::spool_record* spool, int64_t now_mono);

private:
    struct remote_delivery {
        message_ptr msg;
        delivery d;
        ack_barrier_ptr barrier;  // only for durable deliveries
    };

    void deliver(session& s, const message_ptr& msg, const delivery& d, const ack_barrier_ptr& barrier = nullptr);
    // deliver() past a replay's stash.
    void deliver_now(session& s, const message_ptr& msg, const delivery& d, const ack_barrier_ptr& barrier = nullptr);
    // Matches `msg` within `scope` and delivers to each session found (here or through the
    // outbox). Returns how many.
    size_t route(const message_ptr& msg, const ack_barrier_ptr& barrier, const shared_scope& scope);
    void deliver_outgoing(session& s, outgoing&& out, const ack_barrier_ptr& barrier = nullptr);
    void enqueue(session& s, outgoing&& out, const ack_barrier_ptr& barrier);
    void hold_until_durable(const ack_barrier_ptr& barrier);
    void disconnect_slow_subscribers();
    void drain_retained();
    size_t drain_retained(session& s, size_t budget);
    void queue_retained_offline(session& s);
    void send_now(session& s, outgoing&& out, const ack_barrier_ptr& barrier = nullptr);

    // The session's spool (shard_spool.cc, session_spool.h).
    // True when what `s` queues goes to its spool file: it is persistent (or kept a spool
    // from when it was) and the broker has a spool directory.
    bool uses_spool(const session& s) const;
    // Appends `out` (`bytes` of topic and payload) to the spool; `barrier` is held until
    // the record is durable, or failed when it cannot be written (the message is dropped).
    void spool_append(session& s, outgoing&& out, uint64_t bytes, const ack_barrier_ptr& barrier);
    // Reads the next chunk of the spool into the queue; false when nothing more is there.
    bool spool_load(session& s);
    // The queue's front entry, read from the spool and ending at `end`, was taken.
    void spool_taken(session& s, uint64_t end, uint64_t bytes);
    // Puts the spool's range in the state store (when `s` is persisted).
    void spool_save(session& s);
    // Drops the spooled entries from the queue (they stay on disk).
    void spool_unload(session& s);
    // The session ends: its spool file goes once that is durable.
    void spool_release(session& s);
    // Start-up: the spool of a restored session, without reading it.
    void spool_restore(session& s, const persist::spool_record& r);
    // Leaves the current file (once empty, or unreadable) for a new one at the next append.
    void spool_retire(session& s);
    void apply_remote(std::vector<remote_delivery>& batch);
    // `claimed_elsewhere`: another node resumed it (no will, the cluster is not told).
    void end_session(session& s, bool claimed_elsewhere = false);
    // Nothing routed to `s` waits here (relay.h session_saved).
    static bool caught_up(const session& s);
    // Subscribes `s` to the subscriptions of `r` on every shard (a session resumed from
    // another node; the loops run).
    void adopt_subscriptions(session& s, const persist::session_record& r);
    void publish_will(const std::string& client_id, session_key key, mqtt::will&& w);
    void replicate_subscribe(const std::string& filter, session_key key, const sub_options& o,
                             const ack_barrier_ptr& applied = nullptr);
    void replicate_unsubscribe(const std::string& filter, session_key key, const ack_barrier_ptr& applied);
    void replicate_remove(session_key key);
    bool local_session_available(session_key key) const;

    broker& broker_;
    unsigned index_;
    int64_t now_ms_ = 0;
    int64_t sessions_refreshed_ms_ = 0;  // the last session_caught_up round (tick)
    shard_stats stats_;
    topic_index index_replica_;
    uint64_t next_session_serial_ = 0;

    std::unordered_map<std::string, std::unique_ptr<session>> sessions_;  // by client id
    std::unordered_map<session_key, session*> sessions_by_key_;
    std::unordered_map<uint64_t, connection*> connections_;  // by serial

    std::vector<delivery> match_scratch_;
    std::vector<std::vector<remote_delivery>> outbox_;  // per target shard
    slow_subscribers slow_;                             // to disconnect at the end of the iteration
    std::deque<session_key> retained_sessions_;         // sessions with a retained backlog, in turn
    std::string spool_scratch_;                         // one spool record being encoded
};

}  // namespace sluice::broker
