// SPDX-License-Identifier: Apache-2.0
//
// MQTT across the broker nodes of a cluster, through Kafka (docs/cluster.md, "MQTT
// across nodes"). Every message a client of this node publishes is produced to the
// messages topic (key: the MQTT topic), a retained one also to the retained topic
// (compacted: the latest per MQTT topic); a QoS 1/2 publisher is acknowledged only after
// Kafka's delivery report. One consumer per node reads every partition of the messages
// topic from where it was when the node started and routes what the other nodes published
// to this node's subscribers; at start the node reads the whole retained topic into its
// retained store. No protocol of our own: Kafka is the fan-out.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/thread_annotations.h"
#include "broker/relay.h"
#include "bus/kafka/kafka.h"

struct rd_kafka_s;

namespace sluice::broker {
class broker;
}
namespace sluice::bus {
class bus;
}

namespace sluice::cluster {

class shared_group_consumer;
class session_directory;

struct kafka_relay_options {
    bus::kafka_options kafka;    // brokers, client id, properties (its topic is not used)
    std::string messages_topic;  // every message a node's clients publish
    std::string retained_topic;  // retained messages, cleanup.policy=compact
    std::chrono::milliseconds retained_load_timeout{15'000};
    std::string sessions_topic;  // persistent sessions, cleanup.policy=compact (session_directory.h)
    // This node's id in the cluster; 0: a random one. Keep it across restarts (the data dir
    // does) so that the node knows its own sessions in the sessions topic.
    uint64_t node_id = 0;
    // Balance each shared group across the nodes through a Kafka consumer group
    // (shared_group_consumer.h); false: balanced among each node's members, as on one node.
    bool shared_groups_across_nodes = true;
};

class kafka_relay final : public broker::relay {
public:
    // Connects, reads the retained topic into `b`'s retained store and starts routing the
    // other nodes' messages into `b` (posted to its shards). `b` must outlive the relay.
    // Errors: bus::errc::not_found when a topic does not exist (create them as
    // docs/cluster.md says), invalid_argument for a bad setting, io_error.
    static result<std::unique_ptr<kafka_relay>> start(broker::broker& b, const kafka_relay_options& o);
    ~kafka_relay() override;
    kafka_relay(const kafka_relay&) = delete;
    kafka_relay& operator=(const kafka_relay&) = delete;

    void forward(const broker::message_ptr& msg, const broker::ack_barrier_ptr& barrier) override;
    bool balances_shared_groups() const override { return opts_.shared_groups_across_nodes; }
    void session_saved(const broker::persist::session_record& record, bool caught_up) override;
    void session_ended(const std::string& client_id) override;
    void session_caught_up(const std::string& client_id) override;
    std::optional<broker::persist::session_record> claim_session(const std::string& client_id, unsigned shard) override;
    // Per partition of the messages topic: this node had routed everything before these
    // offsets a second ago (what a session resumed elsewhere is replayed from).
    std::vector<int64_t> settled_positions() const;
    void shared_group_added(const std::string& filter, const broker::ack_barrier_ptr& applied) override;
    void shared_group_removed(const std::string& filter) override;
    // Stops routing and producing: forwards still pending fail. Idempotent.
    void stop();

    uint64_t node_id() const { return node_; }
    struct stats {
        uint64_t forwarded = 0;          // messages Kafka acknowledged (the messages topic)
        uint64_t forward_failures = 0;   // records Kafka did not take (their publishers were told)
        uint64_t received = 0;           // other nodes' messages routed here
        uint64_t retained_loaded = 0;    // retained messages read at start
        uint64_t shared_routed = 0;      // messages of shared groups routed to this node's members
        uint64_t shared_groups = 0;      // shared groups this node takes part in
        uint64_t shared_partitions = 0;  // partitions it holds for them, summed
        uint64_t sessions_known = 0;     // persistent sessions in the sessions topic
        uint64_t sessions_held = 0;      // of them, held by this node
    };
    stats get_stats() const;

private:
    kafka_relay(broker::broker& b, kafka_relay_options o, uint64_t node);
    result<void> open();
    result<void> load_retained();
    void consume();
    void manage_shared_groups();
    // The consumer thread's positions, kept a few seconds back (settled_positions()).
    void note_positions(const std::vector<int64_t>& positions);

    // Shared groups: what the broker has (wanted_) and what runs; applied barriers of
    // SUBACKs are held until their group's consumer started.
    mutable sluice::mutex groups_mu_;
    std::condition_variable groups_cv_;
    std::map<std::string, std::vector<broker::ack_barrier_ptr>> wanted_groups_ SLUICE_GUARDED_BY(groups_mu_);
    std::map<std::string, std::unique_ptr<shared_group_consumer>> running_groups_ SLUICE_GUARDED_BY(groups_mu_);
    std::thread groups_thread_;
    std::atomic<uint64_t> shared_routed_gone_{0};  // routed by consumers already closed

    mutable sluice::mutex positions_mu_;
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::vector<int64_t>>> position_history_
        SLUICE_GUARDED_BY(positions_mu_);
    std::vector<int64_t> start_positions_;  // where the consumer started (set before it runs)
    std::unique_ptr<session_directory> sessions_;

    broker::broker& broker_;
    const kafka_relay_options opts_;
    const uint64_t node_;
    std::unique_ptr<bus::bus> messages_;  // producer of the messages topic
    std::unique_ptr<bus::bus> retained_;  // producer of the retained topic
    rd_kafka_s* consumer_ = nullptr;
    std::thread consumer_thread_;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> forwarded_{0}, forward_failures_{0}, received_{0}, retained_loaded_{0};
};

}  // namespace sluice::cluster
