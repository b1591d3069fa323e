// SPDX-License-Identifier: Apache-2.0
//
// The MQTT client state machine of a simulated device or subscriber (see worker.h):
// CONNECT/CONNACK (resuming or re-queueing unacknowledged messages), SUBSCRIBE, the QoS 1
// and 2 flows in both directions, the inflight window that paces publishing, and the
// churn scenario's disconnect after each CONNACK.
#include <algorithm>

#include "worker.h"

namespace sluice::loadgen {

void worker::send_connect(connection& c) {
    mqtt::connect p;
    p.protocol = s_.opts.protocol;
    p.client_id = c.client_id;
    p.keep_alive = s_.opts.keep_alive;
    const bool persistent = s_.opts.persistent;
    p.clean_start = !persistent;
    if (persistent && s_.opts.protocol == mqtt::version::v5) p.props.session_expiry_interval = 3600;
    if (s_.opts.protocol == mqtt::version::v5) p.props.receive_maximum = 65535;
    mqtt::encode(mqtt::packet{std::move(p)}, s_.opts.protocol, c.out);
    c.state = conn_state::wait_connack;
    mark_dirty(c);
}

void worker::on_packet(connection& c, mqtt::packet& pkt) {
    switch (mqtt::type_of(pkt)) {
        case mqtt::packet_type::connack:
            on_connack(c, std::get<mqtt::connack>(pkt));
            break;
        case mqtt::packet_type::suback:
            on_suback(c, std::get<mqtt::suback>(pkt));
            break;
        case mqtt::packet_type::publish:
            on_publish(c, std::get<mqtt::publish>(pkt));
            break;
        case mqtt::packet_type::puback: {
            const auto& a = std::get<mqtt::puback>(pkt);
            on_ack(c, a.packet_id, static_cast<uint8_t>(a.code) < 0x80);
            break;
        }
        case mqtt::packet_type::pubrec:
            on_pubrec(c, std::get<mqtt::pubrec>(pkt));
            break;
        case mqtt::packet_type::pubcomp: {
            const auto& a = std::get<mqtt::pubcomp>(pkt);
            on_ack(c, a.packet_id, static_cast<uint8_t>(a.code) < 0x80);
            break;
        }
        case mqtt::packet_type::pubrel: {
            const auto id = std::get<mqtt::pubrel>(pkt).packet_id;
            std::erase(c.qos2_received, id);
            mqtt::encode(mqtt::packet{mqtt::pubcomp{id, {}, {}}}, s_.opts.protocol, c.out);
            mark_dirty(c);
            break;
        }
        case mqtt::packet_type::pingresp:
            break;
        case mqtt::packet_type::disconnect:
            close_conn(c, true);
            break;
        default:
            close_conn(c, true);
            break;
    }
}

void worker::on_connack(connection& c, const mqtt::connack& a) {
    if (c.state != conn_state::wait_connack || static_cast<uint8_t>(a.code) >= 0x80) {
        close_conn(c, true);
        return;
    }
    c.failures = 0;
    stats.connects.fetch_add(1, std::memory_order_relaxed);
    stats.connect_latency.record((mono_ns() - c.connect_started) / 1000);
    if (s_.opts.kind == scenario::churn && !c.subscriber) {
        c.state = conn_state::ready;
        stats.ready.fetch_add(1, std::memory_order_relaxed);
        if (s_.now() == phase::running) churn(c);
        return;
    }
    c.max_inflight = s_.opts.max_inflight;
    if (a.props.receive_maximum) c.max_inflight = std::min<uint32_t>(c.max_inflight, *a.props.receive_maximum);
    if (a.session_present) stats.sessions_resumed.fetch_add(1, std::memory_order_relaxed);
    if (c.subscriber) {
        mqtt::subscribe sub;
        sub.packet_id = 1;
        sub.entries.push_back(
            mqtt::subscription{s_.sub_filter, static_cast<uint8_t>(s_.opts.sub_qos), false, false, 0});
        mqtt::encode(mqtt::packet{std::move(sub)}, s_.opts.protocol, c.out);
        c.state = conn_state::wait_suback;
        mark_dirty(c);
        return;
    }
    c.state = conn_state::ready;
    stats.ready.fetch_add(1, std::memory_order_relaxed);
    // Unacknowledged messages: same packet ids when the broker kept the session,
    // otherwise back to the queue as new messages.
    if (a.session_present) {
        for (auto& m : c.inflight) {
            if (m.released) {
                mqtt::encode(mqtt::packet{mqtt::pubrel{m.packet_id, {}, {}}}, s_.opts.protocol, c.out);
            } else {
                write_publish(c, m, true);
            }
        }
    } else {
        for (auto it = c.inflight.rbegin(); it != c.inflight.rend(); ++it) {
            it->packet_id = 0;
            it->released = false;
            c.queue.push_front(std::move(*it));
            stats.queued.fetch_add(1, std::memory_order_relaxed);
        }
        stats.inflight.fetch_sub(static_cast<int64_t>(c.inflight.size()), std::memory_order_relaxed);
        c.inflight.clear();
    }
    c.had_session = true;
    send_queued(c);
    mark_dirty(c);
}

void worker::on_suback(connection& c, const mqtt::suback& a) {
    if (c.state != conn_state::wait_suback || a.codes.empty() || static_cast<uint8_t>(a.codes[0]) >= 0x80) {
        close_conn(c, true);
        return;
    }
    c.state = conn_state::ready;
    stats.sub_ready.fetch_add(1, std::memory_order_relaxed);
}

void worker::on_publish(connection& c, const mqtt::publish& p) {
    if (p.qos == 1) {
        mqtt::encode(mqtt::packet{mqtt::puback{p.packet_id, {}, {}}}, s_.opts.protocol, c.out);
        mark_dirty(c);
    } else if (p.qos == 2) {
        mqtt::encode(mqtt::packet{mqtt::pubrec{p.packet_id, {}, {}}}, s_.opts.protocol, c.out);
        mark_dirty(c);
        // Exactly-once on the wire: a resent PUBLISH before PUBREL is the same message.
        if (std::find(c.qos2_received.begin(), c.qos2_received.end(), p.packet_id) != c.qos2_received.end()) return;
        c.qos2_received.push_back(p.packet_id);
    }
    if (!c.ledger) return;
    // The slow subscriber is reported on its own; the drain waits for the others.
    if (!c.slow) stats.received.fetch_add(1, std::memory_order_relaxed);
    const int64_t now_ns = unix_now_ns();
    switch (s_.opts.format) {
        case payload_kind::raw: {
            const auto t = decode_raw(p.payload);
            if (!t) break;
            c.ledger->on_message(t->device, t->seq, (now_ns - t->time_ns) / 1000);
            return;
        }
        case payload_kind::binary:
        case payload_kind::json: {
            const auto device = s_.topics.device_of(p.topic);
            const auto t =
                s_.opts.format == payload_kind::binary ? decode_binary_truth(p.payload) : decode_json_truth(p.payload);
            if (!device || !t) break;
            c.ledger->on_message(*device, t->seq, (now_ns / 1'000'000 - t->newest_ms) * 1000);
            return;
        }
    }
    c.ledger->on_foreign();
}

void worker::on_pubrec(connection& c, const mqtt::pubrec& a) {
    auto it = std::find_if(c.inflight.begin(), c.inflight.end(),
                           [&](const pending& m) { return m.packet_id == a.packet_id; });
    if (it == c.inflight.end()) return;
    if (static_cast<uint8_t>(a.code) >= 0x80) {
        on_ack(c, a.packet_id, false);
        return;
    }
    it->released = true;
    mqtt::encode(mqtt::packet{mqtt::pubrel{a.packet_id, {}, {}}}, s_.opts.protocol, c.out);
    mark_dirty(c);
}

void worker::on_ack(connection& c, uint16_t id, bool success) {
    auto it = std::find_if(c.inflight.begin(), c.inflight.end(), [&](const pending& m) { return m.packet_id == id; });
    if (it == c.inflight.end()) return;  // a late duplicate ack
    if (success) {
        s_.sends.on_acked(it->device, it->seq, it->readings);
        stats.acked.fetch_add(1, std::memory_order_relaxed);
        stats.readings_acked.fetch_add(it->readings, std::memory_order_relaxed);
        stats.ack_latency.record((mono_ns() - it->sent_mono) / 1000);
    } else {
        stats.rejected.fetch_add(1, std::memory_order_relaxed);
    }
    c.inflight.erase(it);
    stats.inflight.fetch_sub(1, std::memory_order_relaxed);
    send_queued(c);
}

// --scenario churn: a connection that got its CONNACK disconnects and connects again at
// once (from the timer, after this loop iteration's events).
void worker::churn(connection& c) {
    goodbye(c);
    timers_.push(timer{mono_ns(), c.slot, 1});
}

bool worker::room(const connection& c) const {
    if (s_.opts.qos == 0) return c.out.size() - c.out_off < (1u << 16);
    return c.inflight.size() < c.max_inflight;
}

void worker::send_queued(connection& c) {
    if (c.state != conn_state::ready || c.subscriber) return;
    bool wrote = false;
    while (!c.queue.empty() && room(c)) {
        pending m = std::move(c.queue.front());
        c.queue.pop_front();
        stats.queued.fetch_sub(1, std::memory_order_relaxed);
        if (s_.opts.qos > 0) {
            do {
                m.packet_id = c.next_pid++;
                if (c.next_pid == 0) c.next_pid = 1;
            } while (std::any_of(c.inflight.begin(), c.inflight.end(),
                                 [&](const pending& x) { return x.packet_id == m.packet_id; }));
        }
        write_publish(c, m, false);
        if (s_.opts.qos > 0) {
            c.inflight.push_back(std::move(m));
            stats.inflight.fetch_add(1, std::memory_order_relaxed);
        }
        wrote = true;
    }
    if (wrote) mark_dirty(c);
}

void worker::write_publish(connection& c, pending& m, bool dup) {
    mqtt::publish p;
    p.topic = c.topic;
    p.qos = s_.opts.qos;
    p.dup = dup;
    p.packet_id = m.packet_id;
    mqtt::encode_publish_header(p, m.payload.size(), s_.opts.protocol, c.out);
    c.out.append(m.payload);
    m.sent_mono = mono_ns();
    if (!m.ever_sent) {
        m.ever_sent = true;
        s_.sends.on_sent(m.device, m.seq);
        stats.published.fetch_add(1, std::memory_order_relaxed);
        stats.readings_sent.fetch_add(m.readings, std::memory_order_relaxed);
    }
    mark_dirty(c);
}

}  // namespace sluice::loadgen
