// SPDX-License-Identifier: Apache-2.0
//
// A transformation between the bytes on a socket ("wire") and the MQTT bytes the broker
// reads and writes ("app"): TLS (tls.h) and WebSocket framing (websocket.h), alone or
// stacked (WebSocket inside TLS). A plain TCP connection has none. A layer never touches
// the socket: the connection reads, hands the bytes in, and writes what comes out, so the
// same batching, limits and hand-over between loops apply to every listener.
//
// Threads: a layer is used by one event loop at a time; it moves with its socket when the
// connection is handed to another loop (after CONNECT).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace sluice::net {

class stream_layer {
public:
    virtual ~stream_layer() = default;

    // Bytes read from the peer. Appends the application bytes they complete to `app` and
    // what the layer answers on its own (handshake records, a WebSocket pong) to `wire_out`.
    // Returns false when the stream cannot go on (a protocol error, or the peer ended it):
    // `wire_out` may then hold a last message for the peer (an alert, a close frame).
    virtual bool on_wire(std::string_view wire, std::string& app, std::string& wire_out) = 0;

    // Application bytes to send: appends their wire form to `wire_out`.
    virtual void on_app(std::string_view app, std::string& wire_out) = 0;

    // A graceful end (TLS close_notify, WebSocket close frame), once, before the socket closes.
    virtual void on_close(std::string& wire_out) = 0;

    // Why on_wire() returned false, for the log.
    virtual const std::string& error() const = 0;

    // The identity of a verified client certificate ("" when none).
    virtual const std::string& peer_identity() const = 0;
};

// `inner` inside `outer` (WebSocket inside TLS): what `outer` decodes is `inner`'s wire.
std::unique_ptr<stream_layer> stack_layers(std::unique_ptr<stream_layer> outer, std::unique_ptr<stream_layer> inner);

}  // namespace sluice::net
