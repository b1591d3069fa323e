// SPDX-License-Identifier: Apache-2.0
#include "broker/persistence.h"

#include <chrono>

#include "base/clock.h"
#include "broker/ack_barrier.h"

namespace sluice::broker {
namespace {

persist::message_properties to_record_props(const mqtt::properties& p) {
    persist::message_properties out;
    out.payload_format_indicator = p.payload_format_indicator;
    out.content_type = p.content_type;
    out.response_topic = p.response_topic;
    out.correlation_data = p.correlation_data;
    for (const auto& u : p.user_properties)
        out.user_properties.emplace_back(u.key, u.value);
    return out;
}

void from_record_props(persist::message_properties&& in, mqtt::properties& out) {
    out.payload_format_indicator = in.payload_format_indicator;
    out.content_type = std::move(in.content_type);
    out.response_topic = std::move(in.response_topic);
    out.correlation_data = std::move(in.correlation_data);
    for (auto& [k, v] : in.user_properties)
        out.user_properties.push_back(mqtt::user_property{std::move(k), std::move(v)});
}

}  // namespace

int64_t persistence::wall_now() {
    return unix_ms();
}

persist::message_record persistence::to_record(const message& m, int64_t now_mono) {
    persist::message_record r;
    r.topic = m.topic;
    r.payload = m.payload;
    r.qos = m.qos;
    r.retain = m.retain;
    r.props = to_record_props(m.props);
    r.expires_at_ms = m.expires_at_ms != 0 ? to_wall(m.expires_at_ms, now_mono) : 0;
    return r;
}

message_ptr persistence::to_message(persist::message_record&& r, int64_t now_mono) {
    auto m = std::make_shared<message>();
    m->topic = std::move(r.topic);
    m->payload = std::move(r.payload);
    m->qos = r.qos;
    m->retain = r.retain;
    from_record_props(std::move(r.props), m->props);
    m->expires_at_ms = r.expires_at_ms != 0 ? std::max<int64_t>(1, to_mono(r.expires_at_ms, now_mono)) : 0;
    return m;
}

void persistence::save_record(const persist::session_record& r) {
    if (!store_) return;
    store_->put(persist::kind::session, r.client_id, persist::encode(r));
}

persist::session_record persistence::to_record(const session& s, int64_t now_mono) {
    persist::session_record r;
    r.client_id = s.client_id();
    r.protocol_version = static_cast<uint8_t>(s.protocol);
    r.expiry_interval = s.expiry_interval;
    r.disconnected_at_ms = s.conn == nullptr ? to_wall(s.disconnected_at_ms, now_mono) : 0;
    for (const auto& [filter, o] : s.subscriptions) {
        r.subscriptions.push_back(persist::subscription_record{filter, o.qos, o.no_local, o.retain_as_published,
                                                               o.retain_handling, o.subscription_id});
    }
    r.inbound_qos2.assign(s.inbound_qos2.begin(), s.inbound_qos2.end());
    if (s.pending_will) {
        const auto& w = *s.pending_will;
        persist::will_record wr;
        wr.topic = w.topic;
        wr.payload = w.payload;
        wr.qos = w.qos;
        wr.retain = w.retain;
        wr.props = to_record_props(w.props);
        wr.message_expiry_interval = w.props.message_expiry_interval;
        wr.due_at_ms = to_wall(s.will_due_ms, now_mono);
        r.will = std::move(wr);
    }
    return r;
}

void persistence::erase_session(const std::string& client_id) {
    if (!store_) return;
    store_->erase(persist::kind::session, client_id);
    store_->erase_prefix(persist::kind::session_message, persist::session_message_prefix(client_id));
    store_->erase_prefix(persist::kind::resend_entry, persist::session_message_prefix(client_id));
    store_->erase(persist::kind::spool, client_id);
}

void persistence::save_resend_entry(std::string_view client_id, uint16_t slot, uint16_t packet_id,
                                    uint64_t fingerprint) {
    if (!store_) return;
    store_->put(persist::kind::resend_entry, persist::resend_entry_key(client_id, slot),
                persist::encode(persist::resend_entry_record{packet_id, fingerprint}));
}

void persistence::erase_resend_entry(std::string_view client_id, uint16_t slot) {
    if (!store_) return;
    store_->erase(persist::kind::resend_entry, persist::resend_entry_key(client_id, slot));
}

void persistence::save_resend_checkpoint(uint32_t partition, uint64_t next_offset) {
    if (!store_) return;
    store_->put(persist::kind::resend_checkpoint, persist::resend_checkpoint_key(partition),
                persist::encode(persist::resend_checkpoint_record{next_offset}));
}

void persistence::save_message(const session& s, const outgoing& out, uint16_t packet_id,
                               persist::session_message_record::state st, int64_t now_mono) {
    if (!store_) return;
    persist::session_message_record r;
    r.order = out.order;
    r.packet_id = packet_id;
    r.st = st;
    r.qos = out.qos;
    r.retain = out.retain;
    r.subscription_ids = out.subscription_ids;
    if (out.msg) r.message = to_record(*out.msg, now_mono);  // released once PUBREC arrived
    store_->put(persist::kind::session_message, persist::session_message_key(s.client_id(), out.order),
                persist::encode(r));
}

void persistence::erase_message(const session& s, uint64_t order) {
    if (!store_) return;
    store_->erase(persist::kind::session_message, persist::session_message_key(s.client_id(), order));
}

void persistence::save_spool(const session& s) {
    if (!store_) return;
    const spool_state& sp = s.spool;
    store_->put(persist::kind::spool, s.client_id(),
                persist::encode(persist::spool_record{sp.file_id, sp.read_offset, sp.end_offset, sp.count, sp.bytes,
                                                      sp.last_order}));
}

void persistence::erase_spool(std::string_view client_id) {
    if (!store_) return;
    store_->erase(persist::kind::spool, client_id);
}

void persistence::after_durable(std::function<void()> fn) {
    if (!store_) {
        fn();
        return;
    }
    store_->when_durable([fn = std::move(fn)](std::error_code) { fn(); });
}

void persistence::save_retained(const message& m, int64_t now_mono) {
    if (!store_) return;
    store_->put(persist::kind::retained, m.topic, persist::encode(to_record(m, now_mono)));
}

void persistence::hold(const std::shared_ptr<ack_barrier>& barrier) {
    if (!store_ || !barrier) return;
    store_->when_durable([barrier](std::error_code ec) {
        if (ec) barrier->fail();
    });
}

void persistence::erase_retained(const std::string& topic) {
    if (!store_) return;
    store_->erase(persist::kind::retained, topic);
}

}  // namespace sluice::broker
