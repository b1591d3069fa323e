// SPDX-License-Identifier: Apache-2.0
//
// Names of files numbered in sequence, as the WAL's segments (`<base offset>.log`) and
// the state store's journals (`journal-<generation>.log`) are: a prefix, the number as 20
// zero-padded decimal digits (every uint64_t fits, and names sort as the numbers do), a
// suffix. One parser, so that what counts as such a name cannot differ between formats.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::bus {

std::string numbered_file_name(std::string_view prefix, uint64_t number, std::string_view suffix);

// The number in `name`, or nullopt when it is not exactly prefix + 20 digits + suffix or
// the digits exceed uint64_t.
std::optional<uint64_t> parse_numbered_file_name(std::string_view name, std::string_view prefix,
                                                 std::string_view suffix);

}  // namespace sluice::bus
