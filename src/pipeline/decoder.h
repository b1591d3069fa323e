// SPDX-License-Identifier: Apache-2.0
//
// Payload decoders: JSON (single reading, batch, array of readings) and the compact
// binary edge format (docs/payload-formats.md). Every message that matches an ingest
// rule passes through here, so the decoder reuses its parser and buffers across calls
// and never allocates per reading. A payload that fails to decode goes to the dead
// letters with reason() as its reason, so reasons name the exact place and cause.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "pipeline/errc.h"
#include "pipeline/types.h"

namespace sluice::pipeline {

// Auto-detection: JSON when the first non-whitespace byte is '{' or '['; compact binary
// when the first byte is a binary magic byte (0xA0..0xAF, never the start of UTF-8
// text); otherwise nullopt.
std::optional<payload_format> detect_format(std::string_view payload) noexcept;

// Parses an RFC 3339 timestamp ("2024-11-21T18:05:45.123Z", "...+02:00"; 'T', 't' or
// ' ' as separator; fractional seconds truncated to ms). nullopt when malformed.
std::optional<int64_t> parse_rfc3339_ms(std::string_view text) noexcept;

// Decodes payloads. Lifecycle: one per pipeline worker thread, reused for every
// message; not thread-safe. Owns a simdjson parser and a padded copy buffer, both
// grown to the largest payload seen and then reused.
class payload_decoder {
public:
    payload_decoder();
    ~payload_decoder();
    payload_decoder(const payload_decoder&) = delete;
    payload_decoder& operator=(const payload_decoder&) = delete;

    // Decodes `payload` in format `f` into `out` (cleared first; its capacity is reused).
    // Readings without a timestamp get receive_time_ms. On success, string_views in
    // `out` point into this decoder: valid until the next decode().
    // Returns: errc::invalid_json, bad_json_shape, bad_timestamp, non_numeric_metric,
    // bad_binary, unknown_format or empty_payload, with reason() set; `out` is then
    // unspecified.
    result<void> decode(std::string_view payload, payload_format f, int64_t receive_time_ms, decoded_payload& out);

    // The specific reason of the last failed decode(), e.g. "invalid JSON at byte 17:
    // unclosed string", "binary: truncated reading 3", "metric 'x' is not a number
    // (string)". Empty after a success.
    std::string_view reason() const noexcept { return reason_; }

private:
    struct json_state;
    result<void> decode_json(std::string_view payload, int64_t receive_time_ms, decoded_payload& out);
    result<void> decode_binary(std::string_view payload, decoded_payload& out);

    std::unique_ptr<json_state> json_;
    std::string reason_;
};

}  // namespace sluice::pipeline
