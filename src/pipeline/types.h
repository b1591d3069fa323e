// SPDX-License-Identifier: Apache-2.0
//
// The values that flow through the pipeline: what a decoder yields (readings of one
// payload) and the payload formats a topic rule can name. Kept apart from the decoder
// so that topic rules, transforms and the store can share them without simdjson.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace sluice::pipeline {

// One decoded reading. Exactly one of metric_name / metric_id identifies the metric:
// JSON carries names (metric_id == 0), the compact binary format carries dictionary ids
// (metric_name empty). metric_name points into the payload decoder's buffers: valid
// until that decoder's next decode() call.
struct reading {
    int64_t time_ms;  // Unix milliseconds
    std::string_view metric_name;
    uint32_t metric_id;
    double value;
};

// Everything decoded from one payload. Reuse one instance per decoder: decode() clears
// it and keeps the vector's capacity, so the hot path does not allocate.
struct decoded_payload {
    std::optional<uint64_t> seq;  // per-device sequence number, when the payload has one
    std::vector<reading> readings;
    std::string_view device;   // JSON "device" member (empty when absent)
    bool seq_restart = false;  // binary flag: first payload since the device restarted

    void clear() {
        seq.reset();
        readings.clear();
        device = {};
        seq_restart = false;
    }
};

enum class payload_format : uint8_t { auto_detect, json, binary };

// "auto", "json", "binary" (the names used in config and docs).
std::optional<payload_format> parse_payload_format(std::string_view name);
std::string_view to_string(payload_format f);

}  // namespace sluice::pipeline
