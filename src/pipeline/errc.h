// SPDX-License-Identifier: Apache-2.0
//
// Error codes of the pipeline module. A decode or validation failure is caused by a
// device, never by us, so it is a value (docs/conventions.md, "Errors"): the code says which kind of
// failure, and the decoder's reason string (payload_decoder::reason()) says exactly
// what and where; that string is what lands in dead_letters.reason.
#pragma once

#include <system_error>

namespace sluice::pipeline {

enum class errc : int {
    invalid_json = 1,    // not well-formed JSON
    bad_json_shape,      // well-formed, but not a reading object / batch / array of readings
    bad_timestamp,       // "ts" neither integer ms nor RFC 3339, or out of range
    non_numeric_metric,  // a metric member whose value is a string/object/array/null
    bad_binary,          // compact binary payload malformed (see reason)
    unknown_format,      // auto-detect found neither JSON nor the binary magic byte
    empty_payload,       // zero bytes (or only whitespace)
    bad_topic_pattern,   // a topic rule pattern that does not compile
    no_matching_rule,    // the topic matches no ingest rule
    unknown_device,      // the device lookup refused the device key
    device_mismatch,     // the payload's "device" differs from the topic's device
};

const std::error_category& pipeline_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), pipeline_category()};
}

}  // namespace sluice::pipeline

template <>
struct std::is_error_code_enum<sluice::pipeline::errc> : std::true_type {};
