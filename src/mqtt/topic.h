// SPDX-License-Identifier: Apache-2.0
//
// String and topic rules of MQTT (spec 5.0 §1.5.4 UTF-8 strings, §4.7 topic names and filters,
// §4.8.2 shared subscriptions). The decoder uses them on every packet; the broker uses them
// for its own checks and topic_matches() is the reference the subscription index is tested
// against. Pure functions, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/utf8.h"

namespace sluice::mqtt {

// Well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF), no U+0000, <= 65535 bytes.
bool valid_utf8_string(std::string_view s);
// (sluice::check_utf8 in base/utf8.h tells its two failures apart, for the decoder.)

// Does s contain '+' or '#'? (Faster than find_first_of, which calls memchr per byte.)
bool has_wildcard(std::string_view s);

// Topic name: valid UTF-8 string, non-empty, no '+' or '#'.
bool valid_topic_name(std::string_view t);

// Topic filter: valid UTF-8 string, non-empty; '+' occupies a whole level; '#' is a whole level
// and the last one. "$share/{group}/{filter}" needs a non-empty group without '+', '#', '/'
// and a valid non-empty filter.
bool valid_topic_filter(std::string_view f);

struct shared_filter {
    std::string_view group;
    std::string_view filter;
};
// "$share/g/a/b" -> {"g", "a/b"}; std::nullopt when f is not a well-formed shared filter.
std::optional<shared_filter> parse_shared(std::string_view f);

// The level of `text` (a topic name or plain filter) that starts at `pos`; sets `next` to
// the start of the following level, or std::string_view::npos after the last one. The one
// level walker of the subscription index and the retained store.
constexpr std::string_view topic_level(std::string_view text, size_t pos, size_t& next) noexcept {
    const size_t slash = text.find('/', pos);
    if (slash == std::string_view::npos) {
        next = std::string_view::npos;
        return text.substr(pos);
    }
    next = slash + 1;
    return text.substr(pos, slash - pos);
}

// Does `topic` match `filter`? '+' matches one level, '#' the parent level and every child;
// topics starting with '$' are not matched by a filter starting with a wildcard (§4.7.2).
// A shared filter matches as its inner filter. REQUIRES: valid filter and topic name.
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace sluice::mqtt
