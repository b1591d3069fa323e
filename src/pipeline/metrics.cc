// SPDX-License-Identifier: Apache-2.0
//
// The unit table and the metric dictionary. Add a unit pair to kUnits (from -> to,
// canonical = raw * scale + offset); the reverse direction is derived.
#include "pipeline/metrics.h"

#include <array>

namespace sluice::pipeline {
namespace {

struct unit_row {
    std::string_view from, to;
    double scale, offset;
};

// Canonical spellings first; aliases map to them below.
constexpr std::array<unit_row, 22> units{{
    {"degF", "degC", 5.0 / 9.0, -160.0 / 9.0},
    {"K", "degC", 1.0, -273.15},
    {"kPa", "bar", 0.01, 0},
    {"Pa", "bar", 1e-5, 0},
    {"hPa", "bar", 1e-3, 0},
    {"mbar", "bar", 1e-3, 0},
    {"psi", "bar", 0.0689475729316836, 0},
    {"MPa", "bar", 10.0, 0},
    {"mV", "V", 1e-3, 0},
    {"kV", "V", 1e3, 0},
    {"mA", "A", 1e-3, 0},
    {"W", "kW", 1e-3, 0},
    {"MW", "kW", 1e3, 0},
    {"Wh", "kWh", 1e-3, 0},
    {"km/h", "m/s", 1.0 / 3.6, 0},
    {"mph", "m/s", 0.44704, 0},
    {"mm", "m", 1e-3, 0},
    {"cm", "m", 1e-2, 0},
    {"ms", "s", 1e-3, 0},
    {"min", "s", 60.0, 0},
    {"rpm", "Hz", 1.0 / 60.0, 0},
    {"percent", "ratio", 0.01, 0},
}};

std::string_view canonical_spelling(std::string_view u) {
    if (u == "°F" || u == "F" || u == "fahrenheit") return "degF";
    if (u == "°C" || u == "C" || u == "celsius") return "degC";
    if (u == "kelvin") return "K";
    if (u == "%") return "percent";
    if (u == "kph") return "km/h";
    return u;
}

}  // namespace

std::optional<unit_conversion> find_unit_conversion(std::string_view from, std::string_view to) {
    from = canonical_spelling(from);
    to = canonical_spelling(to);
    if (from == to) return unit_conversion{};
    for (const auto& row : units) {
        if (row.from == from && row.to == to) return unit_conversion{row.scale, row.offset};
        if (row.from == to && row.to == from) return unit_conversion{1.0 / row.scale, -row.offset / row.scale};
    }
    // Two steps through a shared canonical unit (e.g. psi -> kPa via bar).
    for (const auto& a : units) {
        if (a.from != from) continue;
        for (const auto& b : units) {
            if (b.from == to && b.to == a.to) {
                // raw -> a.to: x*a.s + a.o ; a.to -> to: (y - b.o) / b.s
                return unit_conversion{a.scale / b.scale, (a.offset - b.offset) / b.scale};
            }
        }
    }
    return std::nullopt;
}

bool metric_dictionary::add(metric_def def, std::string& reason) {
    if (def.name.empty()) {
        reason = "metric " + std::to_string(def.id) + " has an empty name";
        return false;
    }
    if (auto it = by_name_.find(def.name); it != by_name_.end() && it->second->id != def.id) {
        reason = "metric name '" + def.name + "' is already used by id " + std::to_string(it->second->id);
        return false;
    }
    if (!def.input_unit.empty() && def.input_unit != def.unit && def.scale == 1 && def.offset == 0) {
        const auto conv = find_unit_conversion(def.input_unit, def.unit);
        if (!conv) {
            reason = "metric '" + def.name + "': no conversion from '" + def.input_unit + "' to '" + def.unit + "'";
            return false;
        }
        def.scale = conv->scale;
        def.offset = conv->offset;
    }
    if (auto it = by_id_.find(def.id); it != by_id_.end()) {
        by_name_.erase(it->second->name);
        *it->second = std::move(def);
        by_name_.emplace(it->second->name, it->second);
        return true;
    }
    metric_def& stored = defs_.emplace_back(std::move(def));
    by_id_.emplace(stored.id, &stored);
    by_name_.emplace(stored.name, &stored);
    return true;
}

const metric_def* metric_dictionary::find(uint32_t id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
}

const metric_def* metric_dictionary::find(std::string_view name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace sluice::pipeline
