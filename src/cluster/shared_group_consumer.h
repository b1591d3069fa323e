// SPDX-License-Identifier: Apache-2.0
//
// One shared group's share of the messages topic on this node (docs/cluster.md, "Shared
// subscriptions across nodes"). Every node with members of "$share/{group}/{filter}" runs
// one of these, all in the Kafka consumer group named after the filter, so Kafka hands each
// partition of the messages topic to exactly one of them: each message matching the filter
// reaches the members of one node (which picks one of them, as on a single node), and when a
// node leaves or dies, its partitions move to the others. Kafka does the balancing and the
// failure detection; there is no protocol of ours.
//
// Where a partition starts: where the group left it, if a member committed it recently
// (each member commits its positions every second, with the time, and when it hands a
// partition over); otherwise (a new group, or one without members for longer than
// k_fresh_commit) the end the partition had when this node's consumer was made. So a node
// that dies hands its partitions on without a gap (what it routed in its last second is
// routed again: at least once), a group that had no member for a while does not replay what
// was published meanwhile, and a SUBACK (held until start() returns) means the subscription
// takes every message published after it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/thread_annotations.h"
#include "cluster/kafka_relay.h"

struct rd_kafka_s;

namespace sluice::cluster {

class shared_group_consumer {
public:
    // Records the end of each of `partitions` of the messages topic, joins the group and
    // starts routing into `b`. Blocks on Kafka (run it off the event loops). `b` must
    // outlive the consumer.
    static result<std::unique_ptr<shared_group_consumer>> start(broker::broker& b, const kafka_relay_options& o,
                                                                const std::string& shared_filter, uint32_t partitions);
    // Leaves the group (commits what was routed, then Kafka's LeaveGroup: blocks briefly).
    ~shared_group_consumer();
    shared_group_consumer(const shared_group_consumer&) = delete;
    shared_group_consumer& operator=(const shared_group_consumer&) = delete;

    // Messages of the group routed to this node's members.
    uint64_t routed() const { return routed_.load(); }
    // Partitions this node holds for the group now.
    uint32_t partitions_owned() const { return owned_.load(); }

    // The Kafka consumer group of a shared filter (the same on every node).
    static std::string group_id(const kafka_relay_options& o, const std::string& shared_filter);

    // librdkafka's rebalance callback (on the consumer's thread); not for other callers.
    void on_rebalance(rd_kafka_s* rk, int err, void* partitions);

    // A committed position older than this is a group that had no member: not resumed.
    static constexpr int64_t k_fresh_commit_ms = 20'000;

private:
    shared_group_consumer(broker::broker& b, const kafka_relay_options& o, std::string shared_filter);
    void consume();
    // Commits the next offset of every partition held, stamped with the wall clock.
    void commit_positions(rd_kafka_s* rk, bool sync);

    broker::broker& broker_;
    const kafka_relay_options& opts_;
    const std::string shared_filter_;           // "$share/{group}/{filter}"
    std::string filter_;                        // {filter}
    std::vector<int64_t> floor_;                // per partition: the end when this consumer was made
    std::map<int32_t, int64_t> next_;           // partitions held -> next offset to route (consumer thread)
    std::map<int32_t, int64_t> routed_before_;  // partitions held before -> where this node stopped
    // What the shards did with the copies posted to them; shared with the posted tasks,
    // which may run after the consumer is gone.
    struct ledger {
        std::atomic<int64_t> pending{0};  // posted, not yet routed
        sluice::mutex mu;
        // partition -> the first offset no member here took (its last member left): commits
        // stop there, so whoever takes the partition next routes it.
        std::map<int32_t, int64_t> first_unrouted SLUICE_GUARDED_BY(mu);
    };
    std::shared_ptr<ledger> ledger_ = std::make_shared<ledger>();
    // Waits (bounded) until the shards have routed every copy posted so far.
    void wait_routed() const;
    rd_kafka_s* rk_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> routed_{0};
    std::atomic<uint32_t> owned_{0};
};

}  // namespace sluice::cluster
