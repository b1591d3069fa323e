// SPDX-License-Identifier: Apache-2.0
//
// The MQTT protocol for one client connection, on the server side: decodes packets
// from the bytes net/ hands it, enforces the protocol (CONNECT first, keep-alive,
// Receive Maximum, topic aliases, packet ids), drives the QoS 1/2 state machines and
// encodes replies through its transport. It knows no sockets.
//
// Acknowledgement contract: a QoS 1/2 PUBLISH whose topic matches the ingest hook is
// acknowledged (PUBACK/PUBREC) only after the bus reports it durable; a SUBACK/UNSUBACK
// only after every shard's subscription index applied the change (MQTT 3.8.4/3.10.4:
// a message published after the client saw the SUBACK reaches it, one published after
// the UNSUBACK does not). Acknowledgements leave in the order their packets arrived.
//
// Lifecycle: created by net/ for an accepted socket on its loop, attached to that
// loop's shard; closed by the peer, by a protocol error, by takeover or by shutdown.
// After close() the object lingers until net/ destroys it at the end of the iteration.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "auth/acl.h"
#include "auth/authority.h"
#include "base/fifo.h"
#include "broker/ack_barrier.h"
#include "broker/ingest_budget.h"
#include "broker/session.h"
#include "broker/transport.h"
#include "mqtt/types.h"

namespace sluice::broker {

class shard;

class connection {
public:
    connection(shard& owner, transport& t);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    uint64_t serial() const { return serial_; }
    bool closed() const { return state_ == state::closed; }
    mqtt::version protocol() const { return version_; }
    session* current_session() const { return session_; }

    // Consumes whole packets from `data`; returns how many bytes it used. Stops early once
    // the connection closes. A trailing partial packet is left for the next call.
    size_t on_data(std::string_view data);
    // A CONNECT that net/ already decoded (to pick the shard) before handing us the socket.
    // `id_assigned`: net/ gave it a client id because it came empty.
    void on_connect(mqtt::connect&& pkt, bool id_assigned);
    // The transport saw EOF or an error: abnormal close (will is published).
    void on_transport_closed();
    // The authority decided this connection's CONNECT (posted back to our loop).
    void auth_done(auth::verdict v);
    // ACL check for this client (true when no ACL is configured). Denials are counted.
    bool may(std::string_view topic, auth::operation op);
    // Keep-alive check, from the shard's periodic tick.
    void check_keep_alive(int64_t now_ms);

    // Protocol-level close. v5 clients get a DISCONNECT with `code` first when `notify`.
    void close_with(mqtt::reason_code code, bool notify);
    // Taken over by a new connection with the same client id: tells a v5 client (0x8E),
    // closes, and returns its will and will delay for the shard to decide on.
    std::pair<std::optional<mqtt::will>, uint32_t> taken_over();

    // Sends one PUBLISH to this client (shard decides QoS/packet id). Returns false if the
    // message was too large for the client's Maximum Packet Size (dropped, not sent).
    bool send_publish(const outgoing& out, uint16_t packet_id, bool dup);
    void send_pubrel(uint16_t packet_id);
    bool output_congested() const;
    size_t pending_output_bytes() const;

    // Retries a PUBLISH held while the bus was over quota; resumes reading once it went through.
    void retry_parked();
    // Reading from the socket follows parked_ (bus quota): it is off while a PUBLISH is held.
    void update_reading();
    // The subscriber passed its queue bound (subscriber_queue.h): drops the output not yet
    // started (its QoS 1/2 messages stay in the session, resent on reconnect), tells a v5
    // client Quota exceeded (0x97) and closes. The session lives on per its expiry.
    void disconnect_slow_subscriber();
    const std::string& peer() const { return transport_.peer(); }

    // Every durable effect of the PUBLISH in `ack_slot` completed (posted back to our loop
    // by its ack_barrier); `ok` false if one failed.
    void ack_ready(uint64_t ack_slot, bool ok);

private:
    // authenticating: CONNECT received, the authority is checking it; reading is paused.
    enum class state : uint8_t { awaiting_connect, authenticating, connected, closed };

    // What a SUBACK/UNSUBACK carries besides its packet id: a reason code per entry and,
    // for a SUBACK, the filters whose retained messages follow it.
    struct subscription_reply {
        std::vector<mqtt::reason_code> codes;
        std::vector<std::string> retained_filters;
    };
    // An acknowledgement to send once `ready`; kept in arrival order.
    struct pending_ack {
        uint64_t slot;
        mqtt::packet_type type;  // puback, pubrec, suback or unsuback
        uint16_t packet_id;
        mqtt::reason_code code;
        bool ready;
        std::unique_ptr<subscription_reply> reply;  // suback/unsuback only
    };

    void handle(mqtt::packet&& p);
    void handle_connect(mqtt::connect&& p, bool id_assigned);
    void handle_publish(mqtt::publish&& p);
    // Hands the CONNECT to the authority; handle_connect() resumes from auth_done().
    void begin_authentication(mqtt::connect&& p, bool id_assigned);
    // ACL for an inbound PUBLISH. On denial answers it (PUBACK/PUBREC 0x87 in 5.0, a plain
    // acknowledgement in 3.1.1) and returns false: the message is neither routed nor ingested.
    bool publish_allowed(const mqtt::publish& p);
    void handle_puback(uint16_t id, mqtt::reason_code code);
    void handle_pubrec(uint16_t id, mqtt::reason_code code);
    void handle_pubrel(uint16_t id);
    void handle_pubcomp(uint16_t id);
    void handle_subscribe(mqtt::subscribe&& p);
    void handle_unsubscribe(mqtt::unsubscribe&& p);
    void handle_disconnect(mqtt::disconnect&& p);
    void protocol_violation(std::error_code ec);
    void reject_connect(mqtt::reason_code code);
    void send_packet(const mqtt::packet& p);
    void queue_ack(mqtt::packet_type type, uint16_t packet_id, mqtt::reason_code code, bool ready, uint64_t slot,
                   std::unique_ptr<subscription_reply> reply = nullptr);
    // Queues a SUBACK/UNSUBACK that leaves once `barrier` (held by the other shards'
    // index updates) is released.
    void queue_subscription_ack(mqtt::packet_type type, uint16_t packet_id, std::unique_ptr<subscription_reply> reply,
                                ack_barrier_ptr barrier, uint64_t slot);
    void send_ack(pending_ack& a);
    void flush_acks();
    void finish(bool abnormal);
    // Reserves `cost` bytes of the ingest budget; false: hold the PUBLISH (woken on release).
    bool reserve_ingest(uint64_t cost);
    // mqtt.max_publish_rate: takes a token if one has refilled; false = over the rate.
    bool take_publish_token();
    void refill_publish_tokens();

    shard& shard_;
    transport& transport_;
    uint64_t serial_;
    state state_ = state::awaiting_connect;
    mqtt::version version_ = mqtt::version::v5;
    session* session_ = nullptr;

    int64_t last_received_ms_ = 0;
    double publish_tokens_ = -1;  // mqtt.max_publish_rate bucket; < 0: not started
    int64_t tokens_refilled_ms_ = 0;
    std::unique_ptr<mqtt::will> will_;  // heap: mqtt::will is ~1 KB, most connections have none

    // Identity (issue 12): fixed at CONNECT, checked by the ACL.
    std::string client_id_;
    std::string username_;
    std::unique_ptr<mqtt::connect> pending_connect_;  // while authenticating

    // Inbound topic aliases (client -> us) and outbound (us -> client).
    std::unordered_map<uint16_t, std::string> inbound_aliases_;
    std::unordered_map<std::string, uint16_t> outbound_aliases_;

    fifo<pending_ack> acks_;
    uint64_t next_ack_slot_ = 0;
    std::unique_ptr<mqtt::publish> parked_;  // held while the bus is over quota or the ingest budget is spent
    std::shared_ptr<ingest_budget::connection_share> ingest_share_;  // bytes this connection has in flight

    // The small fields, together (no padding between pointers and strings).
    uint32_t will_delay_s_ = 0;
    // QoS 1 PUBLISHes whose PUBACK is not sent yet. With the session's QoS 2 packet ids
    // awaiting PUBREL (PUBCOMP not sent), this is what Receive Maximum limits.
    uint32_t unacked_qos1_ = 0;
    uint16_t keep_alive_s_ = 0;
    uint16_t client_topic_alias_max_ = 0;
    bool request_problem_information_ = true;
    bool has_username_ = false;  // identity (issue 12), fixed at CONNECT
    bool authenticated_ = false;
    bool pending_id_assigned_ = false;  // while authenticating
};

}  // namespace sluice::broker
