// SPDX-License-Identifier: Apache-2.0
//
// TLS and WebSocket client links (see transport.h).
#include "transport.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/assert.h"
#include "base/endian.h"
#include "base/text.h"

namespace sluice::loadgen {
namespace {

constexpr size_t k_max_response = size_t{16} * 1024;  // the whole upgrade response
constexpr size_t k_read_chunk = size_t{16} * 1024;    // one TLS record's plaintext at most
constexpr uint8_t k_op_continuation = 0x0;
constexpr uint8_t k_op_text = 0x1;
constexpr uint8_t k_op_binary = 0x2;
constexpr uint8_t k_op_close = 0x8;
constexpr uint8_t k_op_ping = 0x9;
constexpr uint8_t k_op_pong = 0xA;

// The oldest error on this thread's OpenSSL queue, after `what`; the queue is emptied.
std::string openssl_error(const char* what) {
    std::string text = what;
    if (const unsigned long e = ERR_get_error(); e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        text += ": ";
        text += buf;
    }
    ERR_clear_error();
    return text;
}

std::string base64(const unsigned char* data, size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
    out.resize(static_cast<size_t>(std::max(len, 0)));
    return out;
}

bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        if (ascii_lower(trim_ows(list.substr(0, comma))) == token) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// dst = src XOR the 4-byte mask repeated, 8 bytes at a time.
void mask_copy(char* dst, const char* src, size_t n, const std::array<uint8_t, 4>& mask) {
    // The pattern in memory order, so that the XOR is byte-exact on any endianness.
    unsigned char pattern[8];
    for (size_t i = 0; i < 8; ++i)
        pattern[i] = mask[i & 3];
    uint64_t m8 = 0;
    std::memcpy(&m8, pattern, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        std::memcpy(&v, src + i, 8);
        v ^= m8;
        std::memcpy(dst + i, &v, 8);
    }
    for (; i < n; ++i)
        dst[i] = static_cast<char>(static_cast<uint8_t>(src[i]) ^ mask[i & 3]);
}

}  // namespace

// Computed here, not taken from the broker's net/websocket.h: the load generator checks the
// broker's answer independently (and does not link the broker).
std::string websocket_accept(std::string_view key) {
    static constexpr std::string_view k_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string text(key);
    text += k_guid;
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned int digest_len = 0;
    EVP_Digest(text.data(), text.size(), digest, &digest_len, EVP_sha1(), nullptr);
    return base64(digest, digest_len);
}

// ---- link_config -------------------------------------------------------------------------

std::unique_ptr<link_config> link_config::create(const options& o, std::string& error) {
    SLUICE_CHECK(o.transport != transport_kind::tcp, "plain TCP has no link");
    std::unique_ptr<link_config> cfg(new link_config());
    cfg->ws_ = o.transport == transport_kind::ws || o.transport == transport_kind::wss;
    cfg->host_ = o.host;
    if (cfg->ws_) {
        cfg->request_head_ = "GET " + o.ws_path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
                             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                             "Sec-WebSocket-Protocol: mqtt\r\n";
    }
    if (o.transport == transport_kind::ws) return cfg;
    ERR_clear_error();
    cfg->ctx_ = SSL_CTX_new(TLS_client_method());
    if (cfg->ctx_ == nullptr) {
        error = openssl_error("SSL_CTX_new");
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(cfg->ctx_, TLS1_2_VERSION);
    // A full handshake for every connection: nothing is resumed.
    SSL_CTX_set_session_cache_mode(cfg->ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(cfg->ctx_, SSL_OP_NO_TICKET);
    // Idle devices hold no record buffers (as the broker's side does).
    SSL_CTX_set_mode(cfg->ctx_, SSL_MODE_RELEASE_BUFFERS);
    if (!o.cafile.empty()) {
        if (SSL_CTX_load_verify_locations(cfg->ctx_, o.cafile.c_str(), nullptr) != 1) {
            error = openssl_error(("--cafile " + o.cafile).c_str());
            return nullptr;
        }
        SSL_CTX_set_verify(cfg->ctx_, SSL_VERIFY_PEER, nullptr);
        cfg->verify_ = true;
    } else {
        SSL_CTX_set_verify(cfg->ctx_, SSL_VERIFY_NONE, nullptr);
    }
    ERR_clear_error();
    return cfg;
}

link_config::~link_config() {
    SSL_CTX_free(ctx_);
}

std::unique_ptr<client_link> link_config::new_link() const {
    std::unique_ptr<client_link> link(new client_link());
    link->ws_ = ws_;
    if (ws_) {
        unsigned char nonce[16];
        SLUICE_CHECK(RAND_bytes(nonce, sizeof nonce) == 1, "RAND_bytes failed");
        const std::string key = base64(nonce, sizeof nonce);
        link->request_ = request_head_ + "Sec-WebSocket-Key: " + key + "\r\n\r\n";
        link->expected_accept_ = websocket_accept(key);
    }
    if (ctx_ == nullptr) return link;
    link->ssl_ = SSL_new(ctx_);
    SLUICE_CHECK(link->ssl_ != nullptr, "SSL_new failed");
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SLUICE_CHECK(in != nullptr && out != nullptr, "BIO_new failed");
    SSL_set_bio(link->ssl_, in, out);  // the SSL owns them now
    link->rbio_ = in;
    link->wbio_ = out;
    SSL_set_connect_state(link->ssl_);
    in6_addr ip{};
    const bool literal = inet_pton(AF_INET, host_.c_str(), &ip) == 1 || inet_pton(AF_INET6, host_.c_str(), &ip) == 1;
    // SNI names a host, never an address (RFC 6066 3).
    // (SSL_set_tlsext_host_name without its macro's old-style cast)
    if (!literal) {
        SSL_ctrl(link->ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(host_.c_str()));
    }
    if (verify_) {
        // The certificate must name --host: its address (IP SAN) or its name (DNS SAN).
        X509_VERIFY_PARAM* param = SSL_get0_param(link->ssl_);
        if (literal) {
            X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str());
        } else {
            SSL_set1_host(link->ssl_, host_.c_str());
        }
    }
    return link;
}

// ---- client_link -------------------------------------------------------------------------

client_link::~client_link() {
    SSL_free(ssl_);
}

std::string client_link::tls_description() const {
    if (ssl_ == nullptr || !tls_done_) return {};
    return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

bool client_link::fail(std::string why) {
    if (!failed_) error_ = std::move(why);
    failed_ = true;
    return false;
}

bool client_link::fail_tls(const char* what) {
    std::string why = openssl_error(what);
    if (ssl_ != nullptr && SSL_get_verify_result(ssl_) != X509_V_OK) {
        why += std::string(" (") + X509_verify_cert_error_string(SSL_get_verify_result(ssl_)) + ")";
    }
    return fail(std::move(why));
}

void client_link::start(std::string& wire_out) {
    if (ssl_ != nullptr) {
        ERR_clear_error();
        SSL_do_handshake(ssl_);  // wants to read: the ClientHello is in the write BIO
        ERR_clear_error();
        drain(wire_out);
    } else if (ws_) {
        wire_out += request_;
    }
}

bool client_link::on_wire(std::string_view wire, std::string& app, std::string& wire_out) {
    if (failed_) return false;
    if (ssl_ == nullptr) return ws_in(wire, app, wire_out);
    if (!ws_) return tls_in(wire, app, wire_out);
    plain_.clear();
    if (!tls_in(wire, plain_, wire_out)) return false;
    return plain_.empty() || ws_in(plain_, app, wire_out);
}

void client_link::on_app(std::string_view app, std::string& wire_out) {
    if (failed_ || app.empty()) return;
    if (ws_) {
        ws_send(k_op_binary, app, wire_out);
    } else {
        tls_out(app, wire_out);
    }
}

void client_link::on_close(std::string& wire_out) {
    if (failed_) return;
    if (ws_ && ws_state_ == ws_state::open && !close_sent_) {
        static const char k_normal[] = {static_cast<char>(1000 >> 8), static_cast<char>(1000 & 0xFF)};
        ws_send(k_op_close, std::string_view(k_normal, 2), wire_out);
        close_sent_ = true;
    }
    if (ssl_ != nullptr && tls_done_) {
        ERR_clear_error();
        SSL_shutdown(ssl_);  // queues close_notify; the broker's is not waited for
        ERR_clear_error();
        drain(wire_out);
    }
}

// ---- TLS -----------------------------------------------------------------------------------

bool client_link::tls_in(std::string_view wire, std::string& plain, std::string& wire_out) {
    ERR_clear_error();
    while (!wire.empty()) {
        const int n = BIO_write(rbio_, wire.data(), static_cast<int>(std::min<size_t>(wire.size(), size_t{1} << 30)));
        if (n <= 0) return fail_tls("buffering TLS input");
        wire.remove_prefix(static_cast<size_t>(n));
    }
    if (!tls_done_) {
        const int rc = SSL_do_handshake(ssl_);
        if (rc != 1) {
            const int err = SSL_get_error(ssl_, rc);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                fail_tls("TLS handshake");
                drain(wire_out);  // the alert
                return false;
            }
            drain(wire_out);
            return true;
        }
        tls_done_ = true;
        if (ws_) tls_out(request_, wire_out);
    }
    for (;;) {
        const size_t at = plain.size();
        plain.resize(at + k_read_chunk);
        const int n = SSL_read(ssl_, plain.data() + at, static_cast<int>(k_read_chunk));
        plain.resize(at + static_cast<size_t>(std::max(n, 0)));
        if (n > 0) continue;
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
        if (err == SSL_ERROR_ZERO_RETURN) {
            drain(wire_out);
            return fail("the broker closed the TLS session (close_notify)");
        }
        fail_tls("TLS record");
        drain(wire_out);
        return false;
    }
    drain(wire_out);
    return true;
}

void client_link::tls_out(std::string_view plain, std::string& wire_out) {
    ERR_clear_error();
    while (!plain.empty()) {
        // Memory BIOs take everything: SSL_write only fails on a broken session.
        const int n = SSL_write(ssl_, plain.data(), static_cast<int>(std::min<size_t>(plain.size(), size_t{1} << 30)));
        if (n <= 0) {
            fail_tls("TLS write");
            break;
        }
        plain.remove_prefix(static_cast<size_t>(n));
    }
    drain(wire_out);
}

void client_link::drain(std::string& wire_out) {
    const size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return;
    const size_t at = wire_out.size();
    wire_out.resize(at + pending);
    const int n = BIO_read(wbio_, wire_out.data() + at, static_cast<int>(pending));
    wire_out.resize(at + static_cast<size_t>(std::max(n, 0)));
}

// ---- WebSocket -----------------------------------------------------------------------------

bool client_link::ws_in(std::string_view data, std::string& app, std::string& wire_out) {
    if (ws_state_ == ws_state::closed) return fail("the WebSocket is closed");
    if (ws_state_ == ws_state::upgrading) {
        if (!upgrade_response(data)) return false;
        if (ws_state_ == ws_state::upgrading) return true;  // not complete yet
    }
    return frames(data, app, wire_out);
}

// Consumes the upgrade response from `data` (leaving the frames that follow it) and checks
// it: 101, Upgrade: websocket, Connection: Upgrade, the right Sec-WebSocket-Accept, the
// subprotocol "mqtt" selected (MQTT-6.0.0-4), no extension (none was offered).
bool client_link::upgrade_response(std::string_view& data) {
    const size_t before = response_.size();
    response_.append(data.substr(0, k_max_response + 4 - std::min(before, k_max_response + 4)));
    const size_t end = response_.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (response_.size() > k_max_response) return fail("WebSocket upgrade: response too large");
        data = {};
        return true;
    }
    data.remove_prefix(std::min(end + 4 - before, data.size()));
    const std::string_view head(response_.data(), end);
    const size_t line_end = head.find("\r\n");
    const std::string_view status = head.substr(0, line_end);
    if (status.substr(0, 13) != "HTTP/1.1 101 " && status != "HTTP/1.1 101") {
        return fail("WebSocket upgrade refused: " + std::string(status.substr(0, 200)));
    }
    std::string upgrade;
    std::string connection;
    std::string accept;
    std::string protocol;
    std::string extensions;
    std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
    while (!rest.empty()) {
        const size_t eol = rest.find("\r\n");
        const std::string_view line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) return fail("WebSocket upgrade: malformed header line");
        const std::string name = ascii_lower(line.substr(0, colon));
        const std::string_view value = trim_ows(line.substr(colon + 1));
        std::string* field = name == "upgrade"                    ? &upgrade
                             : name == "connection"               ? &connection
                             : name == "sec-websocket-accept"     ? &accept
                             : name == "sec-websocket-protocol"   ? &protocol
                             : name == "sec-websocket-extensions" ? &extensions
                                                                  : nullptr;
        if (field != nullptr) *field += (field->empty() ? "" : ",") + std::string(value);
    }
    if (ascii_lower(upgrade) != "websocket") return fail("WebSocket upgrade: no \"Upgrade: websocket\" in the 101");
    if (!has_token(connection, "upgrade")) return fail("WebSocket upgrade: no \"Connection: Upgrade\" in the 101");
    if (accept != expected_accept_) return fail("WebSocket upgrade: wrong Sec-WebSocket-Accept \"" + accept + "\"");
    if (protocol != "mqtt") {
        return fail("WebSocket upgrade: the broker selected subprotocol \"" + protocol + "\", not \"mqtt\"");
    }
    if (!extensions.empty()) return fail("WebSocket upgrade: unrequested extensions \"" + extensions + "\"");
    std::string().swap(response_);
    ws_state_ = ws_state::open;
    return true;
}

bool client_link::frames(std::string_view data, std::string& app, std::string& wire_out) {
    while (!data.empty()) {
        if (in_header_) {
            // Byte by byte until the header's length is known, then the rest of it.
            header_[header_len_++] = static_cast<uint8_t>(data.front());
            data.remove_prefix(1);
            if (header_len_ < 2) continue;
            const uint8_t b0 = header_[0];
            const uint8_t b1 = header_[1];
            if (header_len_ == 2) {
                if ((b0 & 0x70) != 0) return fail("WebSocket: reserved bits set in a server frame");
                if ((b1 & 0x80) != 0) return fail("WebSocket: masked server frame (RFC 6455 5.1)");
            }
            const uint8_t len7 = b1 & 0x7F;
            const size_t extended = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
            if (header_len_ < 2 + extended) continue;
            uint64_t len = len7;
            if (extended != 0) {
                len = load_be(header_ + 2, extended);
                if ((len >> 63) != 0) return fail("WebSocket: frame length too large");
            }
            header_len_ = 0;
            in_header_ = false;
            fin_ = (b0 & 0x80) != 0;
            opcode_ = b0 & 0x0F;
            remaining_ = len;
            if (opcode_ >= 0x8) {
                if (!fin_ || len > 125) return fail("WebSocket: fragmented or long control frame");
                if (opcode_ != k_op_close && opcode_ != k_op_ping && opcode_ != k_op_pong) {
                    return fail("WebSocket: unknown control opcode");
                }
                control_.clear();
            } else if (opcode_ == k_op_text) {
                return fail("WebSocket: text frame (MQTT travels in binary frames)");
            } else if (opcode_ == k_op_binary) {
                if (in_message_) return fail("WebSocket: new message inside a fragmented one");
                in_message_ = !fin_;
            } else if (opcode_ == k_op_continuation) {
                if (!in_message_) return fail("WebSocket: continuation without a message");
                in_message_ = !fin_;
            } else {
                return fail("WebSocket: unknown data opcode");
            }
            if (remaining_ == 0) {
                in_header_ = true;
                if (opcode_ >= 0x8 && !control_frame(wire_out)) return false;
            }
            continue;
        }
        const auto take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        (opcode_ >= 0x8 ? control_ : app).append(data.substr(0, take));
        remaining_ -= take;
        data.remove_prefix(take);
        if (remaining_ == 0) {
            in_header_ = true;
            if (opcode_ >= 0x8 && !control_frame(wire_out)) return false;
        }
    }
    return true;
}

bool client_link::control_frame(std::string& wire_out) {
    switch (opcode_) {
        case k_op_ping:
            ws_send(k_op_pong, control_, wire_out);
            return true;
        case k_op_close: {
            std::string why = "the broker closed the WebSocket";
            if (control_.size() >= 2) {
                const unsigned code = load_be16(control_.data());
                why += " (" + std::to_string(code);
                if (control_.size() > 2) why += " " + control_.substr(2);
                why += ")";
            }
            if (!close_sent_) {  // echo the status code (RFC 6455 5.5.1)
                ws_send(k_op_close, std::string_view(control_).substr(0, std::min<size_t>(control_.size(), 2)),
                        wire_out);
                close_sent_ = true;
            }
            ws_state_ = ws_state::closed;
            return fail(std::move(why));
        }
        default:  // pong
            return true;
    }
}

void client_link::ws_send(uint8_t opcode, std::string_view payload, std::string& wire_out) {
    std::string& out = ssl_ != nullptr ? framed_ : wire_out;
    if (ssl_ != nullptr) framed_.clear();
    const uint64_t n = payload.size();
    uint8_t head[14];
    size_t len = 0;
    head[len++] = static_cast<uint8_t>(0x80 | opcode);
    if (n < 126) {
        head[len++] = static_cast<uint8_t>(0x80 | n);
    } else if (n <= 0xFFFF) {
        head[len++] = 0x80 | 126;
        head[len++] = static_cast<uint8_t>(n >> 8);
        head[len++] = static_cast<uint8_t>(n & 0xFF);
    } else {
        head[len++] = 0x80 | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            head[len++] = static_cast<uint8_t>((n >> shift) & 0xFF);
    }
    // A fresh, unpredictable masking key per frame (RFC 6455 5.3).
    std::array<uint8_t, 4> mask{};
    SLUICE_CHECK(RAND_bytes(mask.data(), 4) == 1, "RAND_bytes failed");
    std::memcpy(head + len, mask.data(), 4);
    len += 4;
    const size_t at = out.size();
    out.resize(at + len + payload.size());
    std::memcpy(out.data() + at, head, len);
    mask_copy(out.data() + at + len, payload.data(), payload.size(), mask);
    if (ssl_ != nullptr) tls_out(framed_, wire_out);
}

}  // namespace sluice::loadgen
