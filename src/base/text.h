// SPDX-License-Identifier: Apache-2.0
//
// ASCII text helpers for the protocol parsers (HTTP heads, WebSocket upgrades): header
// names compare case-insensitively, values lose optional white space (RFC 9110 5.6.3).
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace sluice {

inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// Without leading and trailing spaces and tabs.
inline std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

}  // namespace sluice
