// SPDX-License-Identifier: Apache-2.0
#include "broker/session.h"

#include "base/assert.h"

namespace sluice::broker {

uint16_t session::next_packet_id() {
    SLUICE_CHECK(inflight.size() < 65535, "no free packet id for %s", client_id_.c_str());
    for (;;) {
        last_packet_id_ = static_cast<uint16_t>(last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1);
        if (inflight.find(last_packet_id_) == inflight.end()) return last_packet_id_;
    }
}

}  // namespace sluice::broker
