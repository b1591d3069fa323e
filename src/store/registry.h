// SPDX-License-Identifier: Apache-2.0
//
// Application data the pipeline enriches readings with: devices and metrics. It lives
// in the application database (store_options::app_url, schema sluice_app), written at
// human speed, separate from the telemetry firehose (docs/storage.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "store/store.h"

namespace sluice::store {

struct device {
    int32_t id;
    std::string key;  // the client/device key from the topic or client id; unique
    std::string name;
    std::string site;
    std::string line;
    std::string metadata_json;  // jsonb as text, "{}" when empty
};

// A metric and how to turn a raw value into its canonical unit: canonical = raw * scale + offset.
struct metric_row {
    int32_t id;
    std::string name;
    std::string unit;
    double scale;
    double offset;
    std::optional<double> valid_min, valid_max;  // readings outside are invalid
    std::optional<double> warn_low, warn_high;   // readings outside are flagged
};

// Thread-safe (one connection behind a mutex). Reconnects automatically after a
// connection failure, on the next call.
class registry {
public:
    virtual ~registry() = default;
    // Creates or upgrades the sluice_app schema; open_registry() already ran it.
    virtual result<void> migrate() = 0;
    // Returns the device with this key, registering it (name = key) if unknown.
    // site/line are set when the device is created, or when they were empty.
    virtual result<device> ensure_device(std::string_view key, std::string_view site, std::string_view line) = 0;
    virtual result<std::optional<device>> find_device(std::string_view key) = 0;
    // Registers, in one statement, every key of `requests` not yet known (name = key, with
    // its site/line), and returns the devices of all requested keys. One fsync for a whole
    // batch of new devices, where ensure_device costs one each.
    struct device_request {
        std::string key;
        std::string site;
        std::string line;
    };
    virtual result<std::vector<device>> ensure_devices(const std::vector<device_request>& requests) = 0;
    // Returns the id of the metric with this name, registering it (unit "", scale 1) if unknown.
    virtual result<int32_t> ensure_metric(std::string_view name) = 0;
    // Registers every name of `names` not yet known, in one statement where the backend
    // can (issue 11: a burst of new names costs one round trip, not one fsync each), and
    // returns (name, id) of all of them. The default registers them one by one.
    virtual result<std::vector<std::pair<std::string, int32_t>>> ensure_metrics(const std::vector<std::string>& names) {
        std::vector<std::pair<std::string, int32_t>> out;
        for (const auto& n : names) {
            auto id = ensure_metric(n);
            if (!id) return id.error();
            out.emplace_back(n, *id);
        }
        return out;
    }
    virtual result<std::vector<metric_row>> load_metrics() = 0;
    virtual result<std::vector<device>> load_devices() = 0;
};

// Connects to options.app_url and migrates the sluice_app schema.
result<std::unique_ptr<registry>> open_registry(const store_options& options);

}  // namespace sluice::store
