// SPDX-License-Identifier: Apache-2.0
//
// The process-wide budget for input held on behalf of packets that have not arrived in
// full (issue 10: 300 connections each holding most of a 1 MB PUBLISH pinned 261 MB
// with no limit). Every connection charges what its partial-packet buffer holds; the one
// whose growth takes the total past the limit is closed (Quota exceeded), so a client
// that sends huge or endless packets costs its own connection, not the process's memory.
// Together with the partial-packet timeout (tcp_server.cc) this bounds what hostile
// clients can pin. Policy and metrics: docs/operations.md.
//
// Thread-safe: connections of every loop charge the same budget (relaxed atomics; the
// bound may be overshot by one read per loop, 64 KB each).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::net {

class input_budget {
public:
    // `limit` bytes across all connections; 0 = unlimited.
    explicit input_budget(uint64_t limit) : limit_(limit) {}

    // Changes one connection's charge from `from` to `to` bytes. Returns false when it grew
    // and the total is now past the limit (the charge is taken anyway: the caller closes
    // the connection and releases it with recharge(to, 0)).
    bool recharge(size_t from, size_t to) {
        if (to >= from) {
            uint64_t total = used_.fetch_add(to - from, std::memory_order_relaxed) + (to - from);
            return limit_ == 0 || to == from || total <= limit_;
        }
        used_.fetch_sub(from - to, std::memory_order_relaxed);
        return true;
    }
    uint64_t used() const { return used_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> used_{0};
    uint64_t limit_;
};

}  // namespace sluice::net
