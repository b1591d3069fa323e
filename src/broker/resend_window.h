// SPDX-License-Identifier: Apache-2.0
//
// The resend rule for exactly once without device sequence numbers (docs/delivery.md,
// "Resends after a restart"). In a persistent session an MQTT client may not reuse a
// packet id until it has the PUBACK (PUBCOMP) for it, and sets DUP=1 when it sends a
// PUBLISH again. So a DUP=1 PUBLISH whose packet id last carried this same message into
// the log is that message again: the broker acknowledges it and does not log it twice.
//
// A session's window remembers, per packet id, a fingerprint of the last message it
// logged (slot = packet id modulo the window size: clients allocate ids in sequence, so
// the latest `size` ids have distinct slots; an evicted entry only means a resend is
// logged again, a duplicate and never a loss). The entry is made when the PUBLISH is
// read, with the outcome of its append: a resend that arrives while the append is still
// in flight waits for it, and a failed append never makes a later resend look logged.
//
// Durability: the log record carries the packet id (bus::message::packet_id); when the
// append is durable its entry is put in the session state store, followed now and then
// by a per-partition checkpoint (persist::resend_checkpoint_record). A restart loads the
// entries and replays the log from the checkpoints (broker::restore_resend_windows), so
// the windows are exactly as durable as the log itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "base/thread_annotations.h"
#include "broker/ack_barrier.h"

namespace sluice::broker {

// What identifies a message within one session's packet id: CRC-32C of the topic and of
// the payload, and the payload size. Stable across builds (it is stored).
uint64_t resend_fingerprint(std::string_view topic, std::string_view payload);

// The outcome of one log append, shared by the append's completion (a bus thread) and
// the acknowledgements of resends waiting for it (the session's loop). Thread-safe.
class append_outcome {
public:
    enum class state : uint8_t { pending, stored, failed };

    state current() const;
    // Holds `resend_ack` until the append completes (a failure fails it); no-op when the
    // append is already stored.
    void hold(const ack_barrier_ptr& resend_ack);
    // Called once, by the append's completion.
    void complete(bool stored);

private:
    mutable sluice::mutex mutex_;
    state state_ SLUICE_GUARDED_BY(mutex_) = state::pending;
    std::vector<ack_barrier_ptr> waiting_resends_ SLUICE_GUARDED_BY(mutex_);
};

class resend_window {
public:
    struct entry {
        uint16_t packet_id = 0;  // 0: empty slot
        uint64_t fingerprint = 0;
        std::shared_ptr<append_outcome> outcome;  // null: known to be in the log (restored)
    };

    // REQUIRES: slots >= 1.
    explicit resend_window(uint16_t slots) : slots_(slots) {}

    uint16_t size() const { return static_cast<uint16_t>(slots_.size()); }
    uint16_t slot_of(uint16_t packet_id) const { return static_cast<uint16_t>(packet_id % slots_.size()); }

    // The entry if `packet_id` last carried a message with this fingerprint whose append
    // did not fail; nullptr otherwise (the PUBLISH is new, or its earlier copy never
    // reached the log).
    const entry* logged(uint16_t packet_id, uint64_t fingerprint) const;
    // `packet_id` now carries this message (its append is `outcome`, null if known durable).
    void record(uint16_t packet_id, uint64_t fingerprint, std::shared_ptr<append_outcome> outcome);

private:
    std::vector<entry> slots_;
};

}  // namespace sluice::broker
