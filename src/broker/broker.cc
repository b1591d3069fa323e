// SPDX-License-Identifier: Apache-2.0
#include "broker/broker.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>

#include "base/log.h"
#include "broker/persist/state_store.h"
#include "broker/shard.h"

namespace sluice::broker {

broker::broker(broker_options options, unsigned shards, poster post, ingest_hook ingest)
    : options_(options),
      post_(std::move(post)),
      ingest_(std::move(ingest)),
      budget_(options.ingest_max_inflight_bytes, options.ingest_max_inflight_bytes_per_connection) {
    SLUICE_CHECK(shards > 0 && shards < 65536, "bad shard count %u", shards);
    for (unsigned i = 0; i < shards; ++i)
        shards_.push_back(std::make_unique<shard>(*this, i));
    // Assigned client ids must not collide across restarts of the same data dir: mix
    // the start time and pid into a prefix.
    auto now = std::chrono::system_clock::now().time_since_epoch().count();
    char prefix[48];
    std::snprintf(prefix, sizeof prefix, "sluice-%llx-%x-", static_cast<unsigned long long>(now) & 0xffffffffffULL,
                  static_cast<unsigned>(::getpid()));
    id_prefix_ = prefix;
}

broker::~broker() = default;

int64_t broker::monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

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

void broker::store_retained(const message_ptr& msg, const ack_barrier_ptr& barrier) {
    std::lock_guard<std::mutex> lock(retained_mutex_);
    if (msg->payload.empty()) {
        if (retained_.erase(msg->topic)) {
            persistence_.erase_retained(msg->topic);
            persistence_.hold(barrier);
        }
    } else {
        retained_.set(msg->topic, msg);
        persistence_.save_retained(*msg, monotonic_ms());
        persistence_.hold(barrier);
    }
}

std::pair<size_t, size_t> broker::restore_from(persist::state_store& store) {
    persistence_ = persistence(&store);
    int64_t now = monotonic_ms();
    std::vector<persist::session_record> sessions;
    std::map<std::string, std::vector<persist::session_message_record>> messages;
    size_t retained = 0;
    store.load([&](persist::kind k, std::string_view key, std::string_view value) {
        switch (k) {
            case persist::kind::session: {
                auto r = persist::decode_session_record(value);
                if (r) {
                    sessions.push_back(std::move(r).value());
                } else {
                    SLUICE_ERROR("broker", "ignoring undecodable session record %.*s: %s", static_cast<int>(key.size()),
                                 key.data(), r.error().message().c_str());
                }
                break;
            }
            case persist::kind::session_message: {
                std::string client;
                uint64_t order = 0;
                auto r = persist::decode_session_message_record(value);
                if (persist::parse_session_message_key(key, client, order) && r) {
                    messages[client].push_back(std::move(r).value());
                } else {
                    SLUICE_ERROR("broker", "ignoring undecodable queued message record");
                }
                break;
            }
            case persist::kind::retained: {
                auto r = persist::decode_message_record(value);
                if (!r) {
                    SLUICE_ERROR("broker", "ignoring undecodable retained message %.*s", static_cast<int>(key.size()),
                                 key.data());
                    break;
                }
                auto m = persistence::to_message(std::move(r).value(), now);
                if (m->expires_at_ms != 0 && m->expires_at_ms <= now) break;
                std::lock_guard<std::mutex> lock(retained_mutex_);
                retained_.set(m->topic, m);
                ++retained;
                break;
            }
            default:
                break;  // a kind from a newer Sluice: ignore
        }
    });
    for (auto& s : sessions) {
        auto& msgs = messages[s.client_id];
        unsigned target = shard_of_client(s.client_id);
        shards_[target]->restore(std::move(s), std::move(msgs), now);
    }
    return {sessions.size(), retained};
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
        t.slow_subscriber_disconnects += v(st.slow_subscriber_disconnects);
        t.partial_packet_timeouts += v(st.partial_packet_timeouts);
        t.input_budget_closes += v(st.input_budget_closes);
        t.topic_limit_refusals += v(st.topic_limit_refusals);
        t.dropped_too_large += v(st.dropped_too_large);
        t.dropped_expired += v(st.dropped_expired);
        t.publish_rate_limited += v(st.publish_rate_limited);
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
