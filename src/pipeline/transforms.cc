// SPDX-License-Identifier: Apache-2.0
//
// Implementation of the pipeline transforms (see transforms.h for the rules).
#include "pipeline/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::pipeline {

zscore_detector::zscore_detector(const anomaly_config& cfg)
    : alpha_(2.0 / (static_cast<double>(cfg.window) + 1.0)),
      threshold_(cfg.zscore_threshold),
      min_samples_(cfg.min_samples) {}

bool zscore_detector::observe(uint32_t device_id, uint32_t metric_id, double value) {
    ewma& s = state_[(static_cast<uint64_t>(device_id) << 32) | metric_id];
    bool anomalous = false;
    if (s.n == 0) {
        s.mean = value;
        s.var = 0;
    } else {
        const double diff = value - s.mean;
        if (s.n >= min_samples_) {
            const double sd = std::sqrt(s.var);
            const double tiny = 1e-9 * std::max(1.0, std::fabs(s.mean));
            // A flat series (sd ~ 0) flags any real change.
            anomalous = sd > tiny ? std::fabs(diff) / sd > threshold_ : std::fabs(diff) > tiny;
        }
        // Exact running mean/variance while n is small (Welford, alpha = 1/(n+1)), then
        // exponential forgetting, so the first samples neither dominate nor linger.
        const double a = std::max(alpha_, 1.0 / static_cast<double>(s.n + 1));
        const double incr = a * diff;
        s.mean += incr;
        s.var = (1.0 - a) * (s.var + diff * incr);
    }
    ++s.n;
    return anomalous;
}

uint64_t sequence_tracker::observe(std::string_view device_key, uint64_t seq, bool restart_flag) {
    ++totals_.payloads;
    auto it = last_.find(device_key);
    if (it == last_.end()) {
        last_.emplace(std::string(device_key), seq);
        ++totals_.devices;
        if (restart_flag) ++totals_.restarts;
        return 0;
    }
    uint64_t& last = it->second;
    if (restart_flag || (seq == 0 && last != 0)) {  // devices count from 0 after a reboot
        ++totals_.restarts;
        last = seq;
        return 0;
    }
    if (seq == last + 1) {
        ++totals_.in_order;
        last = seq;
        return 0;
    }
    if (seq > last) {
        const uint64_t gap = seq - last - 1;
        last = seq;
        if (gap > cfg_.max_gap) {
            ++totals_.restarts;
            return 0;
        }
        ++totals_.gaps;
        totals_.missing += gap;
        return gap;
    }
    if (last - seq < cfg_.reorder_window) {
        ++totals_.late_or_duplicate;
        return 0;
    }
    ++totals_.restarts;
    last = seq;
    return 0;
}

transformer::transformer(const metric_dictionary& metrics, anomaly_config cfg, sequence_tracker::config seq_cfg)
    : metrics_(metrics), cfg_(cfg), zscores_(cfg_), sequences_(seq_cfg) {}

void transformer::apply(uint32_t device_id, std::string_view device_key, const decoded_payload& payload, int64_t now_ms,
                        std::vector<telemetry_row>& rows, std::vector<rejected_reading>& rejected) {
    int16_t payload_flags = 0;
    if (payload.seq && sequences_.observe(device_key, *payload.seq, payload.seq_restart) > 0) {
        payload_flags |= flag::after_gap;
    }
    char buf[160];
    for (std::size_t i = 0; i < payload.readings.size(); ++i) {
        const reading& r = payload.readings[i];
        const metric_def* def = r.metric_name.empty() ? metrics_.find(r.metric_id) : metrics_.find(r.metric_name);
        if (def == nullptr && !r.metric_name.empty() && unknown_metric_) def = unknown_metric_(r.metric_name);
        if (def == nullptr) {
            if (r.metric_name.empty()) {
                std::snprintf(buf, sizeof buf, "unknown metric id %u", r.metric_id);
            } else {
                std::snprintf(buf, sizeof buf, "unknown metric '%.*s'",
                              static_cast<int>(std::min<std::size_t>(r.metric_name.size(), 64)), r.metric_name.data());
            }
            rejected.push_back({i, buf});
            continue;
        }
        if (!std::isfinite(r.value)) {
            std::snprintf(buf, sizeof buf, "metric '%s': value %s is not finite", def->name.c_str(),
                          std::isnan(r.value) ? "NaN" : (r.value > 0 ? "+inf" : "-inf"));
            rejected.push_back({i, buf});
            continue;
        }
        if (r.time_ms < cfg_.min_time_ms || r.time_ms >= cfg_.max_time_ms) {
            std::snprintf(buf, sizeof buf, "metric '%s': time %lld ms is outside the storable range", def->name.c_str(),
                          static_cast<long long>(r.time_ms));
            rejected.push_back({i, buf});
            continue;
        }
        const double value = r.value * def->scale + def->offset;
        int16_t flags = payload_flags;
        const bool out_of_range =
            (def->valid_min && value < *def->valid_min) || (def->valid_max && value > *def->valid_max);
        if (out_of_range) flags |= flag::out_of_range;
        if ((def->warn_low && value < *def->warn_low) || (def->warn_high && value > *def->warn_high)) {
            flags |= flag::threshold;
        }
        if (!out_of_range && zscores_.observe(device_id, def->id, value)) flags |= flag::zscore;
        if (r.time_ms > now_ms + cfg_.future_tolerance_ms) flags |= flag::future_time;
        rows.push_back({r.time_ms, device_id, def->id, value, flags});
    }
}

}  // namespace sluice::pipeline
