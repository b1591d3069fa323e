// SPDX-License-Identifier: Apache-2.0
//
// Sessions across nodes (docs/cluster.md "Sessions across nodes"): every node writes the
// persistent sessions it holds (subscriptions, expiry, and the positions in the messages
// topic up to which the session had everything) to the compacted sessions topic, keyed by
// client id, and reads the whole topic. A client that resumes its session on another node
// (its node died, or the load balancer moved it) gets it there: that node claims it (a
// record with a higher epoch, which makes the former holder end its copy), takes its
// subscriptions, and replays from the messages topic, from the recorded positions to the
// end, the QoS 1/2 messages matching them, which were queued at the former node or
// published while no node held the session. At least once: what reached the client after
// the positions were recorded comes again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "base/thread_annotations.h"
#include "cluster/kafka_relay.h"
#include "cluster/relay_record.h"

struct rd_kafka_s;

namespace sluice::cluster {

class session_directory {
public:
    // The positions (per partition of the messages topic) up to which this node has routed
    // every message, as of a moment ago (kafka_relay::settled_positions).
    using positions_fn = std::function<std::vector<int64_t>()>;

    // Reads the sessions topic to its end (bounded by o.retained_load_timeout), tells the
    // broker's shards to drop restored sessions that another node took meanwhile, and
    // follows the topic from then on. Blocks on Kafka.
    static result<std::unique_ptr<session_directory>> start(broker::broker& b, const kafka_relay_options& o,
                                                            uint64_t node, uint32_t message_partitions,
                                                            positions_fn settled);
    ~session_directory();
    session_directory(const session_directory&) = delete;
    session_directory& operator=(const session_directory&) = delete;
    void stop();

    // relay.h's session hooks (any shard's loop; never block).
    void saved(const broker::persist::session_record& r, bool caught_up);
    void ended(const std::string& client_id);
    void caught_up(const std::string& client_id);
    std::optional<broker::persist::session_record> claim(const std::string& client_id, unsigned shard);

    struct stats {
        uint64_t known = 0;     // sessions in the topic (not ended)
        uint64_t held = 0;      // of them, held by this node
        uint64_t claimed = 0;   // resumed here from another node
        uint64_t replayed = 0;  // messages replayed to them
    };
    stats get_stats() const;

private:
    struct held_session {
        uint64_t epoch = 0;
        std::vector<int64_t> positions;
        broker::persist::session_record session;
    };
    struct replay_job {
        std::string client_id;
        unsigned shard = 0;
        std::vector<int64_t> from;
        std::vector<std::string> filters;  // non-shared, QoS 1/2
    };

    session_directory(broker::broker& b, const kafka_relay_options& o, uint64_t node, uint32_t partitions,
                      positions_fn settled);
    result<void> open();
    void follow();
    void apply(const std::string& client_id, std::string_view value, bool initial);
    void produce(const std::string& client_id, const cluster_session& s);
    void write_held(const std::string& client_id, const held_session& h) SLUICE_REQUIRES(mu_);
    void replay_loop();
    void replay(const replay_job& job);

    broker::broker& broker_;
    const kafka_relay_options& opts_;
    const uint64_t node_;
    const uint32_t partitions_;
    positions_fn settled_;
    std::unique_ptr<bus::bus> producer_;
    rd_kafka_s* follower_ = nullptr;
    std::thread follower_thread_;
    std::thread replay_thread_;
    std::atomic<bool> stopping_{false};

    mutable sluice::mutex mu_;
    std::unordered_map<std::string, cluster_session> known_ SLUICE_GUARDED_BY(mu_);  // latest per client id
    std::unordered_map<std::string, held_session> held_ SLUICE_GUARDED_BY(mu_);      // held by this node
    std::deque<replay_job> replays_ SLUICE_GUARDED_BY(mu_);
    // Sessions whose replay has not finished: their positions stay where the replay began,
    // so that a node resuming them after this one replays it all again.
    std::unordered_map<std::string, int> replaying_ SLUICE_GUARDED_BY(mu_);
    std::condition_variable replays_cv_;
    std::atomic<uint64_t> claimed_{0}, replayed_{0};
};

}  // namespace sluice::cluster
