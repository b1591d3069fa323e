// SPDX-License-Identifier: Apache-2.0
#include "net/connection_limits.h"

#include <algorithm>

namespace sluice::net {
namespace {

constexpr size_t k_forget_above = 65'536;  // addresses remembered before idle ones are dropped

}  // namespace

std::unique_ptr<connection_limits::admission> connection_limits::admit(std::string_view host, int64_t now_ms) {
    bool per_address_limits = opts_.max_connections_per_address != 0 || opts_.max_connection_rate_per_address != 0;
    if (opts_.max_connections != 0 && stats_.current.load(std::memory_order_relaxed) >= opts_.max_connections) {
        stats_.refused_total.fetch_add(1, std::memory_order_relaxed);
        return nullptr;
    }
    if (per_address_limits) {
        sluice::mutex_lock lock(mutex_);
        if (addresses_.size() > k_forget_above) forget_idle_addresses(now_ms);
        auto [it, fresh] = addresses_.try_emplace(std::string(host));
        per_address& a = it->second;
        if (opts_.max_connections_per_address != 0 && a.connections >= opts_.max_connections_per_address) {
            stats_.refused_per_address.fetch_add(1, std::memory_order_relaxed);
            return nullptr;
        }
        if (uint32_t rate = opts_.max_connection_rate_per_address; rate != 0) {
            if (fresh) {
                a.tokens = rate;
            } else {
                a.tokens =
                    std::min<double>(rate, a.tokens + static_cast<double>(now_ms - a.refilled_ms) * rate / 1000.0);
            }
            a.refilled_ms = now_ms;
            if (a.tokens < 1.0) {
                stats_.refused_rate.fetch_add(1, std::memory_order_relaxed);
                return nullptr;
            }
            a.tokens -= 1.0;
        }
        ++a.connections;
    }
    stats_.current.fetch_add(1, std::memory_order_relaxed);
    return std::make_unique<admission>(*this, per_address_limits ? std::string(host) : std::string());
}

void connection_limits::release(const std::string& host) {
    stats_.current.fetch_sub(1, std::memory_order_relaxed);
    if (opts_.max_connections_per_address == 0 && opts_.max_connection_rate_per_address == 0) return;
    sluice::mutex_lock lock(mutex_);
    auto it = addresses_.find(host);
    if (it == addresses_.end()) return;
    if (it->second.connections > 0) --it->second.connections;
    // Without a rate limit there is nothing to remember about an address with no connection.
    if (it->second.connections == 0 && opts_.max_connection_rate_per_address == 0) addresses_.erase(it);
}

void connection_limits::forget_idle_addresses(int64_t now_ms) {
    // An address with no connection whose bucket has refilled is the same as a new one.
    for (auto it = addresses_.begin(); it != addresses_.end();) {
        bool idle = it->second.connections == 0 && now_ms - it->second.refilled_ms >= 1000;
        it = idle ? addresses_.erase(it) : std::next(it);
    }
}

}  // namespace sluice::net
