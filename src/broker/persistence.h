// SPDX-License-Identifier: Apache-2.0
//
// Maps the broker's in-memory state to durable records in persist::state_store
// (docs/decisions/0002-session-persistence.md): persistent sessions (session expiry > 0,
// or MQTT 3.1.1 clean session = 0) with their subscriptions, inbound QoS 2 ids and pending
// will; their queued and in-flight QoS 1/2 messages; retained messages. Times are stored
// as wall clock and converted to and from the loops' monotonic clock here.
//
// Durability: changes are queued to the store's writer thread and fsync'ed in groups
// every few milliseconds; a kill -9 loses at most that last window of session changes
// (ingest messages are protected by the WAL, not by this). A clean shutdown loses nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.h"
#include "broker/persist/records.h"
#include "broker/persist/state_store.h"
#include "broker/session.h"

namespace sluice::broker {

class persistence {
public:
    explicit persistence(persist::state_store* store) : store_(store) {}

    bool enabled() const { return store_ != nullptr; }
    static bool persistent(const session& s) { return s.expiry_interval > 0; }

    // The session's record (not its messages; `now_mono` is the loop clock), and writing it.
    static persist::session_record to_record(const session& s, int64_t now_mono);
    void save_record(const persist::session_record& r);
    // Removes the session and all its messages.
    void erase_session(const std::string& client_id);
    void save_message(const session& s, const outgoing& out, uint16_t packet_id,
                      persist::session_message_record::state st, int64_t now_mono);
    void erase_message(const session& s, uint64_t order);
    // Where the session's spooled queue is (session_spool.h).
    void save_spool(const session& s);
    void erase_spool(std::string_view client_id);
    // Runs `fn` on the store's writer thread once everything queued so far is durable
    // (whether or not it succeeded: `fn` only tidies up). Runs it now without a store.
    void after_durable(std::function<void()> fn);
    void save_retained(const message& m, int64_t now_mono);
    void erase_retained(const std::string& topic);
    // The resend rule's durable entries (resend_window.h). Unlike the others, these may be
    // called from any thread (a bus thread, when an append is durable).
    void save_resend_entry(std::string_view client_id, uint16_t slot, uint16_t packet_id, uint64_t fingerprint);
    void save_resend_checkpoint(uint32_t partition, uint64_t next_offset);
    void erase_resend_entry(std::string_view client_id, uint16_t slot);
    // Keeps `barrier` alive until everything queued so far is durable (fails it on error).
    void hold(const std::shared_ptr<class ack_barrier>& barrier);

    // Conversions used on load.
    static message_ptr to_message(persist::message_record&& r, int64_t now_mono);
    static persist::message_record to_record(const message& m, int64_t now_mono);
    static int64_t wall_now();
    static int64_t to_wall(int64_t mono, int64_t now_mono) { return wall_now() - (now_mono - mono); }
    static int64_t to_mono(int64_t wall, int64_t now_mono) { return now_mono - (wall_now() - wall); }

private:
    persist::state_store* store_;
};

}  // namespace sluice::broker
