// SPDX-License-Identifier: Apache-2.0
#include "cluster/session_directory.h"

#include <algorithm>
#include <chrono>
#include <map>

#include <librdkafka/rdkafka.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/persistence.h"
#include "broker/shard.h"
#include "bus/bus.h"
#include "bus/errc.h"
#include "cluster/kafka_consumer.h"
#include "mqtt/topic.h"

namespace sluice::cluster {
namespace {

constexpr const char* k_log = "cluster";
constexpr auto k_replay_timeout = std::chrono::seconds(60);

rd_kafka_t* plain_consumer(const kafka_relay_options& o, uint64_t node, const char* what, bool partition_eof) {
    return make_consumer(o,
                         {
                             {"client.id", o.kafka.client_id + "-sessions"},
                             {"group.id", "sluice-" + std::string(what) + "-" + std::to_string(node)},  // never joined
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"enable.partition.eof", partition_eof ? "true" : "false"},
                             {"fetch.wait.max.ms", "20"},
                         });
}

// The session has expired by now (disconnected, or last written, longer ago than its expiry).
bool expired(const cluster_session& s, int64_t now_ms) {
    const uint32_t expiry = s.session.expiry_interval;
    if (expiry == 0xFFFFFFFF) return false;
    const int64_t since = s.session.disconnected_at_ms != 0 ? s.session.disconnected_at_ms : s.written_at_ms;
    return now_ms - since > static_cast<int64_t>(expiry) * 1000;
}

}  // namespace

session_directory::session_directory(broker::broker& b, const kafka_relay_options& o, uint64_t node,
                                     uint32_t partitions, positions_fn settled)
    : broker_(b), opts_(o), node_(node), partitions_(partitions), settled_(std::move(settled)) {}

session_directory::~session_directory() {
    stop();
}

result<std::unique_ptr<session_directory>> session_directory::start(broker::broker& b, const kafka_relay_options& o,
                                                                    uint64_t node, uint32_t message_partitions,
                                                                    positions_fn settled) {
    std::unique_ptr<session_directory> d(new session_directory(b, o, node, message_partitions, std::move(settled)));
    if (auto opened = d->open(); !opened) return opened.error();
    return d;
}

result<void> session_directory::open() {
    bus::kafka_options ko = opts_.kafka;
    ko.topic = opts_.sessions_topic;
    ko.client_id = opts_.kafka.client_id + "-sessions";
    auto producer = bus::open_kafka(ko);
    if (!producer) {
        SLUICE_ERROR(k_log, "cannot produce to Kafka topic %s: %s", opts_.sessions_topic.c_str(),
                     producer.error().message().c_str());
        return producer.error();
    }
    producer_ = std::move(producer).value();
    follower_ = plain_consumer(opts_, node_, "sessions", true);
    if (follower_ == nullptr) return make_error_code(bus::errc::invalid_argument);
    const uint32_t partitions = producer_->partitions();
    if (auto a = assign_all(follower_, opts_.sessions_topic, partitions, RD_KAFKA_OFFSET_BEGINNING); !a)
        return a.error();
    // The whole topic first, so that a client resuming right after the start is known.
    const uint32_t at_end =
        read_to_end(follower_, partitions, opts_.retained_load_timeout,
                    [this](const std::string& id, std::string_view value) { apply(id, value, true); });
    if (at_end < partitions) {
        SLUICE_WARN(k_log,
                    "read only %u of %u partitions of %s in %lld ms: sessions held by other nodes may not "
                    "resume here until their next update",
                    at_end, partitions, opts_.sessions_topic.c_str(),
                    static_cast<long long>(opts_.retained_load_timeout.count()));
    }
    // Sessions this node held before it stopped are still its own; those another node took
    // (or ended) meanwhile end here (the shards have them from the state journal).
    std::map<unsigned, std::vector<std::string>> taken;
    size_t held = 0;
    {
        sluice::mutex_lock lock(mu_);
        for (const auto& [id, s] : known_) {
            if (s.owner == node_ && !s.ended) {
                held_[id] = held_session{s.epoch, s.positions, s.session};
                ++held;
            } else if (s.owner != node_) {
                taken[broker_.shard_of_client(id)].push_back(id);
            }
        }
    }
    for (auto& entry : taken) {
        broker::broker& b = broker_;
        const unsigned shard = entry.first;
        b.post(shard, [&b, shard, ids = std::move(entry.second)] {
            for (const auto& id : ids)
                b.get_shard(shard).session_claimed_elsewhere(id);
        });
    }
    follower_thread_ = std::thread([this] { follow(); });
    replay_thread_ = std::thread([this] { replay_loop(); });
    SLUICE_INFO(k_log, "sessions across nodes through %s: %zu known, %zu held by this node",
                opts_.sessions_topic.c_str(), get_stats().known, held);
    return ok();
}

void session_directory::stop() {
    if (stopping_.exchange(true)) return;
    {
        sluice::mutex_lock lock(mu_);
        replays_cv_.notify_all();
    }
    if (follower_thread_.joinable()) follower_thread_.join();
    if (replay_thread_.joinable()) replay_thread_.join();
    if (follower_ != nullptr) {
        rd_kafka_consumer_close(follower_);
        rd_kafka_destroy(follower_);
        follower_ = nullptr;
    }
    if (producer_) producer_->stop();
}

void session_directory::follow() {
    while (!stopping_.load()) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(follower_, 100);
        if (m == nullptr) continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key != nullptr) {
            apply(std::string(static_cast<const char*>(m->key), m->key_len),
                  std::string_view(static_cast<const char*>(m->payload), m->len), false);
        }
        rd_kafka_message_destroy(m);
    }
}

void session_directory::apply(const std::string& client_id, std::string_view value, bool initial) {
    sluice::mutex_lock lock(mu_);
    if (value.empty()) {  // a tombstone (written by hand, or an operator's clean-up)
        known_.erase(client_id);
        return;
    }
    auto decoded = decode_cluster_session(value);
    if (!decoded) {
        SLUICE_WARN(k_log, "ignoring an undecodable session of %s in %s", client_id.c_str(),
                    opts_.sessions_topic.c_str());
        return;
    }
    cluster_session& s = known_[client_id] = std::move(decoded).value();
    if (initial || s.owner == node_) return;
    auto held = held_.find(client_id);
    if (held == held_.end()) return;
    if (s.epoch < held->second.epoch || (s.epoch == held->second.epoch && s.owner < node_)) return;  // older
    held_.erase(held);
    // Another node took the session (or a clean start ended it there): this copy ends.
    const unsigned shard = broker_.shard_of_client(client_id);
    broker::broker& b = broker_;
    b.post(shard, [&b, shard, client_id] { b.get_shard(shard).session_claimed_elsewhere(client_id); });
}

void session_directory::produce(const std::string& client_id, const cluster_session& s) {
    bus::message m;
    m.receive_time_ms = unix_ms();
    m.client_id = client_id;  // the record's key
    m.topic = opts_.sessions_topic;
    m.payload = encode(s);
    producer_->append(partition_of(client_id, producer_->partitions()), std::move(m), [client_id](result<uint64_t> r) {
        if (!r)
            SLUICE_WARN(k_log, "the session of %s did not reach Kafka: %s", client_id.c_str(),
                        r.error().message().c_str());
    });
}

void session_directory::write_held(const std::string& client_id, const held_session& h) {
    cluster_session s;
    s.owner = node_;
    s.epoch = h.epoch;
    s.written_at_ms = unix_ms();
    s.positions = h.positions;
    s.session = h.session;
    known_[client_id] = s;
    produce(client_id, s);
}

void session_directory::saved(const broker::persist::session_record& r, bool caught_up) {
    if (stopping_.load()) return;
    sluice::mutex_lock lock(mu_);
    auto it = held_.find(r.client_id);
    if (it == held_.end()) {  // this node takes the session (new here): a higher epoch
        auto known = known_.find(r.client_id);
        held_session h;
        h.epoch = known == known_.end() ? 1 : known->second.epoch + 1;
        h.positions = settled_();
        it = held_.emplace(r.client_id, std::move(h)).first;
    } else if (caught_up && replaying_.count(r.client_id) == 0) {
        it->second.positions = settled_();
    }
    it->second.session = r;
    write_held(r.client_id, it->second);
}

void session_directory::caught_up(const std::string& client_id) {
    if (stopping_.load()) return;
    sluice::mutex_lock lock(mu_);
    auto it = held_.find(client_id);
    if (it == held_.end() || replaying_.count(client_id) != 0) return;
    std::vector<int64_t> now = settled_();
    if (now == it->second.positions) return;
    it->second.positions = std::move(now);
    write_held(client_id, it->second);
}

void session_directory::ended(const std::string& client_id) {
    if (stopping_.load()) return;
    sluice::mutex_lock lock(mu_);
    cluster_session s;
    s.owner = node_;
    s.ended = true;
    s.written_at_ms = unix_ms();
    if (auto it = held_.find(client_id); it != held_.end()) {
        s.epoch = it->second.epoch;
        held_.erase(it);
    } else if (auto known = known_.find(client_id); known != known_.end() && !known->second.ended) {
        s.epoch = known->second.epoch + 1;  // another node's session, ended by a clean start here
    } else {
        return;  // not a session of the cluster's
    }
    known_[client_id] = s;
    produce(client_id, s);
}

std::optional<broker::persist::session_record> session_directory::claim(const std::string& client_id, unsigned shard) {
    if (stopping_.load()) return std::nullopt;
    sluice::mutex_lock lock(mu_);
    auto known = known_.find(client_id);
    if (known == known_.end() || known->second.ended) return std::nullopt;
    const cluster_session former = known->second;
    if (expired(former, unix_ms())) return std::nullopt;
    held_session h{former.epoch + 1, former.positions, former.session};
    if (h.positions.size() != partitions_) {
        SLUICE_WARN(k_log,
                    "the session of %s has positions for %zu partitions, the messages topic has %u: "
                    "nothing is replayed",
                    client_id.c_str(), h.positions.size(), partitions_);
        h.positions = settled_();
    }
    replay_job job;
    job.client_id = client_id;
    job.shard = shard;
    job.from = h.positions;
    for (const auto& sub : former.session.subscriptions) {
        if (sub.qos > 0 && !mqtt::parse_shared(sub.filter)) job.filters.push_back(sub.filter);
    }
    write_held(client_id, h);
    held_[client_id] = std::move(h);
    ++claimed_;
    SLUICE_INFO(k_log, "resuming the session of %s from node %016llx (epoch %llu)", client_id.c_str(),
                static_cast<unsigned long long>(former.owner), static_cast<unsigned long long>(former.epoch + 1));
    ++replaying_[client_id];  // even with nothing to replay: the shard waits for replay_done
    replays_.push_back(std::move(job));
    replays_cv_.notify_all();
    return former.session;
}

void session_directory::replay_loop() {
    sluice::mutex_lock lock(mu_);
    while (!stopping_.load()) {
        if (replays_.empty()) {
            lock.wait_until(replays_cv_, std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
            continue;
        }
        replay_job job = std::move(replays_.front());
        replays_.pop_front();
        lock.unlock();
        replay(job);
        lock.lock();
        if (auto it = replaying_.find(job.client_id); it != replaying_.end() && --it->second == 0) replaying_.erase(it);
    }
}

// Reads the messages topic from the session's positions to where it ends now and hands the
// matching QoS 1/2 messages to the session's shard, in each partition's order.
void session_directory::replay(const replay_job& job) {
    broker::broker& b = broker_;
    rd_kafka_t* rk = plain_consumer(opts_, node_, "replay", false);
    if (rk == nullptr) {  // logged; the session must not wait for a replay that never comes
        b.post(job.shard, [&b, shard = job.shard, id = job.client_id, from = job.from] {
            b.get_shard(shard).replay_done(id, from);
        });
        return;
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions_));
    std::map<int32_t, int64_t> end;  // partitions still to read -> their end
    for (uint32_t p = 0; p < partitions_; ++p) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, opts_.messages_topic.c_str(), static_cast<int32_t>(p), &lo, &hi,
                                             10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            SLUICE_WARN(k_log, "replay for %s: no end for partition %u", job.client_id.c_str(), p);
            continue;
        }
        int64_t from = job.from[p];
        if (from < lo) {
            SLUICE_WARN(k_log,
                        "replay for %s: %s/%u starts at %lld, past the session's position %lld (retention): "
                        "%lld messages are gone",
                        job.client_id.c_str(), opts_.messages_topic.c_str(), p, static_cast<long long>(lo),
                        static_cast<long long>(from), static_cast<long long>(lo - from));
            from = lo;
        }
        if (from >= hi) continue;
        rd_kafka_topic_partition_list_add(list, opts_.messages_topic.c_str(), static_cast<int32_t>(p))->offset = from;
        end[static_cast<int32_t>(p)] = hi;
    }
    std::vector<int64_t> replayed_to(job.from);  // where the replay stops, per partition
    for (const auto& [p, hi] : end)
        replayed_to[static_cast<size_t>(p)] = hi;
    if (!end.empty() && !job.filters.empty()) rd_kafka_assign(rk, list);
    if (job.filters.empty()) end.clear();
    rd_kafka_topic_partition_list_destroy(list);
    uint64_t handed = 0;
    const auto deadline = std::chrono::steady_clock::now() + k_replay_timeout;
    while (!end.empty() && !stopping_.load() && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (m == nullptr) continue;
        auto e = end.find(m->partition);
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || e == end.end()) {
            rd_kafka_message_destroy(m);
            continue;
        }
        const bool last = m->offset + 1 >= e->second;
        auto r = m->offset < e->second ? decode_relayed(std::string_view(static_cast<const char*>(m->payload), m->len))
                                       : result<relayed_message>(make_error_code(bus::errc::invalid_argument));
        rd_kafka_message_destroy(m);
        if (last) end.erase(e);
        if (!r || r->message.qos == 0) continue;
        const bool wanted = std::any_of(job.filters.begin(), job.filters.end(),
                                        [&](const std::string& f) { return mqtt::topic_matches(f, r->message.topic); });
        if (!wanted) continue;
        auto msg = broker::persistence::to_message(std::move(r->message), broker::broker::monotonic_ms());
        b.post(job.shard,
               [&b, shard = job.shard, id = job.client_id, msg] { b.get_shard(shard).deliver_replayed(id, msg); });
        ++handed;
    }
    if (!end.empty())
        SLUICE_WARN(k_log, "replay for %s stopped before the end of %zu partitions", job.client_id.c_str(), end.size());
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    b.post(job.shard, [&b, shard = job.shard, id = job.client_id, replayed_to = std::move(replayed_to)] {
        b.get_shard(shard).replay_done(id, replayed_to);
    });
    replayed_ += handed;
    SLUICE_INFO(k_log, "replayed %llu messages to the session of %s", static_cast<unsigned long long>(handed),
                job.client_id.c_str());
}

session_directory::stats session_directory::get_stats() const {
    stats s;
    sluice::mutex_lock lock(mu_);
    for (const auto& [id, k] : known_)
        s.known += k.ended ? 0 : 1;
    s.held = held_.size();
    s.claimed = claimed_.load();
    s.replayed = replayed_.load();
    return s;
}

}  // namespace sluice::cluster
