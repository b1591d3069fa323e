// SPDX-License-Identifier: Apache-2.0
//
// The few JSON-writing primitives the API's bodies are built from (no JSON library on
// the server's path): escaped strings that are always valid JSON, numbers, and the
// payload helpers of /api/dead-letters.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::http {

// Appends `s` as a JSON string literal (with quotes). Control characters are escaped,
// and bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

// Appends a JSON number; NaN and infinities (not representable in JSON) become null.
void append_json_number(std::string& out, double v);

// Appends one JSON object, member by member in call order: {"key":value,...}. Keys are
// escaped like any string.
class json_object {
public:
    explicit json_object(std::string& out) : out_(out) { out_ += '{'; }
    json_object& string(std::string_view key, std::string_view value);
    json_object& string_or_null(std::string_view key, const std::optional<std::string>& value);
    json_object& number(std::string_view key, double value);  // NaN, infinities: null
    json_object& boolean(std::string_view key, bool value);
    // Starts member `key` and returns the output, for a value the caller writes (an array).
    std::string& member(std::string_view key);
    void close() { out_ += '}'; }

private:
    std::string& out_;
    bool first_ = true;
};

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

// True when `bytes` is valid UTF-8 with no control characters other than tab, CR, LF.
bool is_printable_utf8(std::string_view bytes);

}  // namespace sluice::http
