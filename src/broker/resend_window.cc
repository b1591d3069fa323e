// SPDX-License-Identifier: Apache-2.0
#include "broker/resend_window.h"

#include "bus/wal/crc32c.h"

namespace sluice::broker {

uint64_t resend_fingerprint(std::string_view topic, std::string_view payload) {
    const uint32_t crc = bus::wal::crc32c_extend(bus::wal::crc32c(topic), payload.data(), payload.size());
    return (uint64_t{crc} << 32) | (payload.size() & 0xFFFFFFFFu);
}

append_outcome::state append_outcome::current() const {
    sluice::mutex_lock lock(mutex_);
    return state_;
}

void append_outcome::hold(const ack_barrier_ptr& resend_ack) {
    sluice::mutex_lock lock(mutex_);
    if (state_ == state::pending) {
        waiting_resends_.push_back(resend_ack);
    } else if (state_ == state::failed) {
        resend_ack->fail();
    }
}

void append_outcome::complete(bool stored) {
    std::vector<ack_barrier_ptr> waiting;
    {
        sluice::mutex_lock lock(mutex_);
        state_ = stored ? state::stored : state::failed;
        waiting.swap(waiting_resends_);
    }
    if (!stored) {
        for (auto& b : waiting)
            b->fail();
    }
    // Dropping the references releases the resends' acknowledgements.
}

const resend_window::entry* resend_window::logged(uint16_t packet_id, uint64_t fingerprint) const {
    const entry& e = slots_[slot_of(packet_id)];
    if (e.packet_id != packet_id || e.fingerprint != fingerprint) return nullptr;
    if (e.outcome && e.outcome->current() == append_outcome::state::failed) return nullptr;
    return &e;
}

void resend_window::record(uint16_t packet_id, uint64_t fingerprint, std::shared_ptr<append_outcome> outcome) {
    slots_[slot_of(packet_id)] = entry{packet_id, fingerprint, std::move(outcome)};
}

}  // namespace sluice::broker
