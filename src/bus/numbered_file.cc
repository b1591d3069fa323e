// SPDX-License-Identifier: Apache-2.0
#include "bus/numbered_file.h"

#include <cstdio>

namespace sluice::bus {
namespace {

constexpr size_t k_digits = 20;  // UINT64_MAX has 20 decimal digits

}  // namespace

std::string numbered_file_name(std::string_view prefix, uint64_t number, std::string_view suffix) {
    char digits[k_digits + 1];
    std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(number));
    std::string name;
    name.reserve(prefix.size() + k_digits + suffix.size());
    name.append(prefix).append(digits, k_digits).append(suffix);
    return name;
}

std::optional<uint64_t> parse_numbered_file_name(std::string_view name, std::string_view prefix,
                                                 std::string_view suffix) {
    if (name.size() != prefix.size() + k_digits + suffix.size() || !name.starts_with(prefix) ||
        !name.ends_with(suffix)) {
        return std::nullopt;
    }
    uint64_t v = 0;
    for (char c : name.substr(prefix.size(), k_digits)) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
    }
    return v;
}

}  // namespace sluice::bus
