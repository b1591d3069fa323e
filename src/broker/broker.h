// SPDX-License-Identifier: Apache-2.0
//
// The broker: state shared by all shards (options, retained messages, the ingest
// hook into the bus) and the shards themselves, one per event loop. A client's session
// always lives on the shard its client id hashes to, so session state is never shared
// between threads; net/ hands each new connection to that shard after its CONNECT.
//
// Lifecycle: construct with the shard count and a poster (how to run a function on a
// shard's loop), then each loop thread calls get_shard(i).start(); stop by stopping
// the loops. The bus, when given, must outlive the broker.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/thread_annotations.h"
#include "broker/ack_barrier.h"
#include "broker/ingest_budget.h"
#include "broker/message.h"
#include "broker/options.h"
#include "broker/persistence.h"
#include "broker/retained_store.h"
#include "broker/stats.h"
#include "mqtt/types.h"

namespace sluice::bus {
class bus;
}
namespace sluice::broker::persist {
class state_store;
}
namespace sluice::auth {
class authority;
}

namespace sluice::broker {

class shard;
class spool_directory;
class relay;

// Where ingest-matching PUBLISHes go before they are acknowledged.
struct ingest_hook {
    bus::bus* log = nullptr;                              // nullptr: no ingest
    std::function<bool(std::string_view topic)> matches;  // is this an ingest topic?
};

class broker {
public:
    using poster = std::function<void(unsigned shard, std::function<void()>)>;

    broker(broker_options options, unsigned shards, poster post, ingest_hook ingest = {});
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    const broker_options& options() const { return options_; }
    unsigned shard_count() const { return static_cast<unsigned>(shards_.size()); }
    shard& get_shard(unsigned i) { return *shards_[i]; }
    void post(unsigned shard, std::function<void()> fn) { post_(shard, std::move(fn)); }

    // The loops' clock (CLOCK_MONOTONIC_COARSE, ms), for work done outside a loop.
    static int64_t monotonic_ms();

    // The shard that owns sessions of this client id.
    unsigned shard_of_client(std::string_view client_id) const;
    // Gives a CONNECT with an empty client id a fresh one when the protocol allows it
    // (MQTT 5, or 3.1.1 with clean session). Returns true if it assigned one.
    bool assign_client_id(mqtt::connect& c);

    const ingest_hook& ingest() const { return ingest_; }

    // The cluster's relay (relay.h), or nullptr on a single node. REQUIRES: set before the
    // event loops run; `r` outlives them.
    // Also tells `r` of the shared groups that sessions restored before it already hold.
    void set_relay(relay* r);
    relay* get_relay() const { return relay_; }
    // A session subscribed to (+1) or left (-1) a shared filter ("$share/..."; any other
    // filter is ignored). The relay hears when a group appears on or leaves this node.
    // Any thread.
    void note_shared_member(const std::string& filter, int delta, const ack_barrier_ptr& applied = nullptr);
    // Bytes of ingest in flight to the bus (all shards).
    ingest_budget& budget() { return budget_; }

    // Authentication and ACLs (docs/security.md). nullptr (the default): every client is
    // accepted and may do everything. REQUIRES: set before the event loops run; `a`
    // outlives the broker's connections.
    void set_authority(auth::authority* a) { authority_ = a; }
    auth::authority* authority() const { return authority_; }

    // Makes sessions and retained messages durable in `store` and restores what it holds.
    // REQUIRES: called once, before the event loops run. Returns the number of sessions
    // and retained messages restored.
    // The log tail since the resend checkpoints is replayed into the sessions' resend
    // windows (resend_window.h).
    // `spool`, when given, holds the queues of persistent sessions on disk
    // (session_spool.h; its sync_written must be `store`'s before_sync) and outlives the
    // broker; without it they are queued in memory and in `store`.
    std::pair<size_t, size_t> restore_from(persist::state_store& store, spool_directory* spool = nullptr);
    persistence& durable() { return persistence_; }
    spool_directory* spool() const { return spool_; }

    // Retained messages (thread-safe). An empty payload clears the topic. `barrier` is held
    // until the change is durable.
    void store_retained(const message_ptr& msg, const ack_barrier_ptr& barrier = nullptr);
    // True while `msg` is still the retained message of its topic (not replaced or cleared).
    bool retained_is_current(const message_ptr& msg) const;
    void retained_matching(std::string_view filter, std::vector<message_ptr>& out) const;
    size_t retained_count() const;

    // The resend rule's durable half (resend_window.h), called by every ingest append's
    // completion, on a bus thread, in offset order per partition: puts the session's entry
    // when given, and now and then the partition's checkpoint, after it. Thread-safe.
    struct resend_entry_ref {
        std::string client_id;
        uint16_t slot = 0;
        uint16_t packet_id = 0;
        uint64_t fingerprint = 0;
    };
    void note_appended(uint32_t partition, uint64_t offset, const resend_entry_ref* entry);
    // Called before the state store closes (shutdown): appends that complete later, while
    // the bus drains, no longer write to it. Their records carry the packet id, so the next
    // start replays them from the log.
    void detach_resend_store();
    bool resend_rule_durable() const { return persistence_.enabled() && options_.resend_window != 0; }

    // Bytes queued for all sessions (mqtt.max_queued_bytes_total). Thread-safe.
    void add_queued_bytes(uint64_t n) { queued_bytes_.fetch_add(n, std::memory_order_relaxed); }
    void sub_queued_bytes(uint64_t n) { queued_bytes_.fetch_sub(n, std::memory_order_relaxed); }
    uint64_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }

    // Memory of ended sessions goes back to the system (issue 10): shards report what an
    // ended session held; one shard's tick calls return_memory(), which trims the heap once
    // enough was released and the state journal has had a moment to drop its copies.
    void note_released(uint64_t bytes, int64_t now_ms);
    void return_memory(int64_t now_ms);

    // Sum of all shards' counters, for /metrics.
    struct totals {
        uint64_t connections_current, connections_total, sessions_current, messages_received, messages_sent,
            bytes_received, dropped_qos0_slow_subscriber, dropped_qos0_offline, dropped_queue_full,
            dropped_subscriber_queue, dropped_global_quota, dropped_spool_error, queued_bytes,
            slow_subscriber_disconnects, partial_packet_timeouts, input_budget_closes, topic_limit_refusals,
            dropped_too_large, dropped_expired, publish_rate_limited, malformed_packets, protocol_errors,
            ingest_appended, ingest_failed, ingest_quota_refused, ingest_paused, wills_published, sessions_expired,
            keep_alive_timeouts, takeovers, retained_messages, subscriptions, resends_acknowledged,
            sessions_resumed_from_cluster, sessions_claimed_elsewhere, messages_replayed_from_cluster;
    };
    totals get_totals() const;

private:
    struct resend_checkpoint {
        sluice::mutex mutex;
        uint64_t next_offset SLUICE_GUARDED_BY(mutex) = 0;
        int64_t saved_ms SLUICE_GUARDED_BY(mutex) = 0;
    };
    // Per client id: (slot of the key, entry).
    using resend_entries =
        std::map<std::string, std::vector<std::pair<uint16_t, persist::resend_entry_record>>, std::less<>>;
    void restore_resend_windows(resend_entries&& entries, std::map<uint32_t, uint64_t>&& checkpoints);
    size_t replay_log_into_windows(uint32_t partition, uint64_t from);

    broker_options options_;
    poster post_;
    ingest_hook ingest_;
    ingest_budget budget_;
    auth::authority* authority_ = nullptr;
    std::vector<std::unique_ptr<shard>> shards_;
    std::atomic<uint64_t> next_assigned_id_{0};
    std::atomic<uint64_t> queued_bytes_{0};
    std::atomic<uint64_t> released_bytes_{0};  // since the last heap trim
    std::atomic<int64_t> released_at_ms_{0};
    std::string id_prefix_;

    persistence persistence_{nullptr};
    spool_directory* spool_ = nullptr;
    relay* relay_ = nullptr;
    sluice::mutex shared_groups_mutex_;
    std::map<std::string, uint64_t> shared_group_members_ SLUICE_GUARDED_BY(shared_groups_mutex_);
    std::vector<std::unique_ptr<resend_checkpoint>> resend_checkpoints_;  // per bus partition
    sluice::shared_mutex resend_store_mutex_;  // note_appended (shared) vs detach_resend_store
    bool resend_store_detached_ SLUICE_GUARDED_BY(resend_store_mutex_) = false;
    mutable sluice::mutex retained_mutex_;
    retained_store<message_ptr> retained_ SLUICE_GUARDED_BY(retained_mutex_);
};

}  // namespace sluice::broker
