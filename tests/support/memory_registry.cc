// SPDX-License-Identifier: Apache-2.0
//
// The in-memory registry (see memory_registry.h).
#include "tests/support/memory_registry.h"

namespace sluice::doubles {

store::device& memory_registry::ensure_locked(std::string_view key, std::string_view site, std::string_view line) {
    auto it = devices_.find(key);
    if (it == devices_.end()) {
        const auto id = static_cast<int32_t>(devices_.size() + 1);
        it = devices_.emplace(std::string(key), store::device{id, std::string(key), std::string(key), {}, {}, "{}"})
                 .first;
    }
    if (it->second.site.empty()) it->second.site = std::string(site);
    if (it->second.line.empty()) it->second.line = std::string(line);
    return it->second;
}

result<store::device> memory_registry::ensure_device(std::string_view key, std::string_view site,
                                                     std::string_view line) {
    std::lock_guard lock(mu_);
    return ensure_locked(key, site, line);
}

result<std::optional<store::device>> memory_registry::find_device(std::string_view key) {
    std::lock_guard lock(mu_);
    const auto it = devices_.find(key);
    if (it == devices_.end()) return std::optional<store::device>{};
    return std::optional<store::device>{it->second};
}

result<std::vector<store::device>> memory_registry::ensure_devices(const std::vector<device_request>& requests) {
    std::lock_guard lock(mu_);
    std::vector<store::device> out;
    out.reserve(requests.size());
    for (const auto& r : requests)
        out.push_back(ensure_locked(r.key, r.site, r.line));
    return out;
}

result<int32_t> memory_registry::ensure_metric(std::string_view name) {
    std::lock_guard lock(mu_);
    auto it = metrics_.find(name);
    if (it == metrics_.end()) {
        const auto id = static_cast<int32_t>(metrics_.size() + 1);
        it = metrics_.emplace(std::string(name), store::metric_row{id, std::string(name), "", 1.0, 0.0, {}, {}, {}, {}})
                 .first;
    }
    return it->second.id;
}

result<std::vector<store::metric_row>> memory_registry::load_metrics() {
    std::lock_guard lock(mu_);
    std::vector<store::metric_row> out;
    out.reserve(metrics_.size());
    for (const auto& [name, m] : metrics_)
        out.push_back(m);
    return out;
}

result<std::vector<store::device>> memory_registry::load_devices() {
    std::lock_guard lock(mu_);
    std::vector<store::device> out;
    out.reserve(devices_.size());
    for (const auto& [key, d] : devices_)
        out.push_back(d);
    return out;
}

int32_t memory_registry::device_id(const std::string& key) const {
    std::lock_guard lock(mu_);
    const auto it = devices_.find(key);
    return it == devices_.end() ? 0 : it->second.id;
}

}  // namespace sluice::doubles
