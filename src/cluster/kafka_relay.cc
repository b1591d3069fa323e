// SPDX-License-Identifier: Apache-2.0
#include "cluster/kafka_relay.h"

#include <map>
#include <random>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/persistence.h"
#include "broker/shard.h"
#include "bus/bus.h"
#include "bus/errc.h"
#include "cluster/kafka_consumer.h"
#include "cluster/relay_record.h"
#include "cluster/session_directory.h"
#include "cluster/shared_group_consumer.h"

namespace sluice::cluster {
namespace {

constexpr const char* k_log = "cluster";

uint64_t random_node_id() {
    std::random_device rd;
    uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(unix_ms());
    return id == 0 ? 1 : id;
}

// A plain consumer (assign only: never joins a group, never commits).
rd_kafka_t* make_plain_consumer(const kafka_relay_options& o, uint64_t node, bool partition_eof) {
    return make_consumer(o,
                         {
                             {"client.id", o.kafka.client_id + "-relay"},
                             {"group.id", "sluice-relay-" + std::to_string(node)},  // needed by assign(); never joined
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"enable.partition.eof", partition_eof ? "true" : "false"},
                             {"fetch.wait.max.ms", "20"},
                         });
}

}  // namespace

kafka_relay::kafka_relay(broker::broker& b, kafka_relay_options o, uint64_t node)
    : broker_(b), opts_(std::move(o)), node_(node) {}

kafka_relay::~kafka_relay() {
    stop();
}

result<std::unique_ptr<kafka_relay>> kafka_relay::start(broker::broker& b, const kafka_relay_options& o) {
    std::unique_ptr<kafka_relay> r(new kafka_relay(b, o, o.node_id != 0 ? o.node_id : random_node_id()));
    if (auto opened = r->open(); !opened) return opened.error();
    return r;
}

result<void> kafka_relay::open() {
    for (auto [topic, out] :
         {std::pair{&opts_.messages_topic, &messages_}, std::pair{&opts_.retained_topic, &retained_}}) {
        bus::kafka_options ko = opts_.kafka;
        ko.topic = *topic;
        ko.client_id = opts_.kafka.client_id + "-relay";
        auto bus = bus::open_kafka(ko);
        if (!bus) {
            SLUICE_ERROR(k_log, "cannot produce to Kafka topic %s: %s", topic->c_str(), bus.error().message().c_str());
            return bus.error();
        }
        *out = std::move(bus).value();
    }
    if (auto loaded = load_retained(); !loaded) return loaded.error();
    consumer_ = make_plain_consumer(opts_, node_, false);
    if (consumer_ == nullptr) return make_error_code(bus::errc::invalid_argument);
    if (auto a = assign_all(consumer_, opts_.messages_topic, messages_->partitions(), RD_KAFKA_OFFSET_END,
                            &start_positions_);
        !a)
        return a.error();
    note_positions(start_positions_);
    if (!opts_.sessions_topic.empty()) {
        auto dir = session_directory::start(broker_, opts_, node_, messages_->partitions(),
                                            [this] { return settled_positions(); });
        if (!dir) return dir.error();
        sessions_ = std::move(dir).value();
    }
    consumer_thread_ = std::thread([this] { consume(); });
    if (opts_.shared_groups_across_nodes) groups_thread_ = std::thread([this] { manage_shared_groups(); });
    SLUICE_INFO(k_log, "MQTT across nodes through Kafka topics %s (%u partitions) and %s: node %016llx",
                opts_.messages_topic.c_str(), messages_->partitions(), opts_.retained_topic.c_str(),
                static_cast<unsigned long long>(node_));
    return ok();
}

result<void> kafka_relay::load_retained() {
    rd_kafka_t* rk = make_plain_consumer(opts_, node_, true);
    if (rk == nullptr) return make_error_code(bus::errc::invalid_argument);
    const uint32_t partitions = retained_->partitions();
    if (auto a = assign_all(rk, opts_.retained_topic, partitions, RD_KAFKA_OFFSET_BEGINNING); !a) {
        rd_kafka_destroy(rk);
        return a.error();
    }
    // The latest record of each MQTT topic wins; an empty value clears it.
    std::map<std::string, std::string> latest;
    const uint32_t at_end =
        read_to_end(rk, partitions, opts_.retained_load_timeout, [&](std::string topic, std::string_view value) {
            if (value.empty()) {
                latest.erase(topic);
            } else {
                latest[std::move(topic)].assign(value);
            }
        });
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (at_end < partitions) {
        SLUICE_WARN(k_log,
                    "read only %u of %u partitions of %s in %lld ms: some retained messages of other nodes "
                    "are missing here until they are published again",
                    at_end, partitions, opts_.retained_topic.c_str(),
                    static_cast<long long>(opts_.retained_load_timeout.count()));
    }
    const int64_t now = broker::broker::monotonic_ms();
    for (auto& [topic, value] : latest) {
        auto r = decode_relayed(value);
        if (!r) {
            SLUICE_WARN(k_log, "ignoring an undecodable retained message of %s in %s", topic.c_str(),
                        opts_.retained_topic.c_str());
            continue;
        }
        auto msg =
            std::const_pointer_cast<broker::message>(broker::persistence::to_message(std::move(r->message), now));
        if (msg->expires_at_ms != 0 && msg->expires_at_ms <= now) continue;
        msg->retain = true;
        msg->from_other_node = true;
        broker_.store_retained(msg);
        ++retained_loaded_;
    }
    if (retained_loaded_ > 0) {
        SLUICE_INFO(k_log, "loaded %llu retained messages from %s",
                    static_cast<unsigned long long>(retained_loaded_.load()), opts_.retained_topic.c_str());
    }
    return ok();
}

void kafka_relay::note_positions(const std::vector<int64_t>& positions) {
    const auto now = std::chrono::steady_clock::now();
    sluice::mutex_lock lock(positions_mu_);
    position_history_.emplace_back(now, positions);
    // Keep one entry older than a second (what settled_positions() answers) and what is newer.
    while (position_history_.size() > 1 && now - position_history_[1].first >= std::chrono::seconds(1))
        position_history_.pop_front();
}

std::vector<int64_t> kafka_relay::settled_positions() const {
    // A second back: what the consumer had read by then was posted to the shards and has
    // reached the sessions' queues since, so a session with nothing queued had it all.
    const auto now = std::chrono::steady_clock::now();
    sluice::mutex_lock lock(positions_mu_);
    const std::vector<int64_t>* settled = &start_positions_;
    for (const auto& [at, positions] : position_history_) {
        if (now - at < std::chrono::seconds(1)) break;
        settled = &positions;
    }
    return *settled;
}

void kafka_relay::consume() {
    const unsigned shards = broker_.shard_count();
    std::vector<int64_t> positions = start_positions_;
    auto next_note = std::chrono::steady_clock::now();
    while (!stopping_.load()) {
        if (std::chrono::steady_clock::now() >= next_note) {
            note_positions(positions);
            next_note = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
        }
        auto r = poll_relayed(consumer_, opts_.messages_topic, "consumer", [&](int32_t partition, int64_t offset) {
            if (partition >= 0 && static_cast<size_t>(partition) < positions.size())
                positions[static_cast<size_t>(partition)] = offset + 1;
        });
        if (!r) continue;
        if (r->relayed.node == node_) continue;  // our own, routed here when it was published
        auto msg = std::const_pointer_cast<broker::message>(
            broker::persistence::to_message(std::move(r->relayed.message), broker::broker::monotonic_ms()));
        msg->from_other_node = true;
        msg->relay_partition = r->partition;
        msg->relay_offset = r->offset;
        ++received_;
        // One shard per MQTT topic keeps a topic's messages in order here too.
        const unsigned shard = partition_of(msg->topic, shards);
        broker::broker& b = broker_;
        b.post(shard, [&b, shard, msg = broker::message_ptr(std::move(msg))] { b.get_shard(shard).publish(msg); });
    }
}

void kafka_relay::forward(const broker::message_ptr& msg, const broker::ack_barrier_ptr& barrier) {
    if (stopping_.load()) {
        if (barrier) barrier->fail();
        return;
    }
    std::string value =
        encode(relayed_message{node_, broker::persistence::to_record(*msg, broker::broker::monotonic_ms())});
    auto done = [this, barrier](result<uint64_t> r) {
        if (r) {
            ++forwarded_;
        } else {
            ++forward_failures_;
            if (barrier) barrier->fail();
        }
    };
    auto kept_done = [this, barrier](result<uint64_t> r) {
        if (r) return;
        ++forward_failures_;
        if (barrier) barrier->fail();
    };
    bus::message m;
    m.receive_time_ms = unix_ms();
    m.client_id = msg->topic;  // the record's key
    m.topic = msg->topic;
    m.qos = msg->qos;
    if (msg->retain) {
        bus::message kept = m;
        if (!msg->payload.empty()) kept.payload = value;  // empty: clears the topic
        retained_->append(partition_of(msg->topic, retained_->partitions()), std::move(kept), kept_done);
    }
    m.payload = std::move(value);
    messages_->append(partition_of(msg->topic, messages_->partitions()), std::move(m), done);
}

void kafka_relay::shared_group_added(const std::string& filter, const broker::ack_barrier_ptr& applied) {
    sluice::mutex_lock lock(groups_mu_);
    auto& waiting = wanted_groups_[filter];
    if (applied) waiting.push_back(applied);
    groups_cv_.notify_all();
}

void kafka_relay::shared_group_removed(const std::string& filter) {
    sluice::mutex_lock lock(groups_mu_);
    wanted_groups_.erase(filter);
    groups_cv_.notify_all();
}

// Starts and stops the shared groups' consumers as the broker's groups come and go, off the
// event loops (joining and leaving a Kafka group blocks). A SUBACK waiting for a group is
// released once its consumer has started (or failed to: the subscription then stays
// balanced among this node's members only until the next attempt, logged).
void kafka_relay::manage_shared_groups() {
    sluice::mutex_lock lock(groups_mu_);
    while (!stopping_.load()) {
        std::string to_start;
        std::string to_stop;
        for (auto& [filter, waiting] : wanted_groups_) {
            if (running_groups_.count(filter) == 0) {
                to_start = filter;
                break;
            }
        }
        for (auto& [filter, consumer] : running_groups_) {
            if (wanted_groups_.count(filter) == 0) {
                to_stop = filter;
                break;
            }
        }
        if (!to_stop.empty()) {
            std::unique_ptr<shared_group_consumer> gone = std::move(running_groups_[to_stop]);
            running_groups_.erase(to_stop);
            lock.unlock();
            shared_routed_gone_ += gone->routed();
            gone.reset();  // leaves the Kafka group
            SLUICE_INFO(k_log, "shared group %s: no member on this node any more", to_stop.c_str());
            lock.lock();
            continue;
        }
        if (!to_start.empty()) {
            lock.unlock();
            auto started = shared_group_consumer::start(broker_, opts_, to_start, messages_->partitions());
            lock.lock();
            auto it = wanted_groups_.find(to_start);
            if (it != wanted_groups_.end()) it->second.clear();  // release the SUBACKs
            if (started) {
                running_groups_[to_start] = std::move(started).value();
                continue;
            }
            SLUICE_ERROR(k_log, "shared group %s cannot join Kafka (%s); retrying in 1 s", to_start.c_str(),
                         started.error().message().c_str());
            lock.wait_until(groups_cv_, std::chrono::steady_clock::now() + std::chrono::seconds(1));
            continue;
        }
        lock.wait_until(groups_cv_, std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
    }
}

void kafka_relay::session_saved(const broker::persist::session_record& record, bool caught_up) {
    if (sessions_) sessions_->saved(record, caught_up);
}

void kafka_relay::session_ended(const std::string& client_id) {
    if (sessions_) sessions_->ended(client_id);
}

void kafka_relay::session_caught_up(const std::string& client_id) {
    if (sessions_) sessions_->caught_up(client_id);
}

std::optional<broker::persist::session_record> kafka_relay::claim_session(const std::string& client_id,
                                                                          unsigned shard) {
    return sessions_ ? sessions_->claim(client_id, shard) : std::nullopt;
}

void kafka_relay::stop() {
    if (stopping_.exchange(true)) return;
    if (sessions_) sessions_->stop();
    {
        sluice::mutex_lock lock(groups_mu_);
        groups_cv_.notify_all();
    }
    if (groups_thread_.joinable()) groups_thread_.join();
    {
        std::map<std::string, std::unique_ptr<shared_group_consumer>> running;
        {
            sluice::mutex_lock lock(groups_mu_);
            running.swap(running_groups_);
            wanted_groups_.clear();
        }
        running.clear();  // each leaves its Kafka group
    }
    if (consumer_thread_.joinable()) consumer_thread_.join();
    if (consumer_ != nullptr) {
        rd_kafka_consumer_close(consumer_);
        rd_kafka_destroy(consumer_);
        consumer_ = nullptr;
    }
    if (messages_) messages_->stop();
    if (retained_) retained_->stop();
}

kafka_relay::stats kafka_relay::get_stats() const {
    stats s{forwarded_.load(), forward_failures_.load(), received_.load(), retained_loaded_.load()};
    s.shared_routed = shared_routed_gone_.load();
    if (sessions_) {
        const auto d = sessions_->get_stats();
        s.sessions_known = d.known;
        s.sessions_held = d.held;
    }
    sluice::mutex_lock lock(groups_mu_);
    for (const auto& [filter, consumer] : running_groups_) {
        s.shared_routed += consumer->routed();
        s.shared_partitions += consumer->partitions_owned();
        ++s.shared_groups;
    }
    return s;
}

}  // namespace sluice::cluster
