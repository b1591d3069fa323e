// SPDX-License-Identifier: Apache-2.0
//
// MQTT over WebSocket, server side (RFC 6455; MQTT 5.0 section 6): the HTTP/1.1 upgrade
// handshake with subprotocol "mqtt" (or the older "mqttv3.1"), then binary frames both
// ways. MQTT packets may span frames and frames may hold several packets: the layer only
// removes the framing. Client frames are unmasked as they arrive (a frame is never held
// whole, whatever its length); control frames are answered (ping -> pong, close -> close).
// A text frame, an unmasked frame or an extension bit closes the connection (1003/1002),
// as MQTT-6.0.0-1 and RFC 6455 section 5.1 require.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "net/stream_layer.h"

namespace sluice::net {

class websocket_layer final : public stream_layer {
public:
    bool on_wire(std::string_view wire, std::string& app, std::string& wire_out) override;
    void on_app(std::string_view app, std::string& wire_out) override;
    void on_close(std::string& wire_out) override;
    const std::string& error() const override { return error_; }
    const std::string& peer_identity() const override { return identity_; }

    // The path the client asked for in its upgrade request (after the handshake).
    const std::string& path() const { return path_; }

    // The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key (RFC 6455 4.2.2).
    static std::string accept_key(std::string_view client_key);

private:
    enum class state : uint8_t { handshake, open, closed };

    bool handshake(std::string_view& wire, std::string& wire_out);
    bool refuse(int status, const char* reason, std::string& wire_out, const char* extra_headers = "");
    bool frames(std::string_view wire, std::string& app, std::string& wire_out);
    bool start_frame(uint8_t b0, uint8_t len7, size_t extended, std::string& wire_out);
    bool end_frame(std::string& wire_out);
    bool control_frame(std::string& wire_out);
    bool protocol_error(uint16_t code, const char* why, std::string& wire_out);
    static void append_frame(uint8_t opcode, std::string_view payload, std::string& wire_out);

    state state_ = state::handshake;
    std::string request_;  // the upgrade request until its blank line
    std::string path_;
    // The frame being read.
    bool reading_header_ = true;
    std::string header_;  // its header bytes so far (2..14)
    uint8_t opcode_ = 0;
    bool fin_ = false;
    uint64_t remaining_ = 0;  // payload bytes still to come
    std::array<uint8_t, 4> mask_{};
    uint64_t mask_at_ = 0;
    std::string control_;  // a control frame's payload (at most 125 bytes)
    bool in_fragmented_message_ = false;
    bool close_sent_ = false;
    std::string error_;
    std::string identity_;  // always "": a WebSocket has no certificate of its own
};

}  // namespace sluice::net
