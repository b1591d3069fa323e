// SPDX-License-Identifier: Apache-2.0
//
// The server side of tls.h against a real OpenSSL client, both in memory: certificates are
// made here (a CA, a server and a client certificate), the bytes are pumped between the
// two ends, and what each side decodes is checked.
#include "net/tls.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace sluice::net {
namespace {

struct key_and_cert {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    ~key_and_cert() {
        EVP_PKEY_free(key);
        X509_free(cert);
    }
};

// A P-256 key and a certificate for `cn`, signed by `issuer` (self-signed when null).
void make_cert(key_and_cert& out, const char* cn, const key_and_cert* issuer, bool ca) {
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
    if (ca) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, out.cert, out.cert, nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(out.cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ASSERT_GT(X509_sign(out.cert, issuer ? issuer->key : out.key, EVP_sha256()), 0);
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    if (cert) PEM_write_X509(f, cert);
    if (key) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
}

class tls_test : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("sluice-tls-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        make_cert(ca_, "Test CA", nullptr, true);
        make_cert(server_, "localhost", &ca_, false);
        make_cert(client_, "device-7", &ca_, false);
        make_cert(stranger_, "Other CA", nullptr, true);
        write_pem(path("ca.pem"), ca_.cert, nullptr);
        write_pem(path("server.pem"), server_.cert, nullptr);
        write_pem(path("server.key"), nullptr, server_.key);
        write_pem(path("other-ca.pem"), stranger_.cert, nullptr);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string path(const char* name) const { return (dir_ / name).string(); }

    tls_options server_options() const {
        tls_options o;
        o.cert_file = path("server.pem");
        o.key_file = path("server.key");
        return o;
    }

    // A client SSL in memory that trusts `ca` and, optionally, shows `cert`.
    struct client {
        SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
        SSL* ssl = nullptr;
        BIO* in = BIO_new(BIO_s_mem());
        BIO* out = BIO_new(BIO_s_mem());
        client(X509* trusted, const key_and_cert* identity) {
            X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), trusted);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
            if (identity) {
                SSL_CTX_use_certificate(ctx, identity->cert);
                SSL_CTX_use_PrivateKey(ctx, identity->key);
            }
            ssl = SSL_new(ctx);
            SSL_set_bio(ssl, in, out);
            SSL_set_connect_state(ssl);
            SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>("localhost"));
        }
        ~client() {
            SSL_free(ssl);
            SSL_CTX_free(ctx);
        }
        std::string take_output() {
            std::string bytes(BIO_ctrl_pending(out), '\0');
            if (!bytes.empty()) BIO_read(out, bytes.data(), static_cast<int>(bytes.size()));
            return bytes;
        }
        std::string read_app() {
            std::string got;
            char buf[4096];
            int n;
            while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
                got.append(buf, static_cast<size_t>(n));
            return got;
        }
    };

    // Pumps bytes between client and server until neither has anything to say. Returns
    // false when the server layer gave up; what it decoded is appended to `app`.
    static bool pump(client& c, stream_layer& server, std::string& app) {
        for (int round = 0; round < 20; ++round) {
            SSL_do_handshake(c.ssl);
            std::string to_server = c.take_output();
            std::string to_client;
            bool ok = server.on_wire(to_server, app, to_client);
            if (!to_client.empty()) BIO_write(c.in, to_client.data(), static_cast<int>(to_client.size()));
            if (!ok) return false;
            if (to_server.empty() && to_client.empty()) return true;
        }
        return true;
    }

    std::filesystem::path dir_;
    key_and_cert ca_, server_, client_, stranger_;
};

TEST_F(tls_test, handshake_then_application_bytes_both_ways) {
    tls_config cfg(server_options());
    ASSERT_EQ(cfg.load(), "");
    auto layer = cfg.new_layer();
    client c(ca_.cert, nullptr);
    std::string app;
    ASSERT_TRUE(pump(c, *layer, app)) << layer->error();
    ASSERT_EQ(SSL_is_init_finished(c.ssl), 1);
    EXPECT_EQ(cfg.stats().handshakes.load(), 1U);
    EXPECT_EQ(layer->peer_identity(), "");

    std::string mqtt_connect("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14);
    ASSERT_EQ(SSL_write(c.ssl, mqtt_connect.data(), static_cast<int>(mqtt_connect.size())), 14);
    ASSERT_TRUE(pump(c, *layer, app));
    EXPECT_EQ(app, mqtt_connect);

    std::string wire;
    layer->on_app(std::string("\x20\x02\x00\x00", 4), wire);
    EXPECT_EQ(wire.find(std::string("\x20\x02\x00\x00", 4)), std::string::npos) << "sent in clear";
    BIO_write(c.in, wire.data(), static_cast<int>(wire.size()));
    EXPECT_EQ(c.read_app(), std::string("\x20\x02\x00\x00", 4));

    std::string bye;
    layer->on_close(bye);
    BIO_write(c.in, bye.data(), static_cast<int>(bye.size()));
    c.read_app();
    EXPECT_EQ(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN, SSL_RECEIVED_SHUTDOWN);
}

TEST_F(tls_test, verified_client_certificate_names_the_client) {
    tls_options o = server_options();
    o.ca_file = path("ca.pem");
    o.require_certificate = true;
    tls_config cfg(o);
    ASSERT_EQ(cfg.load(), "");
    auto layer = cfg.new_layer();
    client c(ca_.cert, &client_);
    std::string app;
    ASSERT_TRUE(pump(c, *layer, app)) << layer->error();
    EXPECT_EQ(layer->peer_identity(), "device-7");
}

TEST_F(tls_test, required_certificate_missing_fails_the_handshake) {
    tls_options o = server_options();
    o.ca_file = path("ca.pem");
    o.require_certificate = true;
    tls_config cfg(o);
    ASSERT_EQ(cfg.load(), "");
    auto layer = cfg.new_layer();
    client c(ca_.cert, nullptr);
    std::string app;
    EXPECT_FALSE(pump(c, *layer, app));
    EXPECT_NE(layer->error().find("TLS handshake"), std::string::npos) << layer->error();
    EXPECT_EQ(cfg.stats().handshake_failures.load(), 1U);
    EXPECT_EQ(cfg.stats().handshakes.load(), 0U);
}

TEST_F(tls_test, certificate_from_another_ca_is_refused) {
    tls_options o = server_options();
    o.ca_file = path("other-ca.pem");
    tls_config cfg(o);
    ASSERT_EQ(cfg.load(), "");
    auto layer = cfg.new_layer();
    client c(ca_.cert, &client_);
    std::string app;
    EXPECT_FALSE(pump(c, *layer, app));
    EXPECT_EQ(layer->peer_identity(), "");
}

TEST_F(tls_test, plain_mqtt_on_the_tls_port_is_refused) {
    tls_config cfg(server_options());
    ASSERT_EQ(cfg.load(), "");
    auto layer = cfg.new_layer();
    std::string app;
    std::string out;
    EXPECT_FALSE(layer->on_wire(std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14), app, out));
    EXPECT_TRUE(app.empty());
    std::string more;
    EXPECT_FALSE(layer->on_wire("again", app, more)) << "a failed session stays failed";
}

TEST_F(tls_test, configuration_errors_name_the_problem_and_a_failed_reload_keeps_the_old) {
    tls_options o = server_options();
    o.key_file = path("missing.key");
    EXPECT_NE(tls_config(o).load().find("missing.key"), std::string::npos);
    tls_options mismatch = server_options();
    write_pem(path("client.key"), nullptr, client_.key);
    mismatch.key_file = path("client.key");
    EXPECT_NE(tls_config(mismatch).load(), "");
    tls_options no_ca = server_options();
    no_ca.require_certificate = true;
    EXPECT_NE(tls_config(no_ca).load().find("--tls-ca"), std::string::npos);

    tls_config cfg(server_options());
    ASSERT_EQ(cfg.load(), "");
    std::filesystem::remove(path("server.key"));
    EXPECT_NE(cfg.reload(), "");
    EXPECT_EQ(cfg.stats().reload_failures.load(), 1U);
    auto layer = cfg.new_layer();  // the old certificate still serves
    client c(ca_.cert, nullptr);
    std::string app;
    EXPECT_TRUE(pump(c, *layer, app)) << layer->error();
    EXPECT_EQ(SSL_is_init_finished(c.ssl), 1);
}

}  // namespace
}  // namespace sluice::net
