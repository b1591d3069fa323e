// SPDX-License-Identifier: Apache-2.0
//
// The "pipeline" std::error_category: stable short messages per errc. The detailed,
// per-payload reason lives in payload_decoder::reason().
#include "pipeline/errc.h"

#include <string>

namespace sluice::pipeline {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "pipeline"; }
    std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
            case errc::invalid_json:
                return "invalid JSON";
            case errc::bad_json_shape:
                return "JSON is not a reading, a batch or an array of readings";
            case errc::bad_timestamp:
                return "bad timestamp";
            case errc::non_numeric_metric:
                return "metric value is not a number";
            case errc::bad_binary:
                return "malformed compact binary payload";
            case errc::unknown_format:
                return "payload is neither JSON nor compact binary";
            case errc::empty_payload:
                return "empty payload";
            case errc::bad_topic_pattern:
                return "bad topic rule pattern";
            case errc::no_matching_rule:
                return "topic matches no ingest rule";
            case errc::unknown_device:
                return "unknown device";
            case errc::device_mismatch:
                return "payload device differs from topic device";
        }
        return "unknown pipeline error " + std::to_string(code);
    }
};

}  // namespace

const std::error_category& pipeline_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace sluice::pipeline
