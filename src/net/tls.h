// SPDX-License-Identifier: Apache-2.0
//
// TLS for the MQTT listeners (OpenSSL): the server's certificate, key and optional CA for
// client certificates (tls_config), and the per-connection layer that encrypts and
// decrypts through memory buffers (stream_layer.h), so the event loop keeps doing all
// socket I/O itself. TLS 1.2 and 1.3; client-initiated renegotiation is refused.
//
// Threads: tls_config is shared by every loop. new_layer() may be called from any loop;
// reload() (SIGHUP, main thread) swaps in new certificates for connections accepted
// afterwards, and connections already up keep theirs. A reload that fails keeps the old.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/thread_annotations.h"
#include "net/stream_layer.h"

struct ssl_ctx_st;

namespace sluice::net {

struct tls_options {
    std::string cert_file;             // PEM certificate chain (server first)
    std::string key_file;              // PEM private key
    std::string ca_file;               // PEM CAs for client certificates; "" = none asked
    bool require_certificate = false;  // clients without a certificate the CA signed are refused
    std::string ciphers;               // TLS 1.2 cipher list (OpenSSL syntax); "" = OpenSSL's default
    std::string ciphersuites;          // TLS 1.3 suites; "" = OpenSSL's default
    std::string min_version = "1.2";   // "1.2" or "1.3"
};

struct tls_stats {
    std::atomic<uint64_t> handshakes{0};          // completed
    std::atomic<uint64_t> handshake_failures{0};  // refused certificate, bad record, wrong protocol
    std::atomic<uint64_t> reloads{0};
    std::atomic<uint64_t> reload_failures{0};
};

class tls_config {
public:
    explicit tls_config(tls_options opts);
    ~tls_config();
    tls_config(const tls_config&) = delete;
    tls_config& operator=(const tls_config&) = delete;

    // Reads the certificate, key and CA. Returns "" on success, else what is wrong (and the
    // previous certificates, if any, stay in use).
    std::string load();
    // load(), counted in stats(); for SIGHUP.
    std::string reload();

    // A server-side TLS session for one new connection. REQUIRES: load() succeeded once.
    std::unique_ptr<stream_layer> new_layer();

    const tls_options& options() const { return opts_; }
    tls_stats& stats() { return stats_; }

private:
    tls_options opts_;
    tls_stats stats_;
    mutable sluice::mutex mutex_;
    std::shared_ptr<ssl_ctx_st> ctx_ SLUICE_GUARDED_BY(mutex_);
};

}  // namespace sluice::net
