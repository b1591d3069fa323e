// SPDX-License-Identifier: Apache-2.0
#include "net/websocket.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/endian.h"
#include "base/text.h"

namespace sluice::net {
namespace {

constexpr size_t k_max_request = size_t{16} * 1024;  // the whole upgrade request
constexpr uint8_t k_op_continuation = 0x0;
constexpr uint8_t k_op_text = 0x1;
constexpr uint8_t k_op_binary = 0x2;
constexpr uint8_t k_op_close = 0x8;
constexpr uint8_t k_op_ping = 0x9;
constexpr uint8_t k_op_pong = 0xA;

// The comma-separated tokens of a header value, trimmed and lower-cased.
std::vector<std::string> tokens(std::string_view value) {
    std::vector<std::string> out;
    while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view item = trim_ows(value.substr(0, comma));
        if (!item.empty()) out.push_back(ascii_lower(item));
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return out;
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

// out[i] = in[i] ^ mask[(offset + i) % 4], eight bytes at a time (the hot loop of a busy
// WebSocket listener: byte-wise it took an eighth of the broker's CPU).
void unmask(const char* in, char* out, size_t n, const std::array<uint8_t, 4>& mask, uint64_t offset) {
    uint8_t rotated[8];
    for (size_t i = 0; i < 8; ++i)
        rotated[i] = mask[(offset + i) & 3];
    uint64_t wide = 0;
    std::memcpy(&wide, rotated, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t chunk = 0;
        std::memcpy(&chunk, in + i, 8);
        chunk ^= wide;
        std::memcpy(out + i, &chunk, 8);
    }
    for (; i < n; ++i)
        out[i] = static_cast<char>(static_cast<uint8_t>(in[i]) ^ rotated[i & 7]);
}

}  // namespace

std::string websocket_layer::accept_key(std::string_view client_key) {
    static constexpr std::string_view k_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string text(client_key);
    text += k_guid;
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned int digest_len = 0;
    EVP_Digest(text.data(), text.size(), digest, &digest_len, EVP_sha1(), nullptr);
    unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(digest_len));
    return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(std::max(n, 0)));
}

bool websocket_layer::on_wire(std::string_view wire, std::string& app, std::string& wire_out) {
    if (state_ == state::closed) return false;
    if (state_ == state::handshake) {
        if (!handshake(wire, wire_out)) return false;
        if (state_ == state::handshake) return true;  // the request is not complete yet
    }
    return frames(wire, app, wire_out);
}

bool websocket_layer::refuse(int status, const char* reason, std::string& wire_out, const char* extra_headers) {
    error_ = std::string("WebSocket upgrade refused: ") + reason;
    wire_out += "HTTP/1.1 " + std::to_string(status) + (status == 426 ? " Upgrade Required" : " Bad Request") +
                "\r\nConnection: close\r\nContent-Type: text/plain\r\n" + extra_headers +
                "Content-Length: " + std::to_string(std::char_traits<char>::length(reason) + 1) + "\r\n\r\n" + reason +
                "\n";
    state_ = state::closed;
    return false;
}

// Consumes the upgrade request from `wire` (leaving what follows it) and answers it.
bool websocket_layer::handshake(std::string_view& wire, std::string& wire_out) {
    size_t before = request_.size();
    request_.append(wire.substr(0, k_max_request + 4 - std::min(before, k_max_request + 4)));
    // Not an HTTP GET (plain MQTT on the WebSocket port, say): refused at once, not after
    // waiting for a blank line that never comes.
    if (std::string_view(request_).substr(0, 4) !=
        std::string_view("GET ").substr(0, std::min<size_t>(request_.size(), 4))) {
        return refuse(400, "not an HTTP/1.1 GET", wire_out);
    }
    size_t end = request_.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (request_.size() > k_max_request) return refuse(400, "request too large", wire_out);
        wire = {};
        return true;
    }
    // What followed the blank line in this read is frame data.
    size_t used = end + 4 - before;
    wire.remove_prefix(std::min(used, wire.size()));

    std::string_view req(request_.data(), end);
    size_t line_end = req.find("\r\n");
    std::string_view request_line = req.substr(0, line_end);
    // "GET <path> HTTP/1.1"
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 <= sp1 || request_line.substr(0, sp1) != "GET" ||
        request_line.substr(sp2 + 1) != "HTTP/1.1") {
        return refuse(400, "not an HTTP/1.1 GET", wire_out);
    }
    path_ = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
    std::string upgrade;
    std::string connection;
    std::string key;
    std::string version;
    std::string protocols;
    bool bad_header = false;
    std::string_view rest = line_end == std::string_view::npos ? std::string_view() : req.substr(line_end + 2);
    while (!rest.empty()) {
        size_t eol = rest.find("\r\n");
        std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0 || line.find('\n') != std::string_view::npos) {
            bad_header = true;
            break;
        }
        std::string name = ascii_lower(line.substr(0, colon));
        std::string_view value = trim_ows(line.substr(colon + 1));
        // A repeated list header adds to the list; other headers must not repeat.
        auto set_once = [&](std::string& field) {
            if (!field.empty()) bad_header = true;
            field = std::string(value);
        };
        if (name == "upgrade") {
            set_once(upgrade);
        } else if (name == "connection") {
            connection += (connection.empty() ? "" : ",") + std::string(value);
        } else if (name == "sec-websocket-key") {
            set_once(key);
        } else if (name == "sec-websocket-version") {
            set_once(version);
        } else if (name == "sec-websocket-protocol") {
            protocols += (protocols.empty() ? "" : ",") + std::string(value);
        }
    }
    if (bad_header) return refuse(400, "malformed header", wire_out);
    if (ascii_lower(upgrade) != "websocket" || !contains(tokens(connection), "upgrade")) {
        return refuse(400, "not a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)", wire_out);
    }
    if (version != "13") return refuse(426, "WebSocket version 13 only", wire_out, "Sec-WebSocket-Version: 13\r\n");
    if (key.size() != 24) return refuse(400, "missing or malformed Sec-WebSocket-Key", wire_out);
    // MQTT-6.0.0-3/4: the client offers "mqtt" and we select it. Older clients offer
    // "mqttv3.1"; a client that offers no subprotocol at all is served without one.
    std::string chosen;
    if (!protocols.empty()) {
        auto offered = tokens(protocols);
        if (contains(offered, "mqtt")) {
            chosen = "mqtt";
        } else if (contains(offered, "mqttv3.1")) {
            chosen = "mqttv3.1";
        } else {
            return refuse(400, "no supported subprotocol (offer \"mqtt\")", wire_out);
        }
    }
    wire_out += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    wire_out += "Sec-WebSocket-Accept: " + accept_key(key) + "\r\n";
    if (!chosen.empty()) wire_out += "Sec-WebSocket-Protocol: " + chosen + "\r\n";
    wire_out += "\r\n";
    std::string().swap(request_);
    state_ = state::open;
    return true;
}

bool websocket_layer::protocol_error(uint16_t code, const char* why, std::string& wire_out) {
    error_ = std::string("WebSocket: ") + why;
    if (!close_sent_) {
        std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
        append_frame(k_op_close, payload, wire_out);
        close_sent_ = true;
    }
    state_ = state::closed;
    return false;
}

bool websocket_layer::frames(std::string_view wire, std::string& app, std::string& wire_out) {
    while (!wire.empty()) {
        if (reading_header_) {
            // Byte by byte until the header's length is known, then the rest of it.
            header_.push_back(wire.front());
            wire.remove_prefix(1);
            if (header_.size() < 2) continue;
            auto b0 = static_cast<uint8_t>(header_[0]);
            auto b1 = static_cast<uint8_t>(header_[1]);
            uint8_t len7 = b1 & 0x7F;
            size_t extended = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
            if (header_.size() == 2) {
                if ((b0 & 0x70) != 0) return protocol_error(1002, "reserved bits set (no extension agreed)", wire_out);
                if ((b1 & 0x80) == 0) return protocol_error(1002, "client frame not masked", wire_out);
            }
            if (header_.size() < 2 + extended + 4) continue;
            if (!start_frame(b0, len7, extended, wire_out)) return false;
            if (remaining_ == 0 && !end_frame(wire_out)) return false;
            continue;
        }
        // Payload bytes: unmasked as they come.
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, wire.size()));
        std::string& dest = opcode_ >= 0x8 ? control_ : app;
        size_t at = dest.size();
        dest.resize(at + take);
        unmask(wire.data(), dest.data() + at, take, mask_, mask_at_);
        mask_at_ += take;
        remaining_ -= take;
        wire.remove_prefix(take);
        if (remaining_ == 0 && !end_frame(wire_out)) return false;
    }
    return true;
}

// header_ holds a whole frame header: check it and get ready for its payload.
bool websocket_layer::start_frame(uint8_t b0, uint8_t len7, size_t extended, std::string& wire_out) {
    fin_ = (b0 & 0x80) != 0;
    opcode_ = b0 & 0x0F;
    uint64_t len = len7;
    if (extended != 0) {
        len = load_be(header_.data() + 2, extended);
        if ((len >> 63) != 0) return protocol_error(1002, "frame length too large", wire_out);
    }
    for (size_t i = 0; i < 4; ++i)
        mask_[i] = static_cast<uint8_t>(header_[2 + extended + i]);
    mask_at_ = 0;
    remaining_ = len;
    header_.clear();
    reading_header_ = false;
    if (opcode_ >= 0x8) {
        if (!fin_ || len > 125) return protocol_error(1002, "fragmented or long control frame", wire_out);
        if (opcode_ != k_op_close && opcode_ != k_op_ping && opcode_ != k_op_pong) {
            return protocol_error(1002, "unknown control opcode", wire_out);
        }
        control_.clear();
        return true;
    }
    if (opcode_ == k_op_text) return protocol_error(1003, "text frame (MQTT travels in binary frames)", wire_out);
    if (opcode_ == k_op_binary) {
        if (in_fragmented_message_) return protocol_error(1002, "new message inside a fragmented one", wire_out);
    } else if (opcode_ == k_op_continuation) {
        if (!in_fragmented_message_) return protocol_error(1002, "continuation without a message", wire_out);
    } else {
        return protocol_error(1002, "unknown data opcode", wire_out);
    }
    in_fragmented_message_ = !fin_;
    return true;
}

bool websocket_layer::end_frame(std::string& wire_out) {
    reading_header_ = true;
    return opcode_ < 0x8 || control_frame(wire_out);
}

bool websocket_layer::control_frame(std::string& wire_out) {
    switch (opcode_) {
        case k_op_ping:
            append_frame(k_op_pong, control_, wire_out);
            return true;
        case k_op_close: {
            // Echo the status code (RFC 6455 5.5.1), then the connection ends.
            if (!close_sent_) {
                append_frame(k_op_close, std::string_view(control_).substr(0, std::min<size_t>(control_.size(), 2)),
                             wire_out);
                close_sent_ = true;
            }
            error_ = "the peer closed the WebSocket";
            state_ = state::closed;
            return false;
        }
        default:  // pong
            return true;
    }
}

void websocket_layer::append_frame(uint8_t opcode, std::string_view payload, std::string& wire_out) {
    wire_out.push_back(static_cast<char>(0x80 | opcode));
    uint64_t n = payload.size();
    if (n < 126) {
        wire_out.push_back(static_cast<char>(n));
    } else if (n <= 0xFFFF) {
        wire_out.push_back(static_cast<char>(126));
        wire_out.push_back(static_cast<char>(n >> 8));
        wire_out.push_back(static_cast<char>(n & 0xFF));
    } else {
        wire_out.push_back(static_cast<char>(127));
        for (int shift = 56; shift >= 0; shift -= 8)
            wire_out.push_back(static_cast<char>((n >> shift) & 0xFF));
    }
    wire_out.append(payload);
}

void websocket_layer::on_app(std::string_view app, std::string& wire_out) {
    if (state_ != state::open || app.empty()) return;
    append_frame(k_op_binary, app, wire_out);
}

void websocket_layer::on_close(std::string& wire_out) {
    if (state_ != state::open || close_sent_) return;
    static const char k_normal[] = {static_cast<char>(1000 >> 8), static_cast<char>(1000 & 0xFF)};
    append_frame(k_op_close, std::string_view(k_normal, 2), wire_out);
    close_sent_ = true;
}

}  // namespace sluice::net
