// SPDX-License-Identifier: Apache-2.0
#include "http/overview.h"

#include <algorithm>
#include <string_view>
#include <vector>

#include "http/json.h"
#include "http/metric_names.h"

namespace sluice::http {
namespace {

// all: true when every sample is non-zero (every partition up); any: when one is.
enum class agg { sum, max, all, any };

struct overview_field {
    const char* key;
    std::string_view metric;
    agg how;
};

namespace m = metric_names;

// Order is the order of the JSON object.
constexpr overview_field k_overview_fields[] = {
    {"connections", m::mqtt_connections, agg::sum},
    {"sessions", m::mqtt_sessions, agg::sum},
    {"subscriptions", m::mqtt_subscriptions, agg::sum},
    {"messages_in", m::mqtt_messages_received, agg::sum},
    {"messages_out", m::mqtt_messages_sent, agg::sum},
    {"ingest_appended", m::ingest_appended, agg::sum},
    {"ingest_refused", m::ingest_refused, agg::sum},
    {"rows", m::pipeline_rows, agg::sum},
    {"dead_letters", m::pipeline_dead_letters, agg::sum},
    {"lag_messages", m::bus_lag_messages, agg::sum},
    {"lag_seconds", m::bus_lag_seconds, agg::max},
    {"database_up", m::pipeline_database_up, agg::all},
    {"pipeline_running", m::pipeline_running, agg::all},
    {"sequence_gaps", m::pipeline_sequence_gaps, agg::sum},
    {"sequence_missing", m::pipeline_sequence_missing, agg::sum},
    {"bus_bytes", m::bus_bytes, agg::sum},
    {"wal_over_quota", m::bus_over_quota, agg::any},
};

void append_aggregate(std::string& out, const std::vector<double>& values, agg how) {
    if (values.empty()) {
        out += "null";
        return;
    }
    switch (how) {
        case agg::all:
            out += std::all_of(values.begin(), values.end(), [](double v) { return v != 0; }) ? "true" : "false";
            return;
        case agg::any:
            out += std::any_of(values.begin(), values.end(), [](double v) { return v != 0; }) ? "true" : "false";
            return;
        case agg::max:
            append_json_number(out, *std::max_element(values.begin(), values.end()));
            return;
        case agg::sum: {
            double acc = values.front();
            for (size_t i = 1; i < values.size(); ++i)
                acc += values[i];
            append_json_number(out, acc);
            return;
        }
    }
}

}  // namespace

std::string overview_json(const metrics_snapshot& metrics, int64_t now_ms) {
    std::string out = "{\"time_ms\":" + std::to_string(now_ms);
    for (const auto& f : k_overview_fields) {
        out += ",\"";
        out += f.key;
        out += "\":";
        append_aggregate(out, metrics.values(f.metric), f.how);
    }
    out += '}';
    return out;
}

}  // namespace sluice::http
