// SPDX-License-Identifier: Apache-2.0
//
// What the pipeline knows about metrics: their ids (the binary format carries ids),
// canonical unit, how device units convert to it, valid range and warning thresholds.
// The store fills a metric_dictionary from the `metrics` table; the pipeline only
// reads it. Unit conversions are table-driven (find_unit_conversion).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::pipeline {

struct metric_def {
    uint32_t id = 0;
    std::string name;
    std::string unit;        // canonical unit, what is stored ("degC", "bar", "V", ...)
    std::string input_unit;  // unit devices send; empty means `unit`
    double scale = 1;        // canonical = raw * scale + offset
    double offset = 0;
    std::optional<double> valid_min, valid_max;  // outside: flag out_of_range (kept)
    std::optional<double> warn_low, warn_high;   // beyond: flag threshold (kept)
};

// canonical = raw * scale + offset
struct unit_conversion {
    double scale = 1;
    double offset = 0;
};

// Looks up the linear conversion between two units from the built-in table (both
// directions, common spellings: "degF"/"°F", "kPa", "psi", "mV", ...). Identity when
// from == to; nullopt when the pair is unknown.
std::optional<unit_conversion> find_unit_conversion(std::string_view from, std::string_view to);

// Metrics by id and by name. Built by the store (control plane), then read by the
// pipeline worker that owns it; not thread-safe for concurrent add + find.
class metric_dictionary {
public:
    // Adds or replaces the metric with def.id. When input_unit differs from unit and
    // scale/offset are left at 1/0, they come from find_unit_conversion.
    // Returns false with `reason` set when the units have no known conversion or the
    // name is empty or taken by another id.
    bool add(metric_def def, std::string& reason);

    const metric_def* find(uint32_t id) const;
    const metric_def* find(std::string_view name) const;
    std::size_t size() const { return by_id_.size(); }

private:
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::deque<metric_def> defs_;  // stable addresses
    std::unordered_map<uint32_t, metric_def*> by_id_;
    std::unordered_map<std::string, metric_def*, name_hash, std::equal_to<>> by_name_;
};

}  // namespace sluice::pipeline
