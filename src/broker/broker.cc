// SPDX-License-Identifier: Apache-2.0
#include "broker/broker.h"

#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <unordered_set>

#include "base/log.h"
#include "broker/persist/state_store.h"
#include "broker/relay.h"
#include "broker/resend_window.h"
#include "broker/session_spool.h"
#include "broker/shard.h"
#include "bus/bus.h"
#include "mqtt/topic.h"

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

void broker::set_relay(relay* r) {
    sluice::mutex_lock lock(shared_groups_mutex_);
    relay_ = r;
    if (r == nullptr) return;
    for (const auto& [filter, members] : shared_group_members_)
        r->shared_group_added(filter, nullptr);
}

void broker::note_shared_member(const std::string& filter, int delta, const ack_barrier_ptr& applied) {
    if (!mqtt::parse_shared(filter)) return;
    sluice::mutex_lock lock(shared_groups_mutex_);
    if (delta > 0) {
        if (shared_group_members_[filter]++ == 0 && relay_ != nullptr) relay_->shared_group_added(filter, applied);
        return;
    }
    auto it = shared_group_members_.find(filter);
    if (it == shared_group_members_.end()) return;
    if (--it->second > 0) return;
    shared_group_members_.erase(it);
    if (relay_ != nullptr) relay_->shared_group_removed(filter);
}

void broker::store_retained(const message_ptr& msg, const ack_barrier_ptr& barrier) {
    sluice::mutex_lock lock(retained_mutex_);
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

std::pair<size_t, size_t> broker::restore_from(persist::state_store& store, spool_directory* spool) {
    persistence_ = persistence(&store);
    spool_ = spool;
    int64_t now = monotonic_ms();
    std::vector<persist::session_record> sessions;
    std::map<std::string, std::vector<persist::session_message_record>> messages;
    size_t retained = 0;
    resend_entries resend;
    std::map<uint32_t, uint64_t> resend_checkpoints;
    std::map<std::string, persist::spool_record, std::less<>> spools;
    store.load([&](persist::kind k, std::string_view key, std::string_view value) {
        switch (k) {
            case persist::kind::resend_entry: {
                std::string client;
                uint16_t slot = 0;
                auto r = persist::decode_resend_entry_record(value);
                if (persist::parse_resend_entry_key(key, client, slot) && r) resend[client].emplace_back(slot, *r);
                break;
            }
            case persist::kind::resend_checkpoint: {
                uint32_t partition = 0;
                auto r = persist::decode_resend_checkpoint_record(value);
                if (persist::parse_resend_checkpoint_key(key, partition) && r)
                    resend_checkpoints[partition] = r->next_offset;
                break;
            }
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
            case persist::kind::spool: {
                auto r = persist::decode_spool_record(value);
                if (r) {
                    spools.emplace(std::string(key), *r);
                } else {
                    SLUICE_ERROR("broker", "ignoring undecodable spool record of %.*s", static_cast<int>(key.size()),
                                 key.data());
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
                sluice::mutex_lock lock(retained_mutex_);
                retained_.set(m->topic, m);
                ++retained;
                break;
            }
            default:
                break;  // a kind from a newer Sluice: ignore
        }
    });
    std::unordered_set<uint64_t> live_spools;
    for (auto& s : sessions) {
        auto& msgs = messages[s.client_id];
        unsigned target = shard_of_client(s.client_id);
        const persist::spool_record* sp = nullptr;
        if (auto it = spools.find(s.client_id); it != spools.end()) {
            sp = &it->second;
            live_spools.insert(sp->file_id);
        }
        shards_[target]->restore(std::move(s), std::move(msgs), spool_ != nullptr ? sp : nullptr, now);
    }
    for (const auto& [client, r] : spools) {
        if (!live_spools.contains(r.file_id)) persistence_.erase_spool(client);  // its session is gone
    }
    if (spool_ != nullptr) spool_->remove_all_but(live_spools);
    restore_resend_windows(std::move(resend), std::move(resend_checkpoints));
    return {sessions.size(), retained};
}

void broker::restore_resend_windows(resend_entries&& entries, std::map<uint32_t, uint64_t>&& checkpoints) {
    // Entries of sessions that are gone (an erase raced with a late append) are dropped.
    size_t restored = 0;
    for (auto& [client_id, list] : entries) {
        session* s = shards_[shard_of_client(client_id)]->find_session(client_id);
        for (const auto& [slot, e] : list) {
            const uint16_t window = options_.resend_window;
            if (s == nullptr || window == 0 || slot != e.packet_id % window) {
                persistence_.erase_resend_entry(client_id, slot);  // gone, or the window size changed
                continue;
            }
            if (!s->resend) s->resend = std::make_unique<resend_window>(options_.resend_window);
            s->resend->record(e.packet_id, e.fingerprint, nullptr);
            ++restored;
        }
    }
    if (ingest_.log == nullptr || !resend_rule_durable()) return;
    // Replay what the log holds past each checkpoint: those appends may have been durable
    // in the log before their entries were in the store. Without a checkpoint (the first
    // start with this rule) nothing in the log has a packet id yet.
    size_t replayed = 0;
    uint64_t records = 0;
    for (uint32_t p = 0; p < ingest_.log->partitions(); ++p) {
        resend_checkpoints_.push_back(std::make_unique<resend_checkpoint>());
        const uint64_t end = ingest_.log->get_stats(p).durable_end;
        auto it = checkpoints.find(p);
        if (it != checkpoints.end() && it->second < end) {
            replayed += replay_log_into_windows(p, it->second);
            records += end - it->second;
        }
        {
            // No appends yet, so uncontended; taken because next_offset is guarded.
            resend_checkpoint& c = *resend_checkpoints_.back();
            sluice::mutex_lock lock(c.mutex);
            c.next_offset = end;
        }
        persistence_.save_resend_checkpoint(p, end);
    }
    SLUICE_INFO("broker", "resend windows: %zu entries from the state store, %zu packet ids from %llu log records",
                restored, replayed, static_cast<unsigned long long>(records));
}

size_t broker::replay_log_into_windows(uint32_t partition, uint64_t from) {
    bus::bus& log = *ingest_.log;
    const uint64_t end = log.get_stats(partition).durable_end;
    auto opened = log.open_reader(partition, from);
    if (!opened && opened.error() == make_error_code(bus::errc::not_found)) {
        opened =
            log.open_reader(partition, log.get_stats(partition).oldest_offset);  // already deleted: from the oldest
    }
    if (!opened) {
        SLUICE_WARN("broker",
                    "resend windows: cannot read partition %u from %llu (%s); resends of its last messages "
                    "may be stored twice",
                    partition, static_cast<unsigned long long>(from), opened.error().message().c_str());
        return 0;
    }
    auto& reader = **opened;
    size_t applied = 0;
    std::vector<bus::record> batch;
    while (reader.position() < end) {
        batch.clear();
        auto n = reader.poll(batch, 4096, std::chrono::milliseconds(100));
        if (!n || *n == 0) {
            SLUICE_WARN("broker", "resend windows: replay of partition %u stopped at %llu: %s", partition,
                        static_cast<unsigned long long>(reader.position()),
                        n ? "no record" : n.error().message().c_str());
            break;
        }
        for (const auto& r : batch) {
            if (r.msg.packet_id == 0) continue;
            session* s = shards_[shard_of_client(r.msg.client_id)]->find_session(r.msg.client_id);
            if (s == nullptr || !persistence::persistent(*s)) continue;
            if (!s->resend) s->resend = std::make_unique<resend_window>(options_.resend_window);
            const uint64_t fp = resend_fingerprint(r.msg.topic, r.msg.payload);
            s->resend->record(r.msg.packet_id, fp, nullptr);
            persistence_.save_resend_entry(r.msg.client_id, s->resend->slot_of(r.msg.packet_id), r.msg.packet_id, fp);
            ++applied;
        }
    }
    return applied;
}

void broker::note_released(uint64_t bytes, int64_t now_ms) {
    if (bytes == 0) return;
    released_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    released_at_ms_.store(now_ms, std::memory_order_relaxed);
}

void broker::return_memory(int64_t now_ms) {
    constexpr uint64_t k_trim_after_bytes = 16u << 20;
    constexpr int64_t k_settle_ms = 2000;  // the journal's writer drops its copies meanwhile
    if (released_bytes_.load(std::memory_order_relaxed) < k_trim_after_bytes) return;
    if (now_ms - released_at_ms_.load(std::memory_order_relaxed) < k_settle_ms) return;
    released_bytes_.store(0, std::memory_order_relaxed);
    // glibc keeps freed memory in its arenas; without this a process that once queued
    // gigabytes for offline sessions keeps that RSS after they are gone.
    ::malloc_trim(0);
}

void broker::detach_resend_store() {
    sluice::writer_lock lock(resend_store_mutex_);
    resend_store_detached_ = true;
}

void broker::note_appended(uint32_t partition, uint64_t offset, const resend_entry_ref* entry) {
    sluice::reader_lock detached_check(resend_store_mutex_);
    if (resend_store_detached_) return;
    if (entry != nullptr)
        persistence_.save_resend_entry(entry->client_id, entry->slot, entry->packet_id, entry->fingerprint);
    if (partition >= resend_checkpoints_.size()) return;
    resend_checkpoint& c = *resend_checkpoints_[partition];
    constexpr int64_t k_checkpoint_interval_ms = 250;
    const int64_t now = monotonic_ms();
    sluice::mutex_lock lock(c.mutex);
    c.next_offset = std::max(c.next_offset, offset + 1);
    if (now - c.saved_ms < k_checkpoint_interval_ms) return;
    c.saved_ms = now;
    // Queued after every entry of the records below it (same thread, offset order).
    persistence_.save_resend_checkpoint(partition, c.next_offset);
}

void broker::retained_matching(std::string_view filter, std::vector<message_ptr>& out) const {
    sluice::mutex_lock lock(retained_mutex_);
    retained_.match(filter, [&](std::string_view, const message_ptr& m) { out.push_back(m); });
}

bool broker::retained_is_current(const message_ptr& msg) const {
    sluice::mutex_lock lock(retained_mutex_);
    const message_ptr* current = retained_.get(msg->topic);
    return current != nullptr && *current == msg;
}

size_t broker::retained_count() const {
    sluice::mutex_lock lock(retained_mutex_);
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
        t.dropped_subscriber_queue += v(st.dropped_subscriber_queue);
        t.dropped_global_quota += v(st.dropped_global_quota);
        t.dropped_spool_error += v(st.dropped_spool_error);
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
        t.resends_acknowledged += v(st.resends_acknowledged);
        t.sessions_resumed_from_cluster += v(st.sessions_resumed_from_cluster);
        t.sessions_claimed_elsewhere += v(st.sessions_claimed_elsewhere);
        t.messages_replayed_from_cluster += v(st.messages_replayed_from_cluster);
    }
    t.retained_messages = retained_count();
    t.queued_bytes = queued_bytes();
    return t;
}

}  // namespace sluice::broker
