// SPDX-License-Identifier: Apache-2.0
#include "broker/shard.h"

#include <algorithm>

#include "auth/acl.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/relay.h"
#include "broker/topic_limits.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace sluice::broker {
namespace {

constexpr unsigned k_shard_shift = 48;
// How often a shard tells the relay which connected persistent sessions have nothing
// waiting (tick): each one costs a record in the sessions topic when its position moved.
constexpr int64_t k_cluster_session_refresh_ms = 10'000;

unsigned shard_of_key(session_key k) {
    return static_cast<unsigned>(k >> k_shard_shift);
}

// A retained message on its way to a subscription with options `o` (RETAIN set).
outgoing retained_delivery(const message_ptr& m, const sub_options& o) {
    outgoing out;
    out.msg = m;
    out.qos = std::min(m->qos, o.qos);
    out.retain = true;
    if (o.subscription_id != 0) out.subscription_ids.push_back(o.subscription_id);
    return out;
}

}  // namespace

shard::shard(broker& owner, unsigned index) : broker_(owner), index_(index) {}

shard::~shard() = default;

void shard::attach(connection* c) {
    connections_[c->serial()] = c;
    stats_.add(stats_.connections_current);
    stats_.add(stats_.connections_total);
}

void shard::detach(connection* c) {
    if (connections_.erase(c->serial()) > 0) stats_.sub(stats_.connections_current);
}

connection* shard::find_connection(uint64_t serial) {
    auto it = connections_.find(serial);
    return it == connections_.end() ? nullptr : it->second;
}

session* shard::find_session(std::string_view client_id) {
    auto it = sessions_.find(std::string(client_id));
    return it == sessions_.end() ? nullptr : it->second.get();
}

session& shard::open_session(connection& c, const mqtt::connect& pkt, bool& session_present) {
    const auto& opts = broker_.options();
    session_present = false;
    session* s = nullptr;
    auto it = sessions_.find(pkt.client_id);
    if (it != sessions_.end()) {
        s = it->second.get();
        // A session that ends with its connection (3.1.1 clean session, 5.0 expiry 0) ends
        // when that connection is taken over: nothing of it carries over (MQTT-3.1.2-6).
        bool ended_with_old_connection = false;
        if (s->conn != nullptr && s->conn != &c) {
            stats_.add(stats_.takeovers);
            connection* old = s->conn;
            s->conn = nullptr;
            // What the old connection left queued is the new one's carried backlog, as after
            // a disconnect (session_disconnected): pump() records it for the new connection.
            s->carried_messages = SIZE_MAX;
            s->carried_bytes = UINT64_MAX;
            ended_with_old_connection = s->expiry_interval == 0;
            auto [will, delay] = old->taken_over();
            // The old connection ended abnormally: its will is due now unless it has a delay
            // and the session lives on (the new connection resumes it, MQTT 5 §3.1.3.2.2).
            if (will && (delay == 0 || pkt.clean_start || ended_with_old_connection)) {
                publish_will(pkt.client_id, s->key(), std::move(*will));
            }
        }
        if (pkt.clean_start || ended_with_old_connection) {
            end_session(*s);
            s = nullptr;
        } else {
            session_present = true;
            s->pending_will.reset();  // resumed before the will delay ran out: no will
        }
    }
    std::optional<persist::session_record> claimed;
    if (s == nullptr && !pkt.clean_start) {
        // Not here: another node of the cluster may hold it (relay.h).
        if (relay* r = broker_.get_relay()) claimed = r->claim_session(pkt.client_id, index_);
    }
    if (s == nullptr) {
        session_key key = (static_cast<uint64_t>(index_) << k_shard_shift) | ++next_session_serial_;
        auto owned = std::make_unique<session>(pkt.client_id, key);
        s = owned.get();
        sessions_by_key_[key] = s;
        sessions_[pkt.client_id] = std::move(owned);
        stats_.add(stats_.sessions_current);
        if (claimed) {
            s->replay_stash = std::make_unique<std::vector<session::stashed>>();  // until replay_done
            adopt_subscriptions(*s, *claimed);
            session_present = true;
            stats_.add(stats_.sessions_resumed_from_cluster);
        }
    }
    s->conn = &c;
    s->protocol = pkt.protocol;
    if (pkt.protocol == mqtt::version::v5) {
        s->expiry_interval = pkt.props.session_expiry_interval.value_or(0);
        uint16_t client_window = pkt.props.receive_maximum.value_or(65535);
        s->send_window = std::min(client_window, opts.max_inflight_messages);
        s->client_max_packet_size = pkt.props.maximum_packet_size.value_or(mqtt::max_packet_size_limit);
    } else {
        s->expiry_interval = pkt.clean_start ? 0 : opts.v3_session_expiry;
        s->send_window = opts.max_inflight_messages;
        s->client_max_packet_size = mqtt::max_packet_size_limit;
    }
    s->expiry_interval = std::min(s->expiry_interval, opts.max_session_expiry);
    if (s->send_window == 0) s->send_window = 1;
    // A resumed session may have become (non-)persistent: its subscriptions tell publishers
    // whether acknowledgements must wait for the state journal, so refresh them.
    bool durable = persistence::persistent(*s);
    for (auto& [filter, o] : s->subscriptions) {
        if (o.durable == durable) continue;
        o.durable = durable;
        (void)index_replica_.subscribe(filter, s->key(), o);
        replicate_subscribe(filter, s->key(), o);
    }
    persist_session(*s);
    return *s;
}

bool shard::caught_up(const session& s) {
    return s.inflight.empty() && s.backlog_messages() == 0 && !s.retained;
}

void shard::persist_session(session& s) {
    relay* r = broker_.get_relay();
    persistence& p = broker_.durable();
    if (persistence::persistent(s) && (r != nullptr || p.enabled())) {
        const persist::session_record record = persistence::to_record(s, now_ms_);  // once, for both
        if (r != nullptr) r->session_saved(record, caught_up(s));
        if (p.enabled()) p.save_record(record);
    } else if (r != nullptr && !persistence::persistent(s)) {
        r->session_ended(s.client_id());
    }
    if (!p.enabled()) return;
    if (persistence::persistent(s)) {
        if (!s.persisted && s.spool.file_id != 0) {
            s.persisted = true;
            spool_save(s);  // a spool kept while the session was not persistent
        }
        s.persisted = true;
    } else if (s.persisted) {
        p.erase_session(s.client_id());
        s.persisted = false;
    }
}

void shard::persist_message(session& s, uint16_t packet_id, const inflight_entry& e) {
    if (!s.persisted) return;
    using st = persist::session_message_record::state;
    st state = e.st == inflight_entry::state::await_puback   ? st::await_puback
               : e.st == inflight_entry::state::await_pubrec ? st::await_pubrec
                                                             : st::await_pubcomp;
    broker_.durable().save_message(s, e.out, packet_id, state, now_ms_);
}

void shard::forget_message(session& s, uint64_t order) {
    if (s.persisted) broker_.durable().erase_message(s, order);
}

void shard::restore(persist::session_record&& r, std::vector<persist::session_message_record>&& messages,
                    const persist::spool_record* spool, int64_t now_mono) {
    now_ms_ = now_mono;
    session_key key = (static_cast<uint64_t>(index_) << k_shard_shift) | ++next_session_serial_;
    auto owned = std::make_unique<session>(r.client_id, key);
    session& s = *owned;
    sessions_by_key_[key] = &s;
    sessions_[r.client_id] = std::move(owned);
    stats_.add(stats_.sessions_current);
    s.protocol = static_cast<mqtt::version>(r.protocol_version);
    s.expiry_interval = r.expiry_interval;
    if (s.protocol != mqtt::version::v5) s.expiry_interval = broker_.options().v3_session_expiry;  // as configured now
    s.expiry_interval = std::min(s.expiry_interval, broker_.options().max_session_expiry);
    s.persisted = true;
    // A session whose connection was open when the broker stopped counts as disconnected now.
    s.disconnected_at_ms = r.disconnected_at_ms != 0 ? persistence::to_mono(r.disconnected_at_ms, now_mono) : now_mono;
    for (auto& sub : r.subscriptions) {  // the loops do not run yet: every replica directly
        sub_options o{sub.qos, sub.no_local, sub.retain_as_published, sub.retain_handling, sub.subscription_id, true};
        for (unsigned t = 0; t < broker_.shard_count(); ++t)
            (void)broker_.get_shard(t).index_replica_.subscribe(sub.filter, key, o);
        broker_.note_shared_member(sub.filter, +1);
        s.subscriptions[sub.filter] = o;
        stats_.add(stats_.subscriptions);
    }
    s.inbound_qos2.insert(r.inbound_qos2.begin(), r.inbound_qos2.end());
    if (r.will) {
        mqtt::will w;
        w.topic = std::move(r.will->topic);
        w.payload = std::move(r.will->payload);
        w.qos = r.will->qos;
        w.retain = r.will->retain;
        persist::message_record tmp;
        tmp.props = std::move(r.will->props);
        auto m = persistence::to_message(std::move(tmp), now_mono);
        w.props = m->props;
        w.props.message_expiry_interval = r.will->message_expiry_interval;
        s.pending_will = std::make_unique<mqtt::will>(std::move(w));
        s.will_due_ms = persistence::to_mono(r.will->due_at_ms, now_mono);
    }
    std::sort(messages.begin(), messages.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    using st = persist::session_message_record::state;
    for (auto& m : messages) {
        outgoing out;
        out.qos = m.qos;
        out.retain = m.retain;
        out.subscription_ids = std::move(m.subscription_ids);
        out.order = m.order;
        s.restore_order(m.order);
        if (m.st != st::await_pubcomp) out.msg = persistence::to_message(std::move(m.message), now_mono);
        if (m.st == st::queued) {
            const uint64_t bytes = out.msg->payload.size() + out.msg->topic.size();
            s.queued_bytes += bytes;
            broker_.add_queued_bytes(bytes);
            s.queue.push_back(std::move(out));
            continue;
        }
        inflight_entry e;
        e.st = m.st == st::await_puback   ? inflight_entry::state::await_puback
               : m.st == st::await_pubrec ? inflight_entry::state::await_pubrec
                                          : inflight_entry::state::await_pubcomp;
        e.order = m.order;
        e.out = std::move(out);
        s.inflight.emplace(m.packet_id, std::move(e));
    }
    if (spool != nullptr) spool_restore(s, *spool);
}

void shard::session_disconnected(session& s, bool will_due, const mqtt::will* will, uint32_t will_delay) {
    s.conn = nullptr;
    s.disconnected_at_ms = now_ms_;
    s.carried_messages = SIZE_MAX;  // what queues while offline is the next connection's backlog
    s.carried_bytes = UINT64_MAX;
    if (will_due && will) {
        uint64_t delay = std::min<uint64_t>(will_delay, s.expiry_interval);
        if (delay == 0) {
            publish_will(s.client_id(), s.key(), mqtt::will(*will));
        } else {
            s.pending_will = std::make_unique<mqtt::will>(*will);
            s.will_due_ms = now_ms_ + static_cast<int64_t>(delay) * 1000;
        }
    }
    if (s.expiry_interval == 0) {
        end_session(s);
    } else {
        queue_retained_offline(s);
        spool_unload(s);  // on disk already: memory is for connected clients
        persist_session(s);
    }
}

void shard::adopt_subscriptions(session& s, const persist::session_record& r) {
    for (const auto& sub : r.subscriptions) {
        sub_options o{sub.qos, sub.no_local, sub.retain_as_published, sub.retain_handling, sub.subscription_id, true};
        (void)index_replica_.subscribe(sub.filter, s.key(), o);
        replicate_subscribe(sub.filter, s.key(), o);
        broker_.note_shared_member(sub.filter, +1);
        s.subscriptions[sub.filter] = o;
        stats_.add(stats_.subscriptions);
    }
}

void shard::end_session(session& s, bool claimed_elsewhere) {
    if (claimed_elsewhere) {
        s.pending_will.reset();  // the session lives on at the node that resumed it
    } else if (relay* r = broker_.get_relay()) {
        r->session_ended(s.client_id());
    }
    if (s.pending_will) {
        mqtt::will w = std::move(*s.pending_will);
        s.pending_will.reset();
        publish_will(s.client_id(), s.key(), std::move(w));
    }
    session_key key = s.key();
    broker_.sub_queued_bytes(s.backlog_bytes());
    broker_.note_released(s.queued_bytes, now_ms_);
    if (s.persisted) broker_.durable().erase_session(s.client_id());
    spool_release(s);
    for (const auto& [filter, opts] : s.subscriptions) {
        index_replica_.unsubscribe(filter, key);
        broker_.note_shared_member(filter, -1);
    }
    stats_.sub(stats_.subscriptions, s.subscriptions.size());
    replicate_remove(key);
    sessions_by_key_.erase(key);
    stats_.sub(stats_.sessions_current);
    sessions_.erase(s.client_id());  // destroys s
}

void shard::publish_will(const std::string& client_id, session_key key, mqtt::will&& w) {
    auto msg = std::make_shared<message>();
    msg->topic = std::move(w.topic);
    msg->payload = std::move(w.payload);
    msg->qos = std::min(w.qos, broker_.options().maximum_qos);
    msg->retain = w.retain;
    msg->publisher = key;
    auto& p = w.props;
    msg->props.payload_format_indicator = p.payload_format_indicator;
    msg->props.content_type = std::move(p.content_type);
    msg->props.response_topic = std::move(p.response_topic);
    msg->props.correlation_data = std::move(p.correlation_data);
    msg->props.user_properties = std::move(p.user_properties);
    if (p.message_expiry_interval) {
        msg->expiry_interval_s = *p.message_expiry_interval;
        msg->expires_at_ms = broker::monotonic_ms() + static_cast<int64_t>(msg->expiry_interval_s) * 1000;
    }
    stats_.add(stats_.wills_published);
    SLUICE_DEBUG("broker", "publishing will of %s on %s", client_id.c_str(), msg->topic.c_str());
    publish(std::move(msg));
}

void shard::publish(const message_ptr& msg, const ack_barrier_ptr& barrier) {
    if (!msg->shared_group.empty()) {
        (void)publish_to_group(msg);
        return;
    }
    relay* r = broker_.get_relay();
    if (r != nullptr && !msg->from_other_node) r->forward(msg, barrier);
    if (msg->retain && broker_.options().retain_available) broker_.store_retained(msg, barrier);
    shared_scope scope;
    if (r != nullptr && r->balances_shared_groups()) scope.which = shared_scope::kind::no_group;
    route(msg, barrier, scope);
}

bool shard::publish_to_group(const message_ptr& msg) {
    auto group = mqtt::parse_shared(msg->shared_group);
    if (!group) return false;
    return route(msg, nullptr, {shared_scope::kind::one_group, group->group, group->filter}) > 0;
}

size_t shard::route(const message_ptr& msg, const ack_barrier_ptr& barrier, const shared_scope& scope) {
    match_scratch_.clear();
    index_replica_.match(
        msg->topic, msg->publisher, match_scratch_, [this](session_key k) { return local_session_available(k); },
        scope);
    if (match_scratch_.empty()) return 0;
    if (outbox_.size() != broker_.shard_count()) outbox_.resize(broker_.shard_count());
    for (const auto& d : match_scratch_) {
        unsigned target = shard_of_key(d.session);
        if (target == index_) {
            auto it = sessions_by_key_.find(d.session);
            if (it != sessions_by_key_.end()) deliver(*it->second, msg, d, barrier);
        } else {
            outbox_[target].push_back(remote_delivery{msg, d, d.durable && msg->qos > 0 ? barrier : nullptr});
        }
    }
    return match_scratch_.size();
}

bool shard::local_session_available(session_key key) const {
    if (shard_of_key(key) != index_) return true;
    auto it = sessions_by_key_.find(key);
    return it != sessions_by_key_.end() && it->second->conn != nullptr;
}

void shard::deliver(session& s, const message_ptr& msg, const delivery& d, const ack_barrier_ptr& barrier) {
    if (s.replay_stash) {
        // Waits for the replay (the publisher's ack does not: the message is in Kafka, and
        // the session's positions there do not move while it replays).
        s.replay_stash->push_back(session::stashed{msg, d});
        return;
    }
    deliver_now(s, msg, d, barrier);
}

void shard::deliver_now(session& s, const message_ptr& msg, const delivery& d, const ack_barrier_ptr& barrier) {
    outgoing out;
    out.msg = msg;
    out.qos = std::min(msg->qos, d.qos);
    out.retain = d.retain_as_published && msg->retain;
    out.subscription_ids.assign(d.subscription_ids.begin(), d.subscription_ids.end());
    deliver_outgoing(s, std::move(out), barrier);
}

void shard::hold_until_durable(const ack_barrier_ptr& barrier) {
    if (barrier) broker_.durable().hold(barrier);
}

void shard::deliver_outgoing(session& s, outgoing&& out, const ack_barrier_ptr& barrier) {
    if (out.msg->expires_at_ms != 0 && now_ms_ >= out.msg->expires_at_ms) {
        stats_.add(stats_.dropped_expired);
        return;
    }
    // ACL (read): checked against the connected client; an offline session's queue is
    // checked again when it is sent (pump), against whoever resumed it.
    if (s.conn != nullptr && !s.conn->may(out.msg->topic, auth::operation::receive)) return;
    if (out.qos == 0) {
        if (s.conn == nullptr) {
            stats_.add(stats_.dropped_qos0_offline);
            return;
        }
        if (s.conn->output_congested()) {
            stats_.add(stats_.dropped_qos0_slow_subscriber);
            return;
        }
        s.conn->send_publish(out, 0, false);
        return;
    }
    // A connection with too much unsent output gets no more: the message queues (and
    // marks the subscriber as past its bound).
    if (s.conn != nullptr && s.backlog_messages() == 0 && s.inflight.size() < s.send_window &&
        !s.conn->output_congested()) {
        send_now(s, std::move(out), barrier);
        return;
    }
    enqueue(s, std::move(out), barrier);
}

void shard::enqueue(session& s, outgoing&& out, const ack_barrier_ptr& barrier) {
    const auto& opts = broker_.options();
    size_t bytes = out.msg->payload.size() + out.msg->topic.size();
    // An online subscriber past its queue bound is disconnected at the end of this
    // iteration (subscriber_queue.h); publishers never wait for it. Until then, and once
    // it is offline, its messages queue up to the session's own quota below.
    const size_t backlog_messages = s.backlog_messages();
    const uint64_t backlog_bytes = s.backlog_bytes();
    if (s.conn != nullptr &&
        subscriber_over_bound(opts, backlog_messages - std::min(s.carried_messages, backlog_messages),
                              backlog_bytes - std::min(s.carried_bytes, backlog_bytes), bytes,
                              s.conn->output_congested())) {
        if (s.expiry_interval == 0 && opts.clean_subscriber_overflow == broker_options::clean_overflow_policy::drop) {
            // Its session ends with the connection: a disconnect would lose this queue and
            // its subscriptions too. Keep it connected and drop what it cannot take.
            const uint64_t dropped = shard_stats::count(stats_.dropped_subscriber_queue);
            if (shard_stats::log_worthy(dropped)) {
                SLUICE_WARN("broker",
                            "subscriber %s (clean session) is not keeping up: dropping QoS %u messages past its "
                            "queue bound (%llu so far)",
                            s.client_id().c_str(), out.qos, static_cast<unsigned long long>(dropped));
            }
            return;
        }
        slow_.mark(s.conn->serial());
    }
    if (backlog_messages >= opts.max_queued_messages || backlog_bytes + bytes > opts.max_queued_bytes) {
        const uint64_t dropped = shard_stats::count(stats_.dropped_queue_full);
        if (shard_stats::log_worthy(dropped)) {
            SLUICE_WARN("broker", "queue of %s is full (%zu messages): dropping QoS %u messages (%llu so far)",
                        s.client_id().c_str(), backlog_messages, out.qos, static_cast<unsigned long long>(dropped));
        }
        return;
    }
    const uint64_t total_limit = opts.max_queued_bytes_total;
    if (s.conn == nullptr && total_limit != 0 && broker_.queued_bytes() + bytes > total_limit) {
        // Offline backlogs together may not exhaust memory and the journal (issue 10).
        const uint64_t dropped = shard_stats::count(stats_.dropped_global_quota);
        if (shard_stats::log_worthy(dropped)) {
            SLUICE_WARN("broker",
                        "queued messages of all sessions reached mqtt.max_queued_bytes_total: dropping "
                        "QoS 1/2 messages for offline sessions (%llu so far)",
                        static_cast<unsigned long long>(dropped));
        }
        return;
    }
    out.order = s.next_order();
    if (uses_spool(s)) {
        spool_append(s, std::move(out), bytes, barrier);
        return;
    }
    s.queued_bytes += bytes;
    broker_.add_queued_bytes(bytes);
    if (s.persisted) {
        broker_.durable().save_message(s, out, 0, persist::session_message_record::state::queued, now_ms_);
        hold_until_durable(barrier);
    }
    s.queue.push_back(std::move(out));
}

void shard::disconnect_slow_subscribers() {
    // Closing may end sessions and publish wills, which may mark more: repeat until quiet.
    while (!slow_.empty()) {
        for (uint64_t serial : slow_.take()) {
            connection* c = find_connection(serial);
            if (c == nullptr || c->closed()) continue;
            const uint64_t n = shard_stats::count(stats_.slow_subscriber_disconnects);
            if (shard_stats::log_worthy(n)) {
                session* s = c->current_session();
                SLUICE_WARN(
                    "broker", "subscriber %s (%s) is not keeping up: disconnected with quota exceeded (%llu so far)",
                    s != nullptr ? s->client_id().c_str() : "?", c->peer().c_str(), static_cast<unsigned long long>(n));
            }
            c->disconnect_slow_subscriber();
        }
    }
}

void shard::send_now(session& s, outgoing&& out, const ack_barrier_ptr& barrier) {
    uint16_t id = s.next_packet_id();
    if (!s.conn->send_publish(out, id, false)) return;  // too large for this client: dropped, counted
    inflight_entry e;
    e.st = out.qos == 1 ? inflight_entry::state::await_puback : inflight_entry::state::await_pubrec;
    if (out.order == 0) out.order = s.next_order();
    e.order = out.order;
    e.out = std::move(out);
    auto it = s.inflight.emplace(id, std::move(e)).first;
    persist_message(s, id, it->second);
    if (s.persisted) hold_until_durable(barrier);
}

void shard::pump(session& s) {
    const uint64_t spool_read = s.spool.read_offset;
    while (s.conn != nullptr && s.inflight.size() < s.send_window) {
        if (s.queue.empty() && !spool_load(s)) break;
        outgoing out = std::move(s.queue.front());
        s.queue.pop_front();
        const uint64_t bytes = out.msg->payload.size() + out.msg->topic.size();
        if (out.spool_end != 0) {
            spool_taken(s, out.spool_end, bytes);
        } else {
            s.queued_bytes -= bytes;
            broker_.sub_queued_bytes(bytes);
        }
        // Spooled entries have no record of their own to forget: the spool's advance is it.
        if (out.msg->expires_at_ms != 0 && now_ms_ >= out.msg->expires_at_ms) {
            stats_.add(stats_.dropped_expired);
            if (out.spool_end == 0) forget_message(s, out.order);
            continue;
        }
        if (!s.conn->may(out.msg->topic, auth::operation::receive)) {
            if (out.spool_end == 0) forget_message(s, out.order);
            continue;
        }
        send_now(s, std::move(out));
    }
    // After the inflight records of what was taken: a crash between them is undone by
    // skip_through at the next start, never by losing a message.
    if (s.spool.read_offset != spool_read) spool_save(s);
    // On (re)connect this records the backlog carried in; later it only shrinks with it.
    s.carried_messages = std::min(s.carried_messages, s.backlog_messages());
    s.carried_bytes = std::min(s.carried_bytes, s.backlog_bytes());
}

std::vector<mqtt::reason_code> shard::subscribe(session& s, const mqtt::subscribe& pkt, const ack_barrier_ptr& applied,
                                                std::vector<std::string>& retained_filters) {
    const auto& opts = broker_.options();
    std::vector<mqtt::reason_code> codes;
    codes.reserve(pkt.entries.size());
    uint32_t sub_id = pkt.props.subscription_identifiers.empty() ? 0 : pkt.props.subscription_identifiers.front();
    for (const auto& e : pkt.entries) {
        if (!mqtt::valid_topic_filter(e.filter)) {
            codes.push_back(mqtt::reason_code::topic_filter_invalid);
            continue;
        }
        if (!within_topic_limits(opts, e.filter)) {  // bounded cost per filter (topic_limits.h)
            stats_.add(stats_.topic_limit_refusals);
            codes.push_back(mqtt::reason_code::topic_filter_invalid);
            continue;
        }
        auto shared = mqtt::parse_shared(e.filter);
        if (shared && !opts.shared_subscription_available) {
            codes.push_back(mqtt::reason_code::shared_subscriptions_not_supported);
            continue;
        }
        if (!opts.wildcard_subscription_available && mqtt::has_wildcard(shared ? shared->filter : e.filter)) {
            codes.push_back(mqtt::reason_code::wildcard_subscriptions_not_supported);
            continue;
        }
        if (sub_id != 0 && !opts.subscription_identifiers_available) {
            codes.push_back(mqtt::reason_code::subscription_identifiers_not_supported);
            continue;
        }
        if (s.conn != nullptr && !s.conn->may(e.filter, auth::operation::subscribe)) {
            codes.push_back(mqtt::reason_code::not_authorized);  // ACL; 3.1.1 encodes 0x80
            continue;
        }
        sub_options o;
        o.qos = std::min(e.qos, opts.maximum_qos);
        o.no_local = e.no_local;
        o.retain_as_published = e.retain_as_published;
        o.retain_handling = e.retain_handling;
        o.subscription_id = sub_id;
        o.durable = persistence::persistent(s);
        bool existed = index_replica_.subscribe(e.filter, s.key(), o);
        replicate_subscribe(e.filter, s.key(), o, applied);
        s.subscriptions[e.filter] = o;
        if (!existed) {
            stats_.add(stats_.subscriptions);
            if (shared) broker_.note_shared_member(e.filter, +1, applied);
        }
        codes.push_back(static_cast<mqtt::reason_code>(o.qos));
        bool send_retained = o.retain_handling == 0 || (o.retain_handling == 1 && !existed);
        if (!shared && opts.retain_available && send_retained) retained_filters.push_back(e.filter);
    }
    persist_session(s);
    return codes;
}

void shard::deliver_retained(session& s, const std::vector<std::string>& filters) {
    const bool listed = s.retained != nullptr;  // a session with a backlog is in retained_sessions_
    bool added = false;
    for (const auto& filter : filters) {
        if (s.subscriptions.find(filter) == s.subscriptions.end()) continue;  // unsubscribed since
        std::vector<message_ptr> matching;
        broker_.retained_matching(filter, matching);
        if (matching.empty()) continue;
        if (!s.retained) s.retained = std::make_unique<retained_backlog>();
        s.retained->add(filter, std::move(matching));
        added = true;
    }
    if (added && !listed) retained_sessions_.push_back(s.key());
}

void shard::drain_retained() {
    size_t budget = k_retained_per_iteration;
    bool progressed = false;
    // Each session with a backlog gets a turn; those with more left go to the back.
    for (size_t turns = retained_sessions_.size(); turns > 0 && budget > 0; --turns) {
        session_key key = retained_sessions_.front();
        retained_sessions_.pop_front();
        auto it = sessions_by_key_.find(key);
        if (it == sessions_by_key_.end()) continue;  // ended
        session& s = *it->second;
        if (!s.retained || s.conn == nullptr) continue;
        size_t sent = drain_retained(s, budget);
        budget -= sent;
        progressed = progressed || sent > 0;
        if (s.retained->empty()) {
            s.retained.reset();
        } else {
            retained_sessions_.push_back(key);
        }
    }
    // More to send and room made for it: come back next iteration even if no socket event
    // wakes the loop (the output may all have fitted in the kernel's buffer). A backlog
    // that made no progress waits for its connection: a PUBACK or the socket being writable.
    if (progressed && !retained_sessions_.empty()) broker_.post(index_, [] {});
}

size_t shard::drain_retained(session& s, size_t budget) {
    retained_backlog& backlog = *s.retained;
    const uint64_t watermark = std::min(k_retained_output_watermark, broker_.options().max_pending_output_bytes / 2);
    size_t sent = 0;
    while (sent < budget && !backlog.empty()) {
        retained_batch& batch = backlog.front();
        auto sub = s.subscriptions.find(batch.filter);
        if (sub == s.subscriptions.end() || batch.done()) {  // unsubscribed since, or all sent
            backlog.pop_front();
            continue;
        }
        if (s.conn->pending_output_bytes() >= watermark) break;
        const message_ptr& m = batch.messages[batch.next];
        const sub_options& o = sub->second;
        uint8_t qos = std::min(m->qos, o.qos);
        if (qos > 0 && (s.backlog_messages() > 0 || s.inflight.size() >= s.send_window)) break;  // the window is full
        ++batch.next;
        if (!broker_.retained_is_current(m)) continue;  // replaced or cleared: the newer one went live
        deliver_outgoing(s, retained_delivery(m, o));
        ++sent;
    }
    return sent;
}

void shard::queue_retained_offline(session& s) {
    // A session that lives on keeps what it was owed like any offline backlog: QoS 1/2
    // queue up to its quota (journaled), QoS 0 is not kept for an offline session.
    if (!s.retained) return;
    std::unique_ptr<retained_backlog> backlog = std::move(s.retained);
    while (!backlog->empty()) {
        retained_batch& batch = backlog->front();
        auto sub = s.subscriptions.find(batch.filter);
        for (; sub != s.subscriptions.end() && !batch.done(); ++batch.next) {
            const message_ptr& m = batch.messages[batch.next];
            if (!broker_.retained_is_current(m)) continue;
            deliver_outgoing(s, retained_delivery(m, sub->second));
        }
        backlog->pop_front();
    }
}

std::vector<mqtt::reason_code> shard::unsubscribe(session& s, const mqtt::unsubscribe& pkt,
                                                  const ack_barrier_ptr& applied) {
    std::vector<mqtt::reason_code> codes;
    codes.reserve(pkt.filters.size());
    for (const auto& f : pkt.filters) {
        auto it = s.subscriptions.find(f);
        if (it == s.subscriptions.end()) {
            codes.push_back(mqtt::reason_code::no_subscription_existed);
            continue;
        }
        s.subscriptions.erase(it);
        broker_.note_shared_member(f, -1);
        index_replica_.unsubscribe(f, s.key());
        replicate_unsubscribe(f, s.key(), applied);
        stats_.sub(stats_.subscriptions);
        codes.push_back(mqtt::reason_code::success);
    }
    persist_session(s);
    return codes;
}

// The posted tasks hold `applied` (when given) until they ran: its release means every
// shard routes by the new subscription state.
void shard::replicate_subscribe(const std::string& filter, session_key key, const sub_options& o,
                                const ack_barrier_ptr& applied) {
    for (unsigned t = 0; t < broker_.shard_count(); ++t) {
        if (t == index_) continue;
        shard* target = &broker_.get_shard(t);
        broker_.post(t, [target, filter, key, o, applied] { (void)target->index_replica_.subscribe(filter, key, o); });
    }
}

void shard::replicate_unsubscribe(const std::string& filter, session_key key, const ack_barrier_ptr& applied) {
    for (unsigned t = 0; t < broker_.shard_count(); ++t) {
        if (t == index_) continue;
        shard* target = &broker_.get_shard(t);
        broker_.post(t, [target, filter, key, applied] { (void)target->index_replica_.unsubscribe(filter, key); });
    }
}

void shard::replicate_remove(session_key key) {
    for (unsigned t = 0; t < broker_.shard_count(); ++t) {
        if (t == index_) continue;
        shard* target = &broker_.get_shard(t);
        broker_.post(t, [target, key] { target->index_replica_.remove_session(key); });
    }
}

void shard::flush_outbox() {
    drain_retained();
    disconnect_slow_subscribers();
    for (unsigned t = 0; t < outbox_.size(); ++t) {
        if (outbox_[t].empty()) continue;
        shard* target = &broker_.get_shard(t);
        broker_.post(t, [target, batch = std::move(outbox_[t])]() mutable { target->apply_remote(batch); });
        outbox_[t] = {};
    }
}

void shard::apply_remote(std::vector<remote_delivery>& batch) {
    for (auto& r : batch) {
        auto it = sessions_by_key_.find(r.d.session);
        if (it != sessions_by_key_.end()) deliver(*it->second, r.msg, r.d, r.barrier);
    }
}

void shard::tick(int64_t now_ms) {
    now_ms_ = now_ms;
    if (index_ == 0) broker_.return_memory(now_ms);
    std::vector<connection*> conns;
    conns.reserve(connections_.size());
    for (auto& [serial, c] : connections_)
        conns.push_back(c);
    for (auto* c : conns)
        c->check_keep_alive(now_ms);

    std::vector<session*> ending;
    for (auto& [id, s] : sessions_) {
        if (s->conn != nullptr) continue;
        if (s->pending_will && now_ms >= s->will_due_ms) {
            mqtt::will w = std::move(*s->pending_will);
            s->pending_will.reset();
            publish_will(s->client_id(), s->key(), std::move(w));
        }
        if (s->expired(now_ms)) ending.push_back(s.get());
    }
    for (auto* s : ending) {
        stats_.add(stats_.sessions_expired);
        end_session(*s);
    }
    // Sessions another node may resume: tell the relay which connected ones have nothing
    // waiting here, so what it would replay there starts later (relay.h). An offline one
    // was recorded when it disconnected; whatever reached it since is still queued.
    relay* r = broker_.get_relay();
    if (r != nullptr && now_ms - sessions_refreshed_ms_ >= k_cluster_session_refresh_ms) {
        sessions_refreshed_ms_ = now_ms;
        for (auto& [id, s] : sessions_) {
            if (s->conn != nullptr && persistence::persistent(*s) && caught_up(*s)) r->session_caught_up(id);
        }
    }
}

void shard::deliver_replayed(const std::string& client_id, const message_ptr& msg) {
    session* s = find_session(client_id);
    if (s == nullptr) return;
    delivery d;
    d.session = s->key();
    bool matched = false;
    for (const auto& [filter, o] : s->subscriptions) {
        if (mqtt::parse_shared(filter) || !mqtt::topic_matches(filter, msg->topic)) continue;
        d.qos = matched ? std::max(d.qos, o.qos) : o.qos;
        d.retain_as_published = d.retain_as_published || o.retain_as_published;
        d.durable = true;
        if (o.subscription_id != 0) d.subscription_ids.push_back(o.subscription_id);
        matched = true;
    }
    if (!matched || std::min(msg->qos, d.qos) == 0) return;
    stats_.add(stats_.messages_replayed_from_cluster);
    deliver_now(*s, msg, d);
}

void shard::replay_done(const std::string& client_id, const std::vector<int64_t>& replayed_to) {
    session* s = find_session(client_id);
    if (s == nullptr || !s->replay_stash) return;
    std::unique_ptr<std::vector<session::stashed>> stash = std::move(s->replay_stash);
    for (auto& st : *stash) {
        const int32_t p = st.msg->relay_partition;
        const bool replayed = p >= 0 && static_cast<size_t>(p) < replayed_to.size() &&
                              st.msg->relay_offset < replayed_to[static_cast<size_t>(p)];
        if (!replayed) deliver_now(*s, st.msg, st.d);
    }
}

void shard::session_claimed_elsewhere(const std::string& client_id) {
    session* s = find_session(client_id);
    if (s == nullptr) return;
    if (s->conn != nullptr) {
        connection* old = s->conn;
        s->conn = nullptr;
        (void)old->taken_over();  // its will goes with the session, to the node that resumed it
    }
    stats_.add(stats_.sessions_claimed_elsewhere);
    end_session(*s, true);
}

void shard::shutdown() {
    std::vector<connection*> conns;
    for (auto& [serial, c] : connections_)
        conns.push_back(c);
    for (auto* c : conns)
        c->close_with(mqtt::reason_code::server_shutting_down, true);
}

}  // namespace sluice::broker
