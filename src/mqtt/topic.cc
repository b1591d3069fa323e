// SPDX-License-Identifier: Apache-2.0
//
// UTF-8 string and topic rules (see mqtt/topic.h); the UTF-8 check itself is base/utf8.h.
#include "mqtt/topic.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace sluice::mqtt {
namespace {

constexpr std::string_view share_prefix = "$share/";

bool valid_filter_levels(std::string_view f) {
    if (f.empty()) return false;
    size_t level_start = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        const char c = f[i];
        if (c == '/') {
            level_start = i + 1;
        } else if (c == '+') {
            // Whole level: preceded by start or '/', followed by end or '/'.
            if (i != level_start) return false;
            if (i + 1 < f.size() && f[i + 1] != '/') return false;
        } else if (c == '#') {
            // Whole level and the last character.
            if (i != level_start || i + 1 != f.size()) return false;
        }
    }
    return true;
}

}  // namespace

bool valid_utf8_string(std::string_view s) {
    return s.size() <= 65535 && check_utf8(s) == utf8_status::ok;
}

bool has_wildcard(std::string_view s) {
    // 8 bytes at a time: a byte of w equal to b leaves a zero byte in w ^ (b * 0x0101...).
    constexpr uint64_t ones = 0x0101010101010101ULL;
    constexpr uint64_t highs = 0x8080808080808080ULL;
    auto has_zero_byte = [](uint64_t x) { return ((x - ones) & ~x & highs) != 0; };
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        if (has_zero_byte(w ^ (ones * '+')) || has_zero_byte(w ^ (ones * '#'))) return true;
    }
    for (; i < s.size(); ++i) {
        if (s[i] == '+' || s[i] == '#') return true;
    }
    return false;
}

bool valid_topic_name(std::string_view t) {
    return !t.empty() && valid_utf8_string(t) && !has_wildcard(t);
}

std::optional<shared_filter> parse_shared(std::string_view f) {
    if (f.substr(0, share_prefix.size()) != share_prefix) return std::nullopt;
    const std::string_view rest = f.substr(share_prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return std::nullopt;
    const std::string_view group = rest.substr(0, slash);
    if (has_wildcard(group)) return std::nullopt;
    const std::string_view filter = rest.substr(slash + 1);
    if (!valid_filter_levels(filter)) return std::nullopt;
    return shared_filter{group, filter};
}

bool valid_topic_filter(std::string_view f) {
    if (f.empty() || !valid_utf8_string(f)) return false;
    if (f.substr(0, share_prefix.size()) == share_prefix) return parse_shared(f).has_value();
    return valid_filter_levels(f);
}

bool topic_matches(std::string_view filter, std::string_view topic) {
    if (auto shared = parse_shared(filter)) filter = shared->filter;
    if (filter.empty() || topic.empty()) return false;
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
    size_t fi = 0;
    size_t ti = 0;
    while (true) {
        const size_t f_end = std::min(filter.find('/', fi), filter.size());
        const std::string_view f_level = filter.substr(fi, f_end - fi);
        if (f_level == "#") return true;  // matches this level (even absent parent's children)
        const size_t t_end = std::min(topic.find('/', ti), topic.size());
        const std::string_view t_level = topic.substr(ti, t_end - ti);
        if (f_level != "+" && f_level != t_level) return false;
        const bool f_last = f_end == filter.size();
        const bool t_last = t_end == topic.size();
        if (f_last && t_last) return true;
        if (t_last) {
            // "a/#" matches "a": the remaining filter must be exactly "/#".
            return filter.substr(f_end) == "/#";
        }
        if (f_last) return false;
        fi = f_end + 1;
        ti = t_end + 1;
    }
}

}  // namespace sluice::mqtt
