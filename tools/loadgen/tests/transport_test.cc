// SPDX-License-Identifier: Apache-2.0
//
// The loadgen's TLS and WebSocket client links (transport.h) against the broker's own
// server layers (src/net: tls_config, websocket_layer), both in memory: the handshakes, MQTT
// bytes both ways in every size class of WebSocket frame, masking (the server refuses an
// unmasked client frame), certificate verification with --cafile (wrong CA, wrong name) and
// without it, and the broker's misbehaviour the client must refuse (a bad upgrade answer,
// masked or text frames from the server).
#include "transport.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/stream_layer.h"
#include "net/tls.h"
#include "net/websocket.h"

namespace sluice::loadgen {
namespace {

struct key_and_cert {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    ~key_and_cert() {
        EVP_PKEY_free(key);
        X509_free(cert);
    }
};

void add_ext(X509* cert, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// A P-256 key and a certificate for `cn` (with `san`, if any), signed by `issuer`
// (self-signed, a CA, when null).
void make_cert(key_and_cert& out, const char* cn, const key_and_cert* issuer, const char* san) {
    out.key = EVP_EC_gen("P-256");
    ASSERT_NE(out.key, nullptr);
    out.cert = X509_new();
    X509_set_version(out.cert, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(out.cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(out.cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(out.cert), 3600);
    X509_set_pubkey(out.cert, out.key);
    X509_NAME* name = X509_get_subject_name(out.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(out.cert, issuer ? X509_get_subject_name(issuer->cert) : name);
    if (!issuer) add_ext(out.cert, NID_basic_constraints, "critical,CA:TRUE");
    if (san) add_ext(out.cert, NID_subject_alt_name, san);
    ASSERT_GT(X509_sign(out.cert, issuer ? issuer->key : out.key, EVP_sha256()), 0);
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    if (cert) PEM_write_X509(f, cert);
    if (key) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
}

// Both ends of one connection in memory, bytes pumped until neither has anything to say.
struct wire_pair {
    std::unique_ptr<client_link> client;
    std::unique_ptr<net::stream_layer> server;
    std::string client_app;  // what the client decoded (MQTT bytes from the broker)
    std::string server_app;  // what the server decoded
    bool client_ok = true;
    bool server_ok = true;

    void pump(std::string to_server) {
        for (int round = 0; round < 50; ++round) {
            std::string to_client;
            if (!to_server.empty() && server_ok) server_ok = server->on_wire(to_server, server_app, to_client);
            to_server.clear();
            if (!to_client.empty() && client_ok) client_ok = client->on_wire(to_client, client_app, to_server);
            if (to_server.empty()) return;
        }
        ADD_FAILURE() << "the two ends kept talking";
    }
    void connect() {
        std::string hello;
        client->start(hello);
        pump(std::move(hello));
    }
    // The client sends `app`; returns what the server decoded.
    std::string send(const std::string& app) {
        server_app.clear();
        std::string wire;
        client->on_app(app, wire);
        pump(std::move(wire));
        return server_app;
    }
    // The server sends `app`; returns what the client decoded.
    std::string receive(const std::string& app) {
        client_app.clear();
        std::string wire;
        server->on_app(app, wire);
        std::string answer;
        client_ok = client->on_wire(wire, client_app, answer);
        pump(std::move(answer));
        return client_app;
    }
};

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 131 + 7) & 0xFF);
    return s;
}

class transport_test : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("sluice-loadgen-transport-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        make_cert(ca_, "Bench CA", nullptr, nullptr);
        make_cert(server_, "localhost", &ca_, "DNS:localhost,IP:127.0.0.1");
        make_cert(stranger_, "Other CA", nullptr, nullptr);
        write_pem(path("ca.pem"), ca_.cert, nullptr);
        write_pem(path("server.pem"), server_.cert, nullptr);
        write_pem(path("server.key"), nullptr, server_.key);
        write_pem(path("other-ca.pem"), stranger_.cert, nullptr);
        net::tls_options o;
        o.cert_file = path("server.pem");
        o.key_file = path("server.key");
        tls_ = std::make_unique<net::tls_config>(o);
        ASSERT_EQ(tls_->load(), "");
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string path(const char* name) const { return (dir_ / name).string(); }

    std::unique_ptr<link_config> config(transport_kind t, const std::string& host = "127.0.0.1",
                                        const std::string& cafile = "") {
        options o;
        o.transport = t;
        o.host = host;
        o.cafile = cafile;
        o.port = 8883;
        std::string error;
        auto cfg = link_config::create(o, error);
        EXPECT_NE(cfg, nullptr) << error;
        return cfg;
    }

    wire_pair pair(transport_kind t, const std::string& host = "127.0.0.1", const std::string& cafile = "") {
        wire_pair p;
        configs_.push_back(config(t, host, cafile));
        p.client = configs_.back()->new_link();
        switch (t) {
            case transport_kind::tls:
                p.server = tls_->new_layer();
                break;
            case transport_kind::ws:
                p.server = std::make_unique<net::websocket_layer>();
                break;
            default:
                p.server = net::stack_layers(tls_->new_layer(), std::make_unique<net::websocket_layer>());
                break;
        }
        return p;
    }

    std::filesystem::path dir_;
    key_and_cert ca_, server_, stranger_;
    std::unique_ptr<net::tls_config> tls_;
    std::vector<std::unique_ptr<link_config>> configs_;
};

// Every WebSocket length encoding (7 bit, 16 bit, 64 bit) and a TLS record's boundary.
const size_t k_sizes[] = {1, 2, 125, 126, 127, 1000, 16384, 16385, 65535, 65536, 300000};
const std::string k_disconnect("\xe0\x00", 2);  // MQTT DISCONNECT

TEST_F(transport_test, websocket_upgrade_and_masked_frames_both_ways) {
    wire_pair p = pair(transport_kind::ws);
    std::string request;
    p.client->start(request);
    EXPECT_EQ(request.rfind("GET /mqtt HTTP/1.1\r\n", 0), 0u) << request;
    EXPECT_NE(request.find("Sec-WebSocket-Protocol: mqtt\r\n"), std::string::npos);
    EXPECT_NE(request.find("Host: 127.0.0.1:8883\r\n"), std::string::npos);
    EXPECT_FALSE(p.client->ready());
    p.pump(request);
    ASSERT_TRUE(p.client_ok) << p.client->error();
    ASSERT_TRUE(p.server_ok) << p.server->error();
    ASSERT_TRUE(p.client->ready());
    EXPECT_EQ(static_cast<net::websocket_layer&>(*p.server).path(), "/mqtt");
    EXPECT_EQ(p.client->tls_description(), "");
    for (size_t n : k_sizes) {
        const std::string data = pattern(n);
        std::string wire;
        p.client->on_app(data, wire);
        ASSERT_GE(wire.size(), 6u);
        EXPECT_EQ(static_cast<uint8_t>(wire[0]), 0x82) << "FIN, binary";
        EXPECT_NE(static_cast<uint8_t>(wire[1]) & 0x80, 0) << "client frames are masked";
        EXPECT_EQ(p.send(data), data) << n;
        EXPECT_EQ(p.receive(data), data) << n;
        ASSERT_TRUE(p.client_ok && p.server_ok) << n << ": " << p.client->error() << p.server->error();
    }
}

TEST_F(transport_test, websocket_bytes_one_at_a_time_and_ping_answered) {
    wire_pair p = pair(transport_kind::ws);
    p.connect();
    ASSERT_TRUE(p.client->ready());
    // Two server frames, then a ping, delivered byte by byte.
    std::string wire;
    p.server->on_app("hello ", wire);
    p.server->on_app(pattern(300), wire);
    wire += std::string(
        "\x89\x03"
        "abc",
        5);
    std::string app;
    std::string answer;
    for (char ch : wire)
        ASSERT_TRUE(p.client->on_wire(std::string_view(&ch, 1), app, answer)) << p.client->error();
    EXPECT_EQ(app, "hello " + pattern(300));
    // A masked pong with the ping's payload.
    ASSERT_EQ(answer.size(), 2u + 4u + 3u);
    EXPECT_EQ(static_cast<uint8_t>(answer[0]), 0x8A);
    EXPECT_EQ(static_cast<uint8_t>(answer[1]), 0x80 | 3);
    std::string payload;
    for (size_t i = 0; i < 3; ++i)
        payload.push_back(static_cast<char>(answer[6 + i] ^ answer[2 + i]));
    EXPECT_EQ(payload, "abc");
}

TEST_F(transport_test, websocket_close_from_the_broker_and_from_the_client) {
    wire_pair p = pair(transport_kind::ws);
    p.connect();
    std::string app;
    std::string answer;
    EXPECT_FALSE(p.client->on_wire(std::string("\x88\x02\x03\xe8", 4), app, answer));
    EXPECT_NE(p.client->error().find("closed the WebSocket (1000)"), std::string::npos) << p.client->error();
    EXPECT_EQ(static_cast<uint8_t>(answer[0]), 0x88) << "the close is echoed";

    wire_pair q = pair(transport_kind::ws);
    q.connect();
    std::string bye;
    q.client->on_app(k_disconnect, bye);  // DISCONNECT
    q.client->on_close(bye);
    std::string to_client;
    EXPECT_FALSE(q.server->on_wire(bye, q.server_app, to_client));
    EXPECT_EQ(q.server_app, k_disconnect);
    EXPECT_EQ(q.server->error(), "the peer closed the WebSocket");
}

TEST_F(transport_test, websocket_refuses_what_a_broker_must_not_answer) {
    const auto upgrade_answer = [&](const std::string& response) {
        auto cfg = config(transport_kind::ws);
        auto link = cfg->new_link();
        std::string request;
        link->start(request);
        const size_t at = request.find("Sec-WebSocket-Key: ") + 19;
        const std::string key = request.substr(at, request.find("\r\n", at) - at);
        std::string text = response;
        const size_t k = text.find("{accept}");
        if (k != std::string::npos) text.replace(k, 8, websocket_accept(key));
        std::string app;
        std::string out;
        const bool ok = link->on_wire(text, app, out);
        return ok ? std::string("ok") : link->error();
    };
    const std::string good =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    EXPECT_EQ(upgrade_answer(good), "ok");
    EXPECT_NE(upgrade_answer("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").find("refused"),
              std::string::npos);
    EXPECT_NE(
        upgrade_answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
            .find("Sec-WebSocket-Accept"),
        std::string::npos);
    EXPECT_NE(upgrade_answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: {accept}\r\n\r\n")
                  .find("subprotocol"),
              std::string::npos);
    EXPECT_NE(upgrade_answer(good + "\x82\x81\x01\x02\x03\x04\x05").find("masked server frame"), std::string::npos);
    EXPECT_NE(upgrade_answer(good + "\x81\x01x").find("text frame"), std::string::npos);
    // The part of the answer after the blank line is frame data.
    EXPECT_EQ(upgrade_answer(good + "\x82\x02\x20\x02"), "ok");
}

TEST_F(transport_test, tls_verified_against_the_cafile_and_mqtt_both_ways) {
    wire_pair p = pair(transport_kind::tls, "localhost", path("ca.pem"));
    p.connect();
    ASSERT_TRUE(p.client_ok) << p.client->error();
    ASSERT_TRUE(p.client->ready());
    EXPECT_EQ(p.client->tls_description().rfind("TLSv1.3 ", 0), 0u) << p.client->tls_description();
    for (size_t n : k_sizes) {
        const std::string data = pattern(n);
        EXPECT_EQ(p.send(data), data) << n;
        EXPECT_EQ(p.receive(data), data) << n;
    }
    // The certificate names 127.0.0.1 too.
    wire_pair q = pair(transport_kind::tls, "127.0.0.1", path("ca.pem"));
    q.connect();
    EXPECT_TRUE(q.client->ready()) << q.client->error();
}

TEST_F(transport_test, tls_refuses_an_unknown_ca_or_name_and_verifies_nothing_without_cafile) {
    wire_pair p = pair(transport_kind::tls, "localhost", path("other-ca.pem"));
    p.connect();
    EXPECT_FALSE(p.client_ok);
    EXPECT_NE(p.client->error().find("certificate verify failed"), std::string::npos) << p.client->error();

    wire_pair q = pair(transport_kind::tls, "broker.example", path("ca.pem"));
    q.connect();
    EXPECT_FALSE(q.client_ok);
    EXPECT_NE(q.client->error().find("hostname mismatch"), std::string::npos) << q.client->error();

    wire_pair r = pair(transport_kind::tls, "broker.example");
    r.connect();
    EXPECT_TRUE(r.client->ready()) << r.client->error();
}

TEST_F(transport_test, wss_upgrade_inside_tls_then_frames_and_a_clean_close) {
    wire_pair p = pair(transport_kind::wss, "localhost", path("ca.pem"));
    p.connect();
    ASSERT_TRUE(p.client_ok) << p.client->error();
    ASSERT_TRUE(p.server_ok) << p.server->error();
    ASSERT_TRUE(p.client->ready());
    EXPECT_NE(p.client->tls_description(), "");
    for (size_t n : k_sizes) {
        const std::string data = pattern(n);
        EXPECT_EQ(p.send(data), data) << n;
        EXPECT_EQ(p.receive(data), data) << n;
    }
    std::string bye;
    p.client->on_app(k_disconnect, bye);
    p.client->on_close(bye);
    std::string to_client;
    p.server_app.clear();
    EXPECT_FALSE(p.server->on_wire(bye, p.server_app, to_client));
    EXPECT_EQ(p.server_app, k_disconnect);
}

TEST_F(transport_test, an_unreadable_cafile_is_a_setup_error) {
    options o;
    o.transport = transport_kind::tls;
    o.cafile = path("missing.pem");
    std::string error;
    EXPECT_EQ(link_config::create(o, error), nullptr);
    EXPECT_NE(error.find("--cafile"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice::loadgen
