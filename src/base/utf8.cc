// SPDX-License-Identifier: Apache-2.0
//
// The UTF-8 policies of base/utf8.h over utf8_sequence_length.
#include "base/utf8.h"

#include <cstring>

namespace sluice {

utf8_status check_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        // ASCII fast path, 8 bytes at a time: no high bit and no zero byte.
        while (i + 8 <= n) {
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            const bool high = (w & 0x8080808080808080ULL) != 0;
            const bool zero = ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0;
            if (high || zero) break;
            i += 8;
        }
        if (i >= n) break;
        const unsigned char c = p[i];
        if (c == 0) return utf8_status::null_character;
        if (c < 0x80) {
            ++i;
            continue;
        }
        const size_t len = utf8_sequence_length(s.substr(i));
        if (len == 0) return utf8_status::malformed;
        i += len;
    }
    return utf8_status::ok;
}

std::string repair_utf8(std::string_view in) {
    static constexpr char k_replacement[] = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(in.size());
    size_t i = 0;
    while (i < in.size()) {
        const size_t len = in[i] == 0 ? 0 : utf8_sequence_length(in.substr(i));
        if (len == 0) {
            out.append(k_replacement);
            i += 1;
        } else {
            out.append(in.substr(i, len));
            i += len;
        }
    }
    return out;
}

}  // namespace sluice
