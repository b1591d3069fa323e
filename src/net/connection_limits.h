// SPDX-License-Identifier: Apache-2.0
//
// How many MQTT connections the box takes, and how fast (issue 12 "Limits"): in all,
// per source address, and new connections per second per source address. Checked when a
// socket is accepted, on every listener (TCP, TLS, WebSocket): past a limit the socket is
// closed at once, before any byte is read or any TLS handshake is done, so a flood costs
// an accept() and a close(). Counted per reason; docs/operations.md has the policy.
//
// Threads: admit() is called by every loop's listeners, an admission is released on
// whichever loop its connection ends (connections move between loops). One mutex guards
// the per-address table; accepting is rare next to packets.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/thread_annotations.h"

namespace sluice::net {

struct connection_limit_options {
    uint32_t max_connections = 0;                  // all MQTT listeners together; 0 = no limit
    uint32_t max_connections_per_address = 0;      // 0 = no limit
    uint32_t max_connection_rate_per_address = 0;  // new connections per second (burst: the same number); 0 = no limit
};

struct connection_limit_stats {
    std::atomic<uint64_t> refused_total{0};        // past max_connections
    std::atomic<uint64_t> refused_per_address{0};  // past max_connections_per_address
    std::atomic<uint64_t> refused_rate{0};         // past max_connection_rate_per_address
    std::atomic<uint64_t> current{0};              // admitted and not yet closed
};

class connection_limits {
public:
    // Held by a connection for its whole life (moved along when it changes loops); its
    // destruction gives the slot back.
    class admission {
    public:
        admission(connection_limits& owner, std::string host) : owner_(owner), host_(std::move(host)) {}
        ~admission() { owner_.release(host_); }
        admission(const admission&) = delete;
        admission& operator=(const admission&) = delete;

    private:
        connection_limits& owner_;
        std::string host_;
    };

    explicit connection_limits(connection_limit_options opts) : opts_(opts) {}

    // A connection from `host` (an address without port) accepted at `now_ms` (monotonic):
    // its admission, or nullptr when a limit refuses it (counted).
    std::unique_ptr<admission> admit(std::string_view host, int64_t now_ms);

    const connection_limit_options& options() const { return opts_; }
    connection_limit_stats& stats() { return stats_; }

private:
    struct per_address {
        uint32_t connections = 0;
        double tokens = 0;  // rate limit bucket
        int64_t refilled_ms = 0;
    };

    void release(const std::string& host);
    void forget_idle_addresses(int64_t now_ms) SLUICE_REQUIRES(mutex_);

    connection_limit_options opts_;
    connection_limit_stats stats_;
    sluice::mutex mutex_;
    std::unordered_map<std::string, per_address> addresses_ SLUICE_GUARDED_BY(mutex_);
};

}  // namespace sluice::net
