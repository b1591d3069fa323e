// SPDX-License-Identifier: Apache-2.0
//
// The access-control half of broker::connection (issue 12), kept apart from the protocol
// so the two change independently: handing a CONNECT to the authority and resuming it when
// the verdict comes back, and the ACL checks on PUBLISH. Subscriptions and deliveries are
// checked in shard.cc through connection::may(). docs/security.md describes the behaviour.
#include "auth/authority.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/shard.h"

namespace sluice::broker {
namespace {

// "10.1.2.3:5555" -> "10.1.2.3", "::1:5555" -> "::1": the rate limit is per host.
std::string host_of(const std::string& peer) {
    size_t colon = peer.rfind(':');
    return colon == std::string::npos ? peer : peer.substr(0, colon);
}

}  // namespace

void connection::begin_authentication(mqtt::connect&& p, bool id_assigned) {
    auth::authority* a = shard_.owner().authority();
    state_ = state::authenticating;
    client_id_ = p.client_id;
    has_username_ = p.username.has_value();
    username_ = p.username.value_or("");
    // Packets that follow the CONNECT stay buffered in net/ until the verdict is in.
    transport_.set_reading(false);

    // A verified client certificate names the client: its identity is the username, and
    // no password is asked (mosquitto's use_identity_as_username).
    const std::string& certified = transport_.certificate_identity();
    if (!certified.empty()) {
        has_username_ = true;
        username_ = certified;
    }

    auth::credentials c;
    c.client_id = p.client_id;
    c.peer_address = host_of(transport_.peer());
    c.certified = !certified.empty();
    c.has_username = has_username_;
    c.username = username_;
    c.has_password = p.password.has_value();
    if (p.password) {
        c.password = std::move(*p.password);
        p.password.reset();
    }
    pending_connect_ = std::make_unique<mqtt::connect>(std::move(p));
    pending_id_assigned_ = id_assigned;

    // The verdict may come from the authority's worker thread: post it back to our loop and
    // find this connection by serial (it may have gone meanwhile).
    broker* brk = &shard_.owner();
    unsigned index = shard_.index();
    uint64_t serial = serial_;
    a->authenticate(std::move(c), [brk, index, serial](auth::verdict v) {
        brk->post(index, [brk, index, serial, v] {
            if (connection* conn = brk->get_shard(index).find_connection(serial)) conn->auth_done(v);
        });
    });
}

void connection::auth_done(auth::verdict v) {
    if (state_ != state::authenticating || !pending_connect_) return;
    std::unique_ptr<mqtt::connect> p = std::move(pending_connect_);
    state_ = state::awaiting_connect;
    if (v == auth::verdict::accepted && p->will_message && !may(p->will_message->topic, auth::operation::publish)) {
        // A will this client may not publish is refused now rather than dropped later.
        SLUICE_INFO("auth", "%s (client %s): will topic %s not allowed", transport_.peer().c_str(),
                    p->client_id.c_str(), p->will_message->topic.c_str());
        v = auth::verdict::client_id_bound;  // answered as "not authorized"
    }
    switch (v) {
        case auth::verdict::accepted:
            break;
        case auth::verdict::bad_credentials:
            reject_connect(mqtt::reason_code::bad_user_name_or_password);  // 3.1.1: 4
            return;
        case auth::verdict::rate_limited:
            reject_connect(version_ == mqtt::version::v5 ? mqtt::reason_code::connection_rate_exceeded
                                                         : mqtt::reason_code::not_authorized);
            return;
        case auth::verdict::not_authorized:
        case auth::verdict::client_id_bound:
            reject_connect(mqtt::reason_code::not_authorized);  // 3.1.1: 5
            return;
    }
    authenticated_ = true;
    handle_connect(std::move(*p), pending_id_assigned_);
    if (state_ == state::connected) {
        transport_.set_reading(true);  // handles what arrived meanwhile
        update_reading();
    }
}

bool connection::may(std::string_view topic, auth::operation op) {
    auth::authority* a = shard_.owner().authority();
    return a == nullptr || a->allowed(username_, has_username_, client_id_, topic, op);
}

bool connection::publish_allowed(const mqtt::publish& p) {
    if (may(p.topic, auth::operation::publish)) return true;
    SLUICE_DEBUG("auth", "%s (client %s): publish to %s denied", transport_.peer().c_str(), client_id_.c_str(),
                 p.topic.c_str());
    if (p.qos == 0) return false;
    if (version_ == mqtt::version::v5) {
        mqtt::packet_type t = p.qos == 1 ? mqtt::packet_type::puback : mqtt::packet_type::pubrec;
        queue_ack(t, p.packet_id, mqtt::reason_code::not_authorized, true, next_ack_slot_++);
        return false;
    }
    // MQTT 3.1.1 has no negative acknowledgement: acknowledge (so the client does not
    // retransmit forever) and drop, as mosquitto does; the denial is counted.
    if (p.qos == 1) {
        queue_ack(mqtt::packet_type::puback, p.packet_id, mqtt::reason_code::success, true, next_ack_slot_++);
    } else {
        // PUBREC now; the PUBREL that follows finds no stored id and gets its PUBCOMP.
        queue_ack(mqtt::packet_type::pubrec, p.packet_id, mqtt::reason_code::success, true, next_ack_slot_++);
    }
    return false;
}

}  // namespace sluice::broker
