// SPDX-License-Identifier: Apache-2.0
//
// An in-memory device and metric registry (store/registry.h) for unit tests of the
// pipeline: devices and metrics get ids 1, 2, ... in the order they are first named, as
// the database's sequences would give them. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "store/registry.h"

namespace sluice::doubles {

class memory_registry final : public store::registry {
public:
    result<void> migrate() override { return {}; }
    result<store::device> ensure_device(std::string_view key, std::string_view site, std::string_view line) override;
    result<std::optional<store::device>> find_device(std::string_view key) override;
    result<std::vector<store::device>> ensure_devices(const std::vector<device_request>& requests) override;
    result<int32_t> ensure_metric(std::string_view name) override;
    result<std::vector<store::metric_row>> load_metrics() override;
    result<std::vector<store::device>> load_devices() override;

    // The id of a device already registered, or 0.
    int32_t device_id(const std::string& key) const;

private:
    store::device& ensure_locked(std::string_view key, std::string_view site, std::string_view line);

    mutable std::mutex mu_;
    std::map<std::string, store::device, std::less<>> devices_;
    std::map<std::string, store::metric_row, std::less<>> metrics_;
};

}  // namespace sluice::doubles
