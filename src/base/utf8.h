// SPDX-License-Identifier: Apache-2.0
//
// UTF-8 well-formedness (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF) in one place, and the two policies built on it that differ on purpose:
// check_utf8 is MQTT's rule for strings (spec 5.0 §1.5.4: U+0000 is a distinct error),
// repair_utf8 makes any bytes storable as PostgreSQL text (which cannot hold U+0000).
// JSON output escapes U+0000 instead, so it uses utf8_sequence_length directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

// Length (1 to 4) of the well-formed UTF-8 sequence at the start of `s`, or 0 when the
// bytes there are not one. U+0000 is well-formed (length 1). REQUIRES: !s.empty().
inline size_t utf8_sequence_length(std::string_view s) {
    const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;  // continuation byte or F8..FF
    }
    if (s.size() < n) return 0;
    for (size_t i = 1; i < n; ++i) {
        if ((b(i) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i) & 0x3Fu);
    }
    static constexpr uint32_t k_min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < k_min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

// Outcome of check_utf8: the first failure in `s` decides between the two errors.
enum class utf8_status : uint8_t { ok, malformed, null_character };

// Well-formed and free of U+0000 (MQTT's UTF-8 string rule, without its length limit).
// Has an ASCII fast path: it runs on every topic and string the MQTT decoder sees.
utf8_status check_utf8(std::string_view s);

// `in` with each U+0000 and each byte that does not start a well-formed sequence
// replaced by U+FFFD.
std::string repair_utf8(std::string_view in);

}  // namespace sluice
