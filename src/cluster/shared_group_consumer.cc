// SPDX-License-Identifier: Apache-2.0
#include "cluster/shared_group_consumer.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <librdkafka/rdkafka.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/persistence.h"
#include "broker/shard.h"
#include "bus/errc.h"
#include "cluster/kafka_consumer.h"
#include "cluster/relay_record.h"
#include "mqtt/topic.h"

namespace sluice::cluster {
namespace {

constexpr const char* k_log = "cluster";

void rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque);

}  // namespace

std::string shared_group_consumer::group_id(const kafka_relay_options& o, const std::string& shared_filter) {
    return "sluice-share:" + o.messages_topic + ":" + shared_filter;
}

shared_group_consumer::shared_group_consumer(broker::broker& b, const kafka_relay_options& o, std::string shared_filter)
    : broker_(b), opts_(o), shared_filter_(std::move(shared_filter)) {
    if (auto parsed = mqtt::parse_shared(shared_filter_)) filter_ = std::string(parsed->filter);
}

result<std::unique_ptr<shared_group_consumer>> shared_group_consumer::start(broker::broker& b,
                                                                            const kafka_relay_options& o,
                                                                            const std::string& shared_filter,
                                                                            uint32_t partitions) {
    if (!mqtt::parse_shared(shared_filter)) return make_error_code(bus::errc::invalid_argument);
    std::unique_ptr<shared_group_consumer> c(new shared_group_consumer(b, o, shared_filter));
    c->rk_ = make_consumer(
        o,
        {
            {"client.id", o.kafka.client_id + "-share"},
            {"group.id", group_id(o, shared_filter)},
            {"partition.assignment.strategy", "roundrobin"},  // eager; partitions spread evenly
            {"enable.auto.commit", "false"},                  // commit_positions(): with the time
            {"enable.auto.offset.store", "false"},
            {"auto.offset.reset", "latest"},
            {"session.timeout.ms", "10000"},  // a dead node's partitions move within ~10 s
            {"heartbeat.interval.ms", "1000"},
            {"fetch.wait.max.ms", "20"},
        },
        [](rd_kafka_conf_t* conf, void* self) {
            rd_kafka_conf_set_opaque(conf, self);
            rd_kafka_conf_set_rebalance_cb(conf, rebalance_trampoline);
        },
        c.get());
    if (c->rk_ == nullptr) return make_error_code(bus::errc::invalid_argument);
    c->floor_.assign(partitions, 0);
    for (uint32_t p = 0; p < partitions; ++p) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(c->rk_, o.messages_topic.c_str(),
                                                                 static_cast<int32_t>(p), &lo, &hi, 10000);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            SLUICE_ERROR(k_log, "end of %s/%u for %s: %s", o.messages_topic.c_str(), p, shared_filter.c_str(),
                         rd_kafka_err2str(e));
            return make_error_code(bus::errc::io_error);  // the destructor closes rk_
        }
        c->floor_[p] = hi;
    }
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, o.messages_topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        SLUICE_ERROR(k_log, "cannot join %s: %s", group_id(o, shared_filter).c_str(), rd_kafka_err2str(e));
        return make_error_code(bus::errc::io_error);
    }
    c->thread_ = std::thread([raw = c.get()] { raw->consume(); });
    SLUICE_INFO(k_log, "shared group %s balanced across nodes (Kafka group %s)", shared_filter.c_str(),
                group_id(o, shared_filter).c_str());
    return c;
}

shared_group_consumer::~shared_group_consumer() {
    stopping_.store(true);
    if (thread_.joinable()) thread_.join();
    wait_routed();
    if (rk_ != nullptr) {
        rd_kafka_consumer_close(rk_);  // commits what was routed; runs the revoke
        rd_kafka_destroy(rk_);
    }
}

namespace {

void rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) {
    static_cast<shared_group_consumer*>(opaque)->on_rebalance(rk, err, parts);
}

}  // namespace

void shared_group_consumer::on_rebalance(rd_kafka_s* rk, int err, void* partitions) {
    auto* parts = static_cast<rd_kafka_topic_partition_list_t*>(partitions);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (rd_kafka_committed(rk, parts, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            SLUICE_WARN(k_log, "%s: committed offsets unavailable; starting at the ends", shared_filter_.c_str());
        const int64_t now = unix_ms();
        int resumed = 0;
        for (int i = 0; i < parts->cnt; ++i) {
            rd_kafka_topic_partition_t& tp = parts->elems[i];
            const auto p = static_cast<size_t>(tp.partition);
            int64_t committed_at = 0;
            if (tp.metadata != nullptr && tp.metadata_size > 0) {
                const std::string stamp(static_cast<const char*>(tp.metadata), tp.metadata_size);
                committed_at = std::strtoll(stamp.c_str(), nullptr, 10);
            }
            if (tp.offset >= 0 && now - committed_at <= k_fresh_commit_ms) {
                ++resumed;  // where the group left it (see the header)
            } else {
                tp.offset = p < floor_.size() ? floor_[p] : RD_KAFKA_OFFSET_END;
            }
            // Held here before: not before what this node routed (its last commit may have
            // been refused in the rebalance; whoever held it since committed further).
            if (auto before = routed_before_.find(tp.partition); before != routed_before_.end())
                tp.offset = std::max(tp.offset, before->second);
            next_[tp.partition] = tp.offset;
        }
        rd_kafka_assign(rk, parts);
        commit_positions(rk, true);  // the group knows where this node starts from its first moment
        owned_.store(static_cast<uint32_t>(parts->cnt));
        SLUICE_INFO(k_log, "shared group %s: this node takes %d partitions of %s (%d where the group left them)",
                    shared_filter_.c_str(), parts->cnt, opts_.messages_topic.c_str(), resumed);
    } else {
        wait_routed();
        commit_positions(rk, true);  // what was routed here, before another node takes over
        rd_kafka_assign(rk, nullptr);
        {
            sluice::mutex_lock lock(ledger_->mu);
            for (const auto& [partition, offset] : next_) {
                auto unrouted = ledger_->first_unrouted.find(partition);
                routed_before_[partition] =
                    unrouted == ledger_->first_unrouted.end() ? offset : std::min(offset, unrouted->second);
            }
            ledger_->first_unrouted.clear();
        }
        next_.clear();
        owned_.store(0);
    }
}

void shared_group_consumer::wait_routed() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (ledger_->pending.load() > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void shared_group_consumer::commit_positions(rd_kafka_s* rk, bool sync) {
    if (next_.empty()) return;
    const std::string stamp = std::to_string(unix_ms());
    std::map<int32_t, int64_t> unrouted;
    {
        sluice::mutex_lock lock(ledger_->mu);
        unrouted = ledger_->first_unrouted;
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(next_.size()));
    for (auto [partition, offset] : next_) {
        if (auto u = unrouted.find(partition); u != unrouted.end()) offset = std::min(offset, u->second);
        if (offset < 0) continue;
        rd_kafka_topic_partition_t* tp =
            rd_kafka_topic_partition_list_add(list, opts_.messages_topic.c_str(), partition);
        tp->offset = offset;
        tp->metadata = std::malloc(stamp.size());  // freed with the list
        std::memcpy(tp->metadata, stamp.data(), stamp.size());
        tp->metadata_size = stamp.size();
    }
    if (list->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(rk, list, sync ? 0 : 1);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            SLUICE_INFO(k_log, "%s: commit: %s", shared_filter_.c_str(), rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

void shared_group_consumer::consume() {
    const unsigned shards = broker_.shard_count();
    auto next_commit = std::chrono::steady_clock::now();
    while (!stopping_.load()) {
        if (std::chrono::steady_clock::now() >= next_commit) {
            commit_positions(rk_, false);
            next_commit = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
        auto r = poll_relayed(rk_, opts_.messages_topic, shared_filter_.c_str(),
                              [this](int32_t partition, int64_t offset) { next_[partition] = offset + 1; });
        if (!r) continue;
        const int32_t partition = r->partition;
        const int64_t offset = r->offset;
        if (!mqtt::topic_matches(filter_, r->relayed.message.topic)) continue;
        auto msg = std::const_pointer_cast<broker::message>(
            broker::persistence::to_message(std::move(r->relayed.message), broker::broker::monotonic_ms()));
        msg->from_other_node = true;
        msg->shared_group = shared_filter_;
        ++routed_;
        const unsigned shard = partition_of(msg->topic, shards);
        broker::broker& b = broker_;
        ++ledger_->pending;
        b.post(shard, [&b, shard, msg = broker::message_ptr(std::move(msg)), l = ledger_, partition, offset] {
            if (!b.get_shard(shard).publish_to_group(msg)) {
                sluice::mutex_lock lock(l->mu);
                auto [at, added] = l->first_unrouted.try_emplace(partition, offset);
                if (!added) at->second = std::min(at->second, offset);  // shards run in no common order
            }
            --l->pending;
        });
    }
}

}  // namespace sluice::cluster
