// SPDX-License-Identifier: Apache-2.0
#include "http/json.h"

#include <charconv>
#include <cmath>
#include <cstdint>

#include "base/assert.h"
#include "base/utf8.h"

namespace sluice::http {
void append_json_string(std::string& out, std::string_view s) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out += '"';
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            size_t n = utf8_sequence_length(s.substr(i));
            if (n == 0) {
                out += "\\ufffd";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out += k_hex[c >> 4];
                    out += k_hex[c & 0xF];
                } else if (c == '<') {
                    out += "\\u003c";  // safe even if a page ever inlines the JSON in a <script>
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += k_alphabet[(v >> 6) & 63];
        out += k_alphabet[v & 63];
    }
    size_t rest = bytes.size() - i;
    if (rest == 1) {
        uint32_t v = u(i) << 16;
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += "==";
    } else if (rest == 2) {
        uint32_t v = (u(i) << 16) | (u(i + 1) << 8);
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += k_alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

bool is_printable_utf8(std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        auto c = static_cast<unsigned char>(bytes[i]);
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return false;
            ++i;
            continue;
        }
        size_t n = utf8_sequence_length(bytes.substr(i));
        if (n == 0) return false;
        i += n;
    }
    return true;
}

void append_json_number(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[40];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    SLUICE_CHECK(res.ec == std::errc{}, "to_chars of a double cannot overflow 40 bytes");
    out.append(buf, res.ptr);
}

std::string& json_object::member(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    append_json_string(out_, key);
    out_ += ':';
    return out_;
}

json_object& json_object::string(std::string_view key, std::string_view value) {
    append_json_string(member(key), value);
    return *this;
}

json_object& json_object::string_or_null(std::string_view key, const std::optional<std::string>& value) {
    if (value) return string(key, *value);
    member(key) += "null";
    return *this;
}

json_object& json_object::number(std::string_view key, double value) {
    append_json_number(member(key), value);
    return *this;
}

json_object& json_object::boolean(std::string_view key, bool value) {
    member(key) += value ? "true" : "false";
    return *this;
}

}  // namespace sluice::http
