// SPDX-License-Identifier: Apache-2.0
#include "broker/connection.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "auth/authority.h"
#include "base/clock.h"
#include "base/log.h"
#include "broker/ack_barrier.h"
#include "broker/broker.h"
#include "broker/resend_window.h"
#include "broker/shard.h"
#include "broker/topic_limits.h"
#include "bus/bus.h"
#include "mqtt/codec.h"

namespace sluice::broker {
namespace {

std::atomic<uint64_t> g_next_serial{1};

// Time a client has to send CONNECT after the TCP connection opens.
constexpr int64_t k_connect_timeout_ms = 10'000;

// Properties a subscriber receives unchanged (MQTT 5 §3.3.4: the server forwards these).
mqtt::properties forwarded_properties(mqtt::properties&& in) {
    mqtt::properties out;
    out.payload_format_indicator = in.payload_format_indicator;
    out.content_type = std::move(in.content_type);
    out.response_topic = std::move(in.response_topic);
    out.correlation_data = std::move(in.correlation_data);
    out.user_properties = std::move(in.user_properties);
    return out;
}

bool is_failure(mqtt::reason_code c) {
    return static_cast<uint8_t>(c) >= 0x80;
}

}  // namespace

connection::connection(shard& owner, transport& t)
    : shard_(owner), transport_(t), serial_(g_next_serial.fetch_add(1, std::memory_order_relaxed)) {
    last_received_ms_ = shard_.now_ms();
    shard_.attach(this);
}

connection::~connection() {
    if (state_ != state::closed) finish(true);
    shard_.detach(this);
}

size_t connection::on_data(std::string_view data) {
    const uint32_t max_size = shard_.owner().options().max_packet_size;
    size_t used = 0;
    // Held-back connections (bus quota or ingest budget, a password check in progress) stop
    // here: the rest of the buffer waits until reading resumes.
    while (state_ != state::closed && state_ != state::authenticating && !parked_ && used < data.size()) {
        std::string_view rest = data.substr(used);
        auto f = mqtt::parse_frame(rest, max_size);
        if (!f) {
            protocol_violation(f.error());
            break;
        }
        if (!f->has_value()) break;
        const mqtt::frame& fr = **f;
        if (rest.size() < fr.total_size()) break;
        auto p = mqtt::decode(fr, rest.substr(0, fr.total_size()), version_);
        used += fr.total_size();
        if (!p) {
            protocol_violation(p.error());
            break;
        }
        last_received_ms_ = shard_.now_ms();
        handle(std::move(*p));
    }
    shard_stats::add(shard_.stats().bytes_received, used);
    return used;
}

void connection::on_connect(mqtt::connect&& pkt, bool id_assigned) {
    last_received_ms_ = shard_.now_ms();
    handle_connect(std::move(pkt), id_assigned);
}

void connection::protocol_violation(std::error_code ec) {
    mqtt::reason_code code = mqtt::to_reason_code(ec);
    if (code == mqtt::reason_code::malformed_packet) {
        shard_stats::add(shard_.stats().malformed_packets);
    } else {
        shard_stats::add(shard_.stats().protocol_errors);
    }
    SLUICE_DEBUG("broker", "%s: %s (%s), closing", transport_.peer().c_str(), ec.message().c_str(),
                 mqtt::to_string(code));
    if (state_ == state::awaiting_connect) {
        if (code == mqtt::reason_code::unsupported_protocol_version) {
            // We cannot know the client's version: answer in the 3.1.1 form, which every
            // version parses (return code 1 = unacceptable protocol version).
            transport_.send(std::string("\x20\x02\x00\x01", 4));
        }
        state_ = state::closed;
        transport_.close();
        return;
    }
    close_with(code, true);
}

void connection::handle(mqtt::packet&& p) {
    using mqtt::packet_type;
    packet_type type = mqtt::type_of(p);
    if (state_ == state::awaiting_connect) {
        if (type != packet_type::connect) {
            // [MQTT-3.1.0-1]: the first packet must be CONNECT; close without a reply.
            shard_stats::add(shard_.stats().protocol_errors);
            state_ = state::closed;
            transport_.close();
            return;
        }
        mqtt::connect c = std::move(std::get<mqtt::connect>(p));
        bool assigned = shard_.owner().assign_client_id(c);
        handle_connect(std::move(c), assigned);
        return;
    }
    switch (type) {
        case packet_type::publish:
            handle_publish(std::move(std::get<mqtt::publish>(p)));
            break;
        case packet_type::puback: {
            auto& a = std::get<mqtt::puback>(p);
            handle_puback(a.packet_id, a.code);
            break;
        }
        case packet_type::pubrec: {
            auto& a = std::get<mqtt::pubrec>(p);
            handle_pubrec(a.packet_id, a.code);
            break;
        }
        case packet_type::pubrel:
            handle_pubrel(std::get<mqtt::pubrel>(p).packet_id);
            break;
        case packet_type::pubcomp:
            handle_pubcomp(std::get<mqtt::pubcomp>(p).packet_id);
            break;
        case packet_type::subscribe:
            handle_subscribe(std::move(std::get<mqtt::subscribe>(p)));
            break;
        case packet_type::unsubscribe:
            handle_unsubscribe(std::move(std::get<mqtt::unsubscribe>(p)));
            break;
        case packet_type::pingreq:
            send_packet(mqtt::pingresp{});
            break;
        case packet_type::disconnect:
            handle_disconnect(std::move(std::get<mqtt::disconnect>(p)));
            break;
        default:
            // A second CONNECT, server-to-client packets, or AUTH (no enhanced authentication).
            shard_stats::add(shard_.stats().protocol_errors);
            close_with(mqtt::reason_code::protocol_error, true);
            break;
    }
}

void connection::reject_connect(mqtt::reason_code code) {
    mqtt::connack ack;
    ack.code = code;
    send_packet(ack);
    state_ = state::closed;
    transport_.close();
}

void connection::handle_connect(mqtt::connect&& p, bool id_assigned) {
    const auto& opts = shard_.owner().options();
    version_ = p.protocol == mqtt::version::v5 ? mqtt::version::v5 : p.protocol;
    if (p.client_id.empty()) {
        reject_connect(mqtt::reason_code::client_identifier_not_valid);
        return;
    }
    if (version_ == mqtt::version::v5 && p.props.authentication_method) {
        reject_connect(mqtt::reason_code::bad_authentication_method);
        return;
    }
    if (p.will_message) {
        if (p.will_message->qos > opts.maximum_qos) {
            reject_connect(mqtt::reason_code::qos_not_supported);
            return;
        }
        if (p.will_message->retain && !opts.retain_available) {
            reject_connect(mqtt::reason_code::retain_not_supported);
            return;
        }
        if (!within_topic_limits(opts, p.will_message->topic)) {
            // The will becomes a PUBLISH: the same bound on its topic (0x90 Topic Name invalid).
            shard_stats::add(shard_.stats().topic_limit_refusals);
            reject_connect(mqtt::reason_code::topic_name_invalid);
            return;
        }
    }
    if (!authenticated_ && shard_.owner().authority() != nullptr) {
        begin_authentication(std::move(p), id_assigned);
        return;
    }
    keep_alive_s_ = p.keep_alive;
    bool keep_alive_changed = false;
    if (opts.max_keep_alive != 0 && (keep_alive_s_ == 0 || keep_alive_s_ > opts.max_keep_alive)) {
        keep_alive_s_ = opts.max_keep_alive;
        keep_alive_changed = true;
    }
    will_ = p.will_message ? std::make_unique<mqtt::will>(std::move(*p.will_message)) : nullptr;
    will_delay_s_ = will_ ? will_->props.will_delay_interval.value_or(0) : 0;
    request_problem_information_ = p.props.request_problem_information.value_or(1) != 0;
    client_topic_alias_max_ = p.props.topic_alias_maximum.value_or(0);
    state_ = state::connected;

    bool present = false;
    session_ = &shard_.open_session(*this, p, present);

    mqtt::connack ack;
    ack.session_present = present;
    ack.code = mqtt::reason_code::success;
    if (version_ == mqtt::version::v5) {
        auto& props = ack.props;
        props.receive_maximum = opts.receive_maximum;
        if (opts.maximum_qos < 2) props.maximum_qos = opts.maximum_qos;
        if (!opts.retain_available) props.retain_available = 0;
        props.maximum_packet_size = opts.max_packet_size;
        if (id_assigned) props.assigned_client_identifier = p.client_id;
        props.topic_alias_maximum = opts.topic_alias_maximum;
        props.wildcard_subscription_available = opts.wildcard_subscription_available ? 1 : 0;
        props.subscription_identifier_available = opts.subscription_identifiers_available ? 1 : 0;
        props.shared_subscription_available = opts.shared_subscription_available ? 1 : 0;
        if (keep_alive_changed) props.server_keep_alive = keep_alive_s_;
        uint32_t asked = p.props.session_expiry_interval.value_or(0);
        if (asked != session_->expiry_interval) props.session_expiry_interval = session_->expiry_interval;
    }
    send_packet(ack);

    if (present) {
        // Resend what was in flight, in the order it was first sent (MQTT 5 §4.4).
        std::vector<std::pair<uint64_t, uint16_t>> order;
        order.reserve(session_->inflight.size());
        for (const auto& [id, e] : session_->inflight)
            order.emplace_back(e.order, id);
        std::sort(order.begin(), order.end());
        for (const auto& [ord, id] : order) {
            auto& e = session_->inflight.at(id);
            if (e.st == inflight_entry::state::await_pubcomp) {
                send_pubrel(id);
            } else {
                send_publish(e.out, id, true);
            }
        }
    }
    shard_.pump(*session_);
}

void connection::handle_publish(mqtt::publish&& p) {
    const auto& opts = shard_.owner().options();
    if (p.qos > opts.maximum_qos) {
        close_with(mqtt::reason_code::qos_not_supported, true);
        return;
    }
    if (p.retain && !opts.retain_available) {
        close_with(mqtt::reason_code::retain_not_supported, true);
        return;
    }
    if (!p.props.subscription_identifiers.empty()) {
        // [MQTT-3.3.4-6]: a PUBLISH from a client must not carry Subscription Identifiers.
        close_with(mqtt::reason_code::protocol_error, true);
        return;
    }
    if (version_ == mqtt::version::v5 && p.props.topic_alias) {
        uint16_t alias = *p.props.topic_alias;
        if (alias == 0 || alias > opts.topic_alias_maximum) {
            close_with(mqtt::reason_code::topic_alias_invalid, true);
            return;
        }
        if (p.topic.empty()) {
            auto it = inbound_aliases_.find(alias);
            if (it == inbound_aliases_.end()) {
                close_with(mqtt::reason_code::protocol_error, true);
                return;
            }
            p.topic = it->second;
        } else {
            inbound_aliases_[alias] = p.topic;
        }
    } else if (p.topic.empty()) {
        close_with(mqtt::reason_code::topic_name_invalid, true);
        return;
    }
    if (!within_topic_limits(opts, p.topic)) {  // bounded cost per message (topic_limits.h)
        shard_stats::add(shard_.stats().topic_limit_refusals);
        close_with(mqtt::reason_code::topic_name_invalid, true);
        return;
    }

    if (!publish_allowed(p)) return;

    if (opts.max_publish_rate != 0 && !take_publish_token()) {
        // Per-client rate (issue 12): hold this PUBLISH and stop reading until a token refills.
        shard_stats::add(shard_.stats().publish_rate_limited);
        parked_ = std::make_unique<mqtt::publish>(std::move(p));
        update_reading();
        return;
    }

    const ingest_hook& ingest = shard_.owner().ingest();
    bool to_log = ingest.log != nullptr && ingest.matches && ingest.matches(p.topic);
    if (to_log && ingest.log->over_quota() && opts.ingest_over_quota == broker_options::over_quota_policy::pause) {
        // Back-pressure: hold this PUBLISH and stop reading until the bus has room again.
        shard_stats::add(shard_.stats().ingest_paused);
        parked_ = std::make_unique<mqtt::publish>(std::move(p));
        update_reading();
        return;
    }

    if (p.qos > 0) {
        bool retransmission = p.qos == 2 && session_->inbound_qos2.count(p.packet_id) != 0;
        if (!retransmission && version_ == mqtt::version::v5 &&
            unacked_qos1_ + session_->inbound_qos2.size() >= opts.receive_maximum) {
            // [MQTT-3.3.4-9]: more unacknowledged QoS 1/2 PUBLISHes than we allowed.
            close_with(mqtt::reason_code::receive_maximum_exceeded, true);
            return;
        }
        if (p.qos == 2 && session_->inbound_qos2.count(p.packet_id) != 0) {
            // A retransmission of a QoS 2 message we already own: acknowledge, don't route again.
            queue_ack(mqtt::packet_type::pubrec, p.packet_id, mqtt::reason_code::success, true, next_ack_slot_++);
            return;
        }
    }
    // The resend rule (resend_window.h): in a persistent session, a DUP=1 PUBLISH whose
    // packet id last carried this same message into the log is acknowledged once that
    // append is durable, and not logged again.
    const bool windowed = to_log && p.qos > 0 && opts.resend_window != 0 && persistence::persistent(*session_);
    uint64_t fingerprint = 0;
    bool resend_of_logged = false;
    std::shared_ptr<append_outcome> logged_before;  // null: durable before a restart
    if (windowed) {
        fingerprint = resend_fingerprint(p.topic, p.payload);
        if (p.dup && session_->resend) {
            if (const resend_window::entry* e = session_->resend->logged(p.packet_id, fingerprint)) {
                resend_of_logged = true;
                logged_before = e->outcome;
                to_log = false;
            }
        }
    }
    // The ingest byte budget (issue 11): what is read must fit the bus, so a PUBLISH that
    // does not fit is held before anything is done with it, never appended and refused.
    const bool refuse = to_log && p.qos > 0 && opts.ingest_over_quota == broker_options::over_quota_policy::refuse &&
                        ingest.log->over_quota();
    uint64_t ingest_cost = 0;
    if (to_log && !refuse) {
        ingest_cost = bus::bus::append_cost(session_->client_id().size(), p.topic.size(), p.payload.size());
        if (!reserve_ingest(ingest_cost)) {
            shard_stats::add(shard_.stats().ingest_paused);
            parked_ = std::make_unique<mqtt::publish>(std::move(p));
            update_reading();
            return;
        }
    }
    shard_stats::add(shard_.stats().messages_received);

    auto msg = std::make_shared<message>();
    msg->qos = p.qos;
    msg->retain = p.retain;
    msg->publisher = session_->key();
    if (p.props.message_expiry_interval) {
        // A fresh reading, not the loop's cached time: the subscriber's loop reads the same
        // clock when it forwards the remaining interval.
        msg->expiry_interval_s = *p.props.message_expiry_interval;
        msg->expires_at_ms = broker::monotonic_ms() + static_cast<int64_t>(msg->expiry_interval_s) * 1000;
    }
    msg->props = forwarded_properties(std::move(p.props));

    mqtt::packet_type ack_type = p.qos == 1 ? mqtt::packet_type::puback : mqtt::packet_type::pubrec;

    ack_barrier_ptr barrier;
    uint64_t slot = 0;
    if (refuse) {
        shard_stats::add(shard_.stats().ingest_quota_refused);
        if (version_ != mqtt::version::v5) {
            // 3.1.1 has no negative acknowledgement: withhold it and close; the client
            // retransmits after reconnecting, when there is room again.
            close_with(mqtt::reason_code::quota_exceeded, false);
            return;
        }
        queue_ack(ack_type, p.packet_id, mqtt::reason_code::quota_exceeded, true, next_ack_slot_++);
        return;  // refused: not routed either
    }
    if (p.qos > 0) {
        if (p.qos == 2) {
            session_->inbound_qos2.insert(p.packet_id);
            shard_.persist_session(*session_);
        }
        slot = next_ack_slot_++;
        queue_ack(ack_type, p.packet_id, mqtt::reason_code::success, false, slot);
        barrier = std::make_shared<ack_barrier>(shard_.owner(), shard_.index(), serial_, slot);
    }
    if (resend_of_logged) {
        shard_stats::add(shard_.stats().resends_acknowledged);
        if (logged_before) logged_before->hold(barrier);
    }
    if (to_log) {
        bus::bus& log = *ingest.log;
        uint32_t partition = static_cast<uint32_t>(std::hash<std::string>{}(session_->client_id()) % log.partitions());
        bus::message record;
        record.receive_time_ms = unix_ms();
        record.client_id = session_->client_id();
        record.topic = p.topic;
        record.payload = p.payload;
        record.qos = p.qos;
        std::shared_ptr<append_outcome> outcome;
        std::shared_ptr<broker::resend_entry_ref> entry;
        if (windowed) {
            if (!session_->resend) session_->resend = std::make_unique<resend_window>(opts.resend_window);
            outcome = std::make_shared<append_outcome>();
            session_->resend->record(p.packet_id, fingerprint, outcome);
            record.packet_id = p.packet_id;
            entry = std::make_shared<broker::resend_entry_ref>(broker::resend_entry_ref{
                session_->client_id(), session_->resend->slot_of(p.packet_id), p.packet_id, fingerprint});
        }
        shard* owner = &shard_;
        // The append's completion holds the barrier: the ack waits for the fsync. It also
        // returns the reservation and wakes this connection if it held a PUBLISH for it.
        log.append(partition, std::move(record),
                   [owner, barrier, share = ingest_share_, ingest_cost, serial = serial_, partition, outcome,
                    entry](result<uint64_t> r) {
                       shard_stats::add(r ? owner->stats().ingest_appended : owner->stats().ingest_failed);
                       if (!r && barrier) barrier->fail();
                       broker& b = owner->owner();
                       if (r && b.resend_rule_durable()) b.note_appended(partition, *r, entry.get());
                       if (outcome) outcome->complete(r.has_value());
                       b.budget().release(*share, ingest_cost);
                       if (share->waiting.exchange(false)) {
                           b.post(owner->index(), [owner, serial] {
                               if (connection* c = owner->find_connection(serial)) c->retry_parked();
                           });
                       }
                   });
    }

    msg->topic = std::move(p.topic);
    msg->payload = std::move(p.payload);
    shard_.publish(std::move(msg), barrier);
    if (barrier && barrier.use_count() == 1) {
        // Nothing durable holds it (no ingest, no persistent subscriber, not retained):
        // acknowledge now instead of posting to ourselves.
        bool ok = barrier->ok();
        barrier->disarm();
        barrier.reset();
        ack_ready(slot, ok);
    }
}

bool connection::reserve_ingest(uint64_t cost) {
    if (!ingest_share_) ingest_share_ = std::make_shared<ingest_budget::connection_share>();
    // Ask to be woken before trying: a release between a failed try and the flag would be lost.
    ingest_share_->waiting.store(true);
    const bus::bus& log = *shard_.owner().ingest().log;
    if (!shard_.owner().budget().try_reserve(*ingest_share_, cost, log.quota_headroom())) return false;
    ingest_share_->waiting.store(false);
    return true;
}

void connection::refill_publish_tokens() {
    const double rate = shard_.owner().options().max_publish_rate;
    const int64_t now = shard_.now_ms();
    if (publish_tokens_ < 0) {
        publish_tokens_ = rate;  // a full burst to start with
    } else {
        publish_tokens_ =
            std::min(rate, publish_tokens_ + static_cast<double>(now - tokens_refilled_ms_) * rate / 1000.0);
    }
    tokens_refilled_ms_ = now;
}

bool connection::take_publish_token() {
    refill_publish_tokens();
    if (publish_tokens_ < 1.0) return false;
    publish_tokens_ -= 1.0;
    return true;
}

void connection::retry_parked() {
    if (!parked_ || state_ != state::connected) return;
    last_received_ms_ = shard_.now_ms();  // a paused client is not idle: don't time it out
    if (shard_.owner().options().ingest_over_quota == broker_options::over_quota_policy::pause &&
        shard_.owner().ingest().log->over_quota()) {
        return;
    }
    if (shard_.owner().options().max_publish_rate != 0) {
        refill_publish_tokens();
        if (publish_tokens_ < 1.0) return;  // still over the rate: wait for the next tick
    }
    mqtt::publish p = std::move(*parked_);
    parked_.reset();
    handle_publish(std::move(p));
    update_reading();  // resuming also processes buffered input
}

void connection::update_reading() {
    if (state_ != state::connected) return;
    transport_.set_reading(!parked_);
}

void connection::disconnect_slow_subscriber() {
    if (state_ != state::connected) return;
    transport_.discard_unsent();
    close_with(mqtt::reason_code::quota_exceeded, true);
}

void connection::queue_ack(mqtt::packet_type type, uint16_t packet_id, mqtt::reason_code code, bool ready,
                           uint64_t slot, std::unique_ptr<subscription_reply> reply) {
    acks_.push_back(pending_ack{slot, type, packet_id, code, ready, std::move(reply)});
    if (type == mqtt::packet_type::puback) ++unacked_qos1_;
    flush_acks();
}

void connection::queue_subscription_ack(mqtt::packet_type type, uint16_t packet_id,
                                        std::unique_ptr<subscription_reply> reply,
                                        ack_barrier_ptr barrier,  // NOLINT(performance-unnecessary-value-param): our
                                                                  // own reference, counted by use_count() below
                                        uint64_t slot) {
    if (barrier.use_count() == 1) {
        // No other shard holds it (one loop): the change is in force everywhere already.
        barrier->disarm();
        queue_ack(type, packet_id, mqtt::reason_code::success, true, slot, std::move(reply));
        return;
    }
    queue_ack(type, packet_id, mqtt::reason_code::success, false, slot, std::move(reply));
    // Dropping our reference leaves the barrier to the other shards' posted updates.
}

void connection::ack_ready(uint64_t slot, bool ok) {
    for (auto& a : acks_) {
        if (a.slot != slot) continue;
        a.ready = true;
        if (!ok) {
            if (version_ != mqtt::version::v5) {
                // No way to say "not stored" in 3.1.1: close without acknowledging.
                close_with(mqtt::reason_code::unspecified_error, false);
                return;
            }
            a.code = mqtt::reason_code::unspecified_error;
            if (a.type == mqtt::packet_type::pubrec && session_ != nullptr) session_->inbound_qos2.erase(a.packet_id);
        }
        break;
    }
    flush_acks();
}

void connection::send_ack(pending_ack& a) {
    switch (a.type) {
        case mqtt::packet_type::puback: {
            mqtt::puback ack;
            ack.packet_id = a.packet_id;
            ack.code = a.code;
            send_packet(ack);
            --unacked_qos1_;
            break;
        }
        case mqtt::packet_type::pubrec: {
            mqtt::pubrec ack;
            ack.packet_id = a.packet_id;
            ack.code = a.code;
            send_packet(ack);
            break;
        }
        case mqtt::packet_type::suback: {
            mqtt::suback ack;
            ack.packet_id = a.packet_id;
            ack.codes = std::move(a.reply->codes);
            send_packet(ack);
            // Retained messages follow the SUBACK (MQTT 5 §3.8.4), looked up now so that
            // none is older than one already delivered live.
            if (session_ != nullptr) shard_.deliver_retained(*session_, a.reply->retained_filters);
            break;
        }
        default: {
            mqtt::unsuback ack;
            ack.packet_id = a.packet_id;
            ack.codes = std::move(a.reply->codes);
            send_packet(ack);
            break;
        }
    }
}

void connection::flush_acks() {
    while (!acks_.empty() && acks_.front().ready && state_ != state::closed) {
        pending_ack a = std::move(acks_.front());
        acks_.pop_front();
        send_ack(a);
    }
}

void connection::handle_puback(uint16_t id, mqtt::reason_code) {
    auto it = session_->inflight.find(id);
    if (it != session_->inflight.end() && it->second.st == inflight_entry::state::await_puback) {
        shard_.forget_message(*session_, it->second.order);
        session_->inflight.erase(it);
        shard_.pump(*session_);
    }
}

void connection::handle_pubrec(uint16_t id, mqtt::reason_code code) {
    auto it = session_->inflight.find(id);
    if (it == session_->inflight.end()) {
        if (version_ == mqtt::version::v5) {
            mqtt::pubrel rel;
            rel.packet_id = id;
            rel.code = mqtt::reason_code::packet_identifier_not_found;
            send_packet(rel);
        }
        return;
    }
    if (it->second.st == inflight_entry::state::await_puback) return;  // wrong flow; ignore
    if (is_failure(code)) {
        shard_.forget_message(*session_, it->second.order);
        session_->inflight.erase(it);
        shard_.pump(*session_);
        return;
    }
    it->second.st = inflight_entry::state::await_pubcomp;
    it->second.out.msg.reset();  // the payload is delivered; only the id is kept (MQTT 5 §4.3.3)
    shard_.persist_message(*session_, id, it->second);
    send_pubrel(id);
}

void connection::handle_pubrel(uint16_t id) {
    mqtt::pubcomp comp;
    comp.packet_id = id;
    if (session_->inbound_qos2.erase(id) == 0) {
        comp.code = mqtt::reason_code::packet_identifier_not_found;
    } else {
        shard_.persist_session(*session_);
    }
    if (version_ != mqtt::version::v5) comp.code = mqtt::reason_code::success;
    send_packet(comp);
}

void connection::handle_pubcomp(uint16_t id) {
    auto it = session_->inflight.find(id);
    if (it != session_->inflight.end() && it->second.st == inflight_entry::state::await_pubcomp) {
        shard_.forget_message(*session_, it->second.order);
        session_->inflight.erase(it);
        shard_.pump(*session_);
    }
}

void connection::handle_subscribe(mqtt::subscribe&& p) {
    for (const auto& e : p.entries) {
        if (e.no_local && mqtt::parse_shared(e.filter)) {
            // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
            close_with(mqtt::reason_code::protocol_error, true);
            return;
        }
    }
    uint64_t slot = next_ack_slot_++;
    auto applied = std::make_shared<ack_barrier>(shard_.owner(), shard_.index(), serial_, slot);
    auto reply = std::make_unique<subscription_reply>();
    reply->codes = shard_.subscribe(*session_, p, applied, reply->retained_filters);
    queue_subscription_ack(mqtt::packet_type::suback, p.packet_id, std::move(reply), std::move(applied), slot);
}

void connection::handle_unsubscribe(mqtt::unsubscribe&& p) {
    uint64_t slot = next_ack_slot_++;
    auto applied = std::make_shared<ack_barrier>(shard_.owner(), shard_.index(), serial_, slot);
    auto reply = std::make_unique<subscription_reply>();
    reply->codes = shard_.unsubscribe(*session_, p, applied);
    queue_subscription_ack(mqtt::packet_type::unsuback, p.packet_id, std::move(reply), std::move(applied), slot);
}

void connection::handle_disconnect(mqtt::disconnect&& p) {
    if (version_ == mqtt::version::v5 && p.props.session_expiry_interval) {
        if (session_->expiry_interval == 0 && *p.props.session_expiry_interval != 0) {
            // [MQTT-3.14.2-2]: cannot turn a 0 session expiry into a non-zero one.
            close_with(mqtt::reason_code::protocol_error, true);
            return;
        }
        session_->expiry_interval =
            std::min(*p.props.session_expiry_interval, shard_.owner().options().max_session_expiry);
    }
    bool will_due = p.code == mqtt::reason_code::disconnect_with_will_message;
    finish(will_due);
}

void connection::on_transport_closed() {
    if (state_ == state::closed) return;
    finish(true);
}

void connection::check_keep_alive(int64_t now_ms) {
    if (state_ == state::awaiting_connect) {
        if (now_ms - last_received_ms_ > k_connect_timeout_ms) {
            state_ = state::closed;
            transport_.close();
        }
        return;
    }
    if (parked_) retry_parked();
    if (state_ != state::connected || keep_alive_s_ == 0) return;
    if (now_ms - last_received_ms_ > static_cast<int64_t>(keep_alive_s_) * 1500) {
        shard_stats::add(shard_.stats().keep_alive_timeouts);
        close_with(mqtt::reason_code::keep_alive_timeout, true);
    }
}

void connection::close_with(mqtt::reason_code code, bool notify) {
    if (state_ == state::closed) return;
    if (notify && state_ == state::connected && version_ == mqtt::version::v5) {
        mqtt::disconnect d;
        d.code = code;
        send_packet(d);
    }
    if (state_ == state::awaiting_connect || state_ == state::authenticating) {
        state_ = state::closed;
        transport_.close();
        return;
    }
    finish(true);
}

std::pair<std::optional<mqtt::will>, uint32_t> connection::taken_over() {
    if (state_ == state::connected && version_ == mqtt::version::v5) {
        mqtt::disconnect d;
        d.code = mqtt::reason_code::session_taken_over;
        send_packet(d);
    }
    state_ = state::closed;
    session_ = nullptr;
    transport_.close();
    std::optional<mqtt::will> w;
    if (will_) w = std::move(*will_);
    will_.reset();
    return {std::move(w), will_delay_s_};
}

void connection::finish(bool abnormal) {
    state_ = state::closed;
    if (session_ != nullptr) {
        session* s = session_;
        session_ = nullptr;
        shard_.session_disconnected(*s, abnormal, will_.get(), will_delay_s_);
    }
    will_.reset();
    transport_.close();
}

bool connection::send_publish(const outgoing& out, uint16_t packet_id, bool dup) {
    const message& m = *out.msg;
    mqtt::publish h;
    h.qos = out.qos;
    h.retain = out.retain;
    h.dup = dup;
    h.packet_id = packet_id;
    bool new_alias = false;
    if (version_ == mqtt::version::v5) {
        h.props = m.props;
        h.props.subscription_identifiers = out.subscription_ids;
        if (m.expires_at_ms != 0) h.props.message_expiry_interval = remaining_expiry_s(m, broker::monotonic_ms());
        if (client_topic_alias_max_ != 0) {
            auto it = outbound_aliases_.find(m.topic);
            if (it != outbound_aliases_.end()) {
                h.props.topic_alias = it->second;
            } else if (outbound_aliases_.size() < client_topic_alias_max_) {
                uint16_t alias = static_cast<uint16_t>(outbound_aliases_.size() + 1);
                outbound_aliases_.emplace(m.topic, alias);
                h.props.topic_alias = alias;
                new_alias = true;
            }
        }
    }
    if (!h.props.topic_alias || new_alias) h.topic = m.topic;
    std::string header;
    header.reserve(16 + m.topic.size());
    mqtt::encode_publish_header(h, m.payload.size(), version_, header);
    uint32_t limit = session_ != nullptr ? session_->client_max_packet_size : mqtt::max_packet_size_limit;
    if (header.size() + m.payload.size() > limit) {
        if (new_alias) outbound_aliases_.erase(m.topic);
        shard_stats::add(shard_.stats().dropped_too_large);
        return false;
    }
    transport_.send_publish(std::move(header), out.msg);
    shard_stats::add(shard_.stats().messages_sent);
    return true;
}

void connection::send_pubrel(uint16_t packet_id) {
    mqtt::pubrel rel;
    rel.packet_id = packet_id;
    send_packet(rel);
}

bool connection::output_congested() const {
    return transport_.pending_output_bytes() > shard_.owner().options().max_pending_output_bytes;
}

size_t connection::pending_output_bytes() const {
    return transport_.pending_output_bytes();
}

void connection::send_packet(const mqtt::packet& p) {
    std::string out;
    mqtt::encode(p, version_, out);
    transport_.send(std::move(out));
}

}  // namespace sluice::broker
