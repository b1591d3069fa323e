// SPDX-License-Identifier: Apache-2.0
//
// What the broker needs from a network connection. net/ implements it over TCP,
// TLS and WebSocket; the broker never sees a socket. All calls happen on
// the event loop that owns the connection.
#pragma once

#include <cstddef>
#include <string>

#include "broker/message.h"

namespace sluice::broker {

class transport {
public:
    virtual ~transport() = default;
    // Queues bytes for sending (written at the end of the loop iteration, batched).
    virtual void send(std::string bytes) = 0;
    // Queues an encoded PUBLISH header followed by msg->payload, without copying the payload.
    virtual void send_publish(std::string header, message_ptr msg) = 0;
    // Flushes what is queued (best effort), then closes. The broker gets no more bytes.
    virtual void close() = 0;
    // Stops/resumes reading from the socket (back-pressure).
    virtual void set_reading(bool enabled) = 0;
    virtual size_t pending_output_bytes() const = 0;
    // Drops queued output that has not started to go out (a packet partly written is
    // finished first), so that what is sent next is not stuck behind it.
    virtual void discard_unsent() = 0;
    virtual const std::string& peer() const = 0;
    // The name in the client's verified TLS certificate (CN, else first DNS SAN); "" when
    // the connection has none. Authentication takes it as the username.
    virtual const std::string& certificate_identity() const {
        static const std::string k_none;
        return k_none;
    }
};

}  // namespace sluice::broker
