// SPDX-License-Identifier: Apache-2.0
#include "net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/assert.h"

namespace sluice::net {
namespace {

// The oldest error on this thread's OpenSSL queue, as text; the queue is emptied.
std::string openssl_error(const char* what) {
    unsigned long e = ERR_get_error();
    std::string text = what;
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        text += ": ";
        text += buf;
    }
    ERR_clear_error();
    return text;
}

// The certificate's subject CN, else its first DNS name ("" when it has neither).
std::string certificate_identity(X509* cert) {
    X509_NAME* subject = X509_get_subject_name(cert);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at >= 0) {
        ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
        unsigned char* utf8 = nullptr;
        int n = ASN1_STRING_to_UTF8(&utf8, data);
        if (n > 0) {
            std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
            OPENSSL_free(utf8);
            // A CN with a NUL byte in it is not a name anyone should be trusted as.
            if (cn.find('\0') == std::string::npos) return cn;
        }
    }
    std::string name;
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans == nullptr) return name;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && name.empty(); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS) continue;
        const ASN1_STRING* s = gn->d.dNSName;
        name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                    static_cast<size_t>(ASN1_STRING_length(s)));
        if (name.find('\0') != std::string::npos) name.clear();
    }
    GENERAL_NAMES_free(sans);
    return name;
}

class tls_layer final : public stream_layer {
public:
    tls_layer(SSL_CTX* ctx, tls_stats& stats) : stats_(stats), ssl_(SSL_new(ctx)) {
        SLUICE_CHECK(ssl_ != nullptr, "SSL_new failed");
        BIO* in = BIO_new(BIO_s_mem());
        BIO* out = BIO_new(BIO_s_mem());
        SLUICE_CHECK(in != nullptr && out != nullptr, "BIO_new failed");
        SSL_set_bio(ssl_, in, out);  // ssl_ owns them now
        in_ = in;
        out_ = out;
        SSL_set_accept_state(ssl_);
    }
    ~tls_layer() override { SSL_free(ssl_); }
    tls_layer(const tls_layer&) = delete;
    tls_layer& operator=(const tls_layer&) = delete;

    bool on_wire(std::string_view wire, std::string& app, std::string& wire_out) override {
        if (failed_) return false;
        ERR_clear_error();
        while (!wire.empty()) {
            int n = BIO_write(in_, wire.data(), static_cast<int>(std::min<size_t>(wire.size(), 1U << 30)));
            if (n <= 0) return fail("buffering TLS input", wire_out);
            wire.remove_prefix(static_cast<size_t>(n));
        }
        for (;;) {
            size_t at = app.size();
            app.resize(at + k_read_chunk);
            int n = SSL_read(ssl_, app.data() + at, static_cast<int>(k_read_chunk));
            app.resize(at + static_cast<size_t>(std::max(n, 0)));
            if (n > 0) continue;
            int err = SSL_get_error(ssl_, n);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
            if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify
                error_ = "the peer closed the TLS session";
                failed_ = true;
                drain(wire_out);
                return false;
            }
            return fail(handshaken_ ? "TLS record" : "TLS handshake", wire_out);
        }
        if (!handshaken_ && SSL_is_init_finished(ssl_) == 1) {
            handshaken_ = true;
            stats_.handshakes.fetch_add(1, std::memory_order_relaxed);
            X509* cert = SSL_get0_peer_certificate(ssl_);
            if (cert != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK) identity_ = certificate_identity(cert);
        }
        drain(wire_out);
        return true;
    }

    void on_app(std::string_view app, std::string& wire_out) override {
        if (failed_ || app.empty()) return;
        ERR_clear_error();
        // Memory BIOs take everything: SSL_write only fails on a broken session.
        if (SSL_write(ssl_, app.data(), static_cast<int>(app.size())) <= 0) {
            fail("TLS write", wire_out);
            return;
        }
        drain(wire_out);
    }

    void on_close(std::string& wire_out) override {
        if (failed_ || !handshaken_) return;
        ERR_clear_error();
        SSL_shutdown(ssl_);  // queues close_notify; we do not wait for the peer's
        ERR_clear_error();
        drain(wire_out);
    }

    const std::string& error() const override { return error_; }
    const std::string& peer_identity() const override { return identity_; }

private:
    static constexpr size_t k_read_chunk = size_t{16} * 1024;

    bool fail(const char* what, std::string& wire_out) {
        error_ = openssl_error(what);
        if (!handshaken_) stats_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
        failed_ = true;
        drain(wire_out);  // an alert, when OpenSSL queued one
        return false;
    }

    void drain(std::string& wire_out) {
        size_t pending = BIO_ctrl_pending(out_);
        if (pending == 0) return;
        size_t at = wire_out.size();
        wire_out.resize(at + pending);
        int n = BIO_read(out_, wire_out.data() + at, static_cast<int>(pending));
        wire_out.resize(at + static_cast<size_t>(std::max(n, 0)));
    }

    tls_stats& stats_;
    SSL* ssl_;
    BIO* in_ = nullptr;   // owned by ssl_
    BIO* out_ = nullptr;  // owned by ssl_
    bool handshaken_ = false;
    bool failed_ = false;
    std::string error_;
    std::string identity_;
};

}  // namespace

tls_config::tls_config(tls_options opts) : opts_(std::move(opts)) {}
tls_config::~tls_config() = default;

std::string tls_config::load() {
    if (opts_.cert_file.empty() || opts_.key_file.empty())
        return "TLS needs a certificate and a key (--tls-cert, --tls-key)";
    if (opts_.require_certificate && opts_.ca_file.empty()) {
        return "--require-certificate needs --tls-ca (the CA that signs client certificates)";
    }
    if (opts_.min_version != "1.2" && opts_.min_version != "1.3") return "TLS minimum version: 1.2 or 1.3";
    ERR_clear_error();
    std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    if (!ctx) return openssl_error("SSL_CTX_new");
    SSL_CTX* c = ctx.get();
    SSL_CTX_set_min_proto_version(c, opts_.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);  // idle connections hold no record buffers
    if (SSL_CTX_use_certificate_chain_file(c, opts_.cert_file.c_str()) != 1) {
        return openssl_error(("certificate " + opts_.cert_file).c_str());
    }
    if (SSL_CTX_use_PrivateKey_file(c, opts_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        return openssl_error(("private key " + opts_.key_file).c_str());
    }
    if (SSL_CTX_check_private_key(c) != 1) return openssl_error("the key does not match the certificate");
    if (!opts_.ciphers.empty() && SSL_CTX_set_cipher_list(c, opts_.ciphers.c_str()) != 1) {
        return openssl_error(("TLS 1.2 ciphers \"" + opts_.ciphers + "\"").c_str());
    }
    if (!opts_.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c, opts_.ciphersuites.c_str()) != 1) {
        return openssl_error(("TLS 1.3 ciphersuites \"" + opts_.ciphersuites + "\"").c_str());
    }
    if (!opts_.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(c, opts_.ca_file.c_str(), nullptr) != 1) {
            return openssl_error(("CA file " + opts_.ca_file).c_str());
        }
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts_.ca_file.c_str());
        if (names != nullptr) SSL_CTX_set_client_CA_list(c, names);  // takes ownership
        int mode = SSL_VERIFY_PEER | (opts_.require_certificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
        SSL_CTX_set_verify(c, mode, nullptr);
        // Resumed sessions keep the verified identity; the id context ties them to this use.
        static const unsigned char k_context[] = "sluice-mqtt";
        SSL_CTX_set_session_id_context(c, k_context, sizeof k_context - 1);
    }
    ERR_clear_error();
    sluice::mutex_lock lock(mutex_);
    ctx_ = std::move(ctx);
    return {};
}

std::string tls_config::reload() {
    std::string err = load();
    (err.empty() ? stats_.reloads : stats_.reload_failures).fetch_add(1, std::memory_order_relaxed);
    return err;
}

std::unique_ptr<stream_layer> tls_config::new_layer() {
    std::shared_ptr<SSL_CTX> ctx;
    {
        sluice::mutex_lock lock(mutex_);
        ctx = ctx_;
    }
    SLUICE_CHECK(ctx != nullptr, "tls_config::new_layer before a successful load()");
    // SSL_new takes its own reference to the context: a reload may drop ours.
    return std::make_unique<tls_layer>(ctx.get(), stats_);
}

}  // namespace sluice::net
