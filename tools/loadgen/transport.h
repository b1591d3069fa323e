// SPDX-License-Identifier: Apache-2.0
//
// The client side of MQTT over TLS and over WebSocket (--transport tls | ws | wss): a link
// sits between a connection's MQTT bytes and its socket, as src/net's stream_layer does on
// the server side. TLS is OpenSSL over memory BIOs; WebSocket is an HTTP/1.1 upgrade
// (subprotocol "mqtt") and then binary frames, masked as RFC 6455 5.3 requires of a
// client; wss is the WebSocket inside TLS. The worker keeps doing every read and write on
// its non-blocking socket itself (worker_sockets.cc); a plain TCP connection has no link.
//
// Every connection makes a full TLS handshake (no session resumption), so a connection
// set-up rate (--scenario churn) measures the broker's handshake cost.
//
// Threads: one link_config per run, shared by the workers (SSL_new on a shared SSL_CTX is
// thread-safe); a link belongs to one connection, so to one worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "options.h"

struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

namespace sluice::loadgen {

class client_link {
public:
    ~client_link();
    client_link(const client_link&) = delete;
    client_link& operator=(const client_link&) = delete;

    // The first bytes to send once the TCP connection is up: the ClientHello, or (plain
    // WebSocket) the upgrade request.
    void start(std::string& wire_out);

    // Bytes read from the socket. Appends the MQTT bytes they complete to `app` and what the
    // link answers on its own (handshake records, the upgrade request once TLS is up, a
    // pong) to `wire_out`. Returns false when the connection cannot go on (a failed
    // handshake or verification, a protocol error, the broker ended the TLS session or the
    // WebSocket): error() says why, and `wire_out` may hold a last alert or close frame.
    bool on_wire(std::string_view wire, std::string& app, std::string& wire_out);

    // MQTT bytes to send: appends their wire form to `wire_out`. REQUIRES: ready().
    void on_app(std::string_view app, std::string& wire_out);

    // A graceful end, once, before the socket closes: WebSocket close frame (1000), TLS
    // close_notify. Does not wait for the broker's answer.
    void on_close(std::string& wire_out);

    // Every handshake is done: MQTT may flow.
    bool ready() const { return (ssl_ == nullptr || tls_done_) && (!ws_ || ws_state_ == ws_state::open); }

    const std::string& error() const { return error_; }

    // The negotiated TLS version and cipher ("TLSv1.3 TLS_AES_256_GCM_SHA384"); "" before
    // the handshake and without TLS.
    std::string tls_description() const;

private:
    friend class link_config;
    client_link() = default;

    enum class ws_state : uint8_t { upgrading, open, closed };

    bool fail(std::string why);
    bool fail_tls(const char* what);
    bool tls_in(std::string_view wire, std::string& plain, std::string& wire_out);
    void tls_out(std::string_view plain, std::string& wire_out);
    void drain(std::string& wire_out);
    bool ws_in(std::string_view data, std::string& app, std::string& wire_out);
    bool upgrade_response(std::string_view& data);
    bool frames(std::string_view data, std::string& app, std::string& wire_out);
    bool control_frame(std::string& wire_out);
    // A masked frame: into `wire_out`, or through TLS for wss.
    void ws_send(uint8_t opcode, std::string_view payload, std::string& wire_out);

    // TLS (ssl_ == nullptr: none)
    ssl_st* ssl_ = nullptr;
    bio_st* rbio_ = nullptr;  // owned by ssl_
    bio_st* wbio_ = nullptr;  // owned by ssl_
    bool tls_done_ = false;
    std::string plain_;   // wss: decrypted bytes on their way to the WebSocket framing
    std::string framed_;  // wss: a frame on its way to TLS
    // WebSocket
    bool ws_ = false;
    ws_state ws_state_ = ws_state::upgrading;
    std::string request_;          // the upgrade request
    std::string expected_accept_;  // Sec-WebSocket-Accept the broker must answer with
    std::string response_;         // the upgrade response until its blank line
    bool in_header_ = true;
    uint8_t header_[10] = {};  // a server frame's header so far (never masked: at most 10)
    size_t header_len_ = 0;
    uint8_t opcode_ = 0;
    bool fin_ = false;
    bool in_message_ = false;  // a fragmented binary message is open
    uint64_t remaining_ = 0;   // payload bytes of the current frame still to come
    std::string control_;      // a control frame's payload
    bool close_sent_ = false;
    bool failed_ = false;
    std::string error_;
};

// What every link of a run shares: the TLS context (certificate verification with
// --cafile), the name to verify and send as SNI (--host), the upgrade request's target.
class link_config {
public:
    // nullptr with `error` set when the TLS context cannot be made (unreadable --cafile).
    // REQUIRES: o.transport != transport_kind::tcp.
    static std::unique_ptr<link_config> create(const options& o, std::string& error);
    ~link_config();
    link_config(const link_config&) = delete;
    link_config& operator=(const link_config&) = delete;

    std::unique_ptr<client_link> new_link() const;

private:
    link_config() = default;
    ssl_ctx_st* ctx_ = nullptr;
    bool ws_ = false;
    bool verify_ = false;
    std::string host_;
    std::string request_head_;  // the upgrade request up to its Sec-WebSocket-Key
};

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2); for the tests too.
std::string websocket_accept(std::string_view key);

}  // namespace sluice::loadgen
