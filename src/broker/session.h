// SPDX-License-Identifier: Apache-2.0
//
// MQTT session state: what outlives a network connection (subscriptions, QoS 1/2
// messages in flight and queued, QoS 2 packet ids awaiting PUBREL, the pending will).
// A session belongs to exactly one shard (the one its client id hashes to) and is
// touched only on that shard's event loop.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fifo.h"
#include "broker/message.h"
#include "broker/resend_window.h"
#include "broker/retained_backlog.h"
#include "broker/topic_index.h"
#include "mqtt/types.h"

namespace sluice::broker {

class connection;

// A message on its way to one subscriber.
struct outgoing {
    message_ptr msg;
    uint8_t qos = 0;
    bool retain = false;  // the RETAIN flag as sent to this subscriber
    std::vector<uint32_t> subscription_ids;
    uint64_t order = 0;  // position in the session's send order (0: not yet queued)
    // Read from the session's spool: where its record ends there (0: not from a spool).
    uint64_t spool_end = 0;
};

// Where a session's spooled messages are (session_spool.h). The records in
// [read_offset, end_offset) of the file are queued: those before loaded_offset are also
// in session::queue (its last `loaded` entries), the rest only on disk.
struct spool_state {
    std::shared_ptr<class spool_file> file;  // null until used since the start
    uint64_t file_id = 0;                    // 0: the session has no spool file
    uint64_t read_offset = 0;
    uint64_t loaded_offset = 0;
    uint64_t end_offset = 0;
    uint64_t count = 0;  // records in [read_offset, end_offset)
    uint64_t bytes = 0;  // their topic + payload bytes
    size_t loaded = 0;
    uint64_t last_order = 0;
    // Records up to this order were handed to the client before a restart (their inflight
    // records are durable, the spool's advance past them may not be): skipped when read.
    uint64_t skip_through = 0;
};

struct inflight_entry {
    enum class state : uint8_t { await_puback, await_pubrec, await_pubcomp };
    outgoing out;
    state st = state::await_puback;
    uint64_t order = 0;  // send order, for in-order retransmission on reconnect
};

class session {
public:
    session(std::string client_id, session_key key) : client_id_(std::move(client_id)), key_(key) {}

    const std::string& client_id() const { return client_id_; }
    session_key key() const { return key_; }

    connection* conn = nullptr;  // nullptr while offline
    mqtt::version protocol = mqtt::version::v5;
    // Seconds to keep the session after the connection closes (0xFFFFFFFF: forever).
    uint32_t expiry_interval = 0;
    int64_t disconnected_at_ms = 0;

    std::map<std::string, sub_options, std::less<>> subscriptions;  // filter -> options

    std::map<uint16_t, inflight_entry> inflight;  // outbound, by packet id
    fifo<outgoing> queue;                         // outbound, waiting for window or connection
    uint64_t queued_bytes = 0;                    // of the queue's entries not from the spool
    spool_state spool;
    // Everything waiting for the window or the connection, in memory and spooled.
    size_t backlog_messages() const { return queue.size() - spool.loaded + spool.count; }
    uint64_t backlog_bytes() const { return queued_bytes + spool.bytes; }
    // The backlog this session carried into its current connection (queued while offline),
    // shrinking as it drains: the online subscriber bound (subscriber_queue.h) counts only
    // what piles up on top of it. Unknown (max) until pump() runs for a new connection.
    size_t carried_messages = SIZE_MAX;
    uint64_t carried_bytes = UINT64_MAX;
    // Retained messages matched by its SUBSCRIBEs and not sent yet (made on first use):
    // sent a bounded amount at a time, retained_backlog.h.
    std::unique_ptr<retained_backlog> retained;
    std::set<uint16_t> inbound_qos2;  // received PUBLISH QoS 2, PUBREC sent, awaiting PUBREL
    // Its latest logged QoS 1/2 packet ids (persistent sessions with ingest only; made on
    // first use): the resend rule, resend_window.h.
    std::unique_ptr<resend_window> resend;
    // Resumed from another node and its replay still running (relay.h): live deliveries wait
    // here, so that the client gets the older replayed messages first.
    struct stashed {
        message_ptr msg;
        delivery d;
    };
    std::unique_ptr<std::vector<stashed>> replay_stash;

    // Will of the last connection, pending publication after will delay (or session end).
    std::unique_ptr<mqtt::will> pending_will;  // heap: ~1 KB, rarely set
    int64_t will_due_ms = 0;

    // Limits the client told us (MQTT 5 CONNECT properties), reset on every CONNECT.
    uint16_t send_window = 256;
    uint32_t client_max_packet_size = 268435455 + 5;

    // Allocates a packet id not in use by `inflight`. REQUIRES: inflight.size() < 65535.
    uint16_t next_packet_id();
    uint64_t next_order() { return ++order_counter_; }
    void restore_order(uint64_t order) { order_counter_ = std::max(order_counter_, order); }

    // True while the session has a record in the durable state store.
    bool persisted = false;

    bool expired(int64_t now_ms) const {
        return conn == nullptr && expiry_interval != 0xFFFFFFFF &&
               now_ms - disconnected_at_ms >= static_cast<int64_t>(expiry_interval) * 1000;
    }

private:
    std::string client_id_;
    session_key key_;
    uint16_t last_packet_id_ = 0;
    uint64_t order_counter_ = 0;
};

}  // namespace sluice::broker
