// SPDX-License-Identifier: Apache-2.0
#include "broker/broker.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>

#include "broker/shard.h"

namespace sluice::broker {

broker::broker(broker_options options, unsigned shards, poster post, ingest_hook ingest)
    : options_(options), post_(std::move(post)), ingest_(std::move(ingest)) {
    SLUICE_CHECK(shards > 0 && shards < 65536, "bad shard count %u", shards);
    for (unsigned i = 0; i < shards; ++i) shards_.push_back(std::make_unique<shard>(*this, i));
    // Assigned client ids must not collide across restarts of the same data dir: mix
    // the start time and pid into a prefix.
    auto now = std::chrono::system_clock::now().time_since_epoch().count();
    char prefix[48];
    std::snprintf(prefix, sizeof prefix, "sluice-%llx-%x-", static_cast<unsigned long long>(now) & 0xffffffffffULL,
                  static_cast<unsigned>(::getpid()));
    id_prefix_ = prefix;
}

broker::~broker() = default;

unsigned broker::shard_of_client(std::string_view client_id) const {
    return static_cast<unsigned>(std::hash<std::string_view>{}(client_id) % shards_.size());
}

bool broker::assign_client_id(mqtt::connect& c) {
    if (!c.client_id.empty()) return false;
    bool allowed = c.protocol == mqtt::version::v5 || (c.clean_start && options_.allow_zero_length_client_id);
    if (!allowed) return false;
    c.client_id = id_prefix_ + std::to_string(next_assigned_id_.fetch_add(1, std::memory_order_relaxed));
    return true;
}

void broker::store_retained(const message_ptr& msg) {
    std::lock_guard<std::mutex> lock(retained_mutex_);
    if (msg->payload.empty()) {
        retained_.erase(msg->topic);
    } else {
        retained_.set(msg->topic, msg);
    }
}

void broker::retained_matching(std::string_view filter, std::vector<message_ptr>& out) const {
    std::lock_guard<std::mutex> lock(retained_mutex_);
    retained_.match(filter, [&](std::string_view, const message_ptr& m) { out.push_back(m); });
}

size_t broker::retained_count() const {
    std::lock_guard<std::mutex> lock(retained_mutex_);
    return retained_.size();
}

broker::totals broker::get_totals() const {
    totals t{};
    for (const auto& s : shards_) {
        const auto& st = s->stats();
        auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
        t.connections_current += v(st.connections_current);
        t.connections_total += v(st.connections_total);
        t.sessions_current += v(st.sessions_current);
        t.messages_received += v(st.messages_received);
        t.messages_sent += v(st.messages_sent);
        t.bytes_received += v(st.bytes_received);
        t.dropped_qos0_slow_subscriber += v(st.dropped_qos0_slow_subscriber);
        t.dropped_qos0_offline += v(st.dropped_qos0_offline);
        t.dropped_queue_full += v(st.dropped_queue_full);
        t.dropped_too_large += v(st.dropped_too_large);
        t.dropped_expired += v(st.dropped_expired);
        t.malformed_packets += v(st.malformed_packets);
        t.protocol_errors += v(st.protocol_errors);
        t.ingest_appended += v(st.ingest_appended);
        t.ingest_failed += v(st.ingest_failed);
        t.ingest_quota_refused += v(st.ingest_quota_refused);
        t.ingest_paused += v(st.ingest_paused);
        t.wills_published += v(st.wills_published);
        t.sessions_expired += v(st.sessions_expired);
        t.keep_alive_timeouts += v(st.keep_alive_timeouts);
        t.takeovers += v(st.takeovers);
        t.subscriptions += v(st.subscriptions);
    }
    t.retained_messages = retained_count();
    return t;
}

}  // namespace sluice::broker
