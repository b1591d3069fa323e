// SPDX-License-Identifier: Apache-2.0
//
// The state store's on-disk format: file header and record layout shared by the journal
// and the snapshot, file names, and the scan that recovery and the tests use; the record
// framing and its damage classification are bus/framing.h, shared with the WAL. Specified
// byte by byte in docs/decisions/0002-session-persistence.md; this file, format.cc,
// bus/framing.* and that document must change together. Everything is little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "bus/framing.h"

namespace sluice::broker::persist::format {

inline constexpr char k_journal_magic[4] = {'S', 'L', 'S', 'J'};
inline constexpr char k_snapshot_magic[4] = {'S', 'L', 'S', 'S'};
inline constexpr uint16_t k_format_version = 1;
// magic[4], version u16, flags u16 (0), generation u64, crc32c u32 of the first 16 bytes.
inline constexpr size_t k_file_header_size = 20;
// crc32c u32 (of length + body), length u32 (of body).
inline constexpr size_t k_record_header_size = 8;
// Body: op u8, kind u8, key_length u32, key, value (the rest).
inline constexpr size_t k_min_body_size = 6;
// A value is at most one MQTT message (256 MiB) plus its topic and properties.
inline constexpr size_t k_max_body_size = 320u << 20;

inline constexpr const char* k_snapshot_name = "state.snapshot";
inline constexpr const char* k_snapshot_temp_name = "state.snapshot.tmp";

enum class op : uint8_t {
    put = 1,           // key := value
    erase = 2,         // remove key (value empty)
    erase_prefix = 3,  // remove every key of `kind` starting with `key` (value empty)
    snapshot_end = 4,  // last record of a snapshot: kind 0, empty key, value = u64 record count
};

enum class file_type : uint8_t { journal, snapshot };

// "journal-00000000000000000007.log" for generation 7.
std::string journal_file_name(uint64_t generation);
// The generation of a journal file name, or nullopt if `name` is not one.
std::optional<uint64_t> parse_journal_file_name(std::string_view name);

std::string encode_file_header(file_type type, uint64_t generation);

enum class header_status {
    ok,
    short_file,           // fewer than k_file_header_size bytes
    zero_filled,          // header bytes all zero (created, never synced)
    bad,                  // wrong magic (for `type`) or CRC
    unsupported_version,  // intact header of a format this build cannot read
};
const char* to_string(header_status h);
header_status decode_file_header(std::string_view bytes, file_type type, uint64_t& generation);

// Framed size of a record with this key and value.
size_t encoded_record_size(std::string_view key, std::string_view value);
// Appends one framed record. REQUIRES: the body fits k_max_body_size and the rules of
// `o` (kind != 0 except for snapshot_end, empty value for the erase ops).
void encode_record(std::string& out, op o, uint8_t kind, std::string_view key, std::string_view value);

struct record_view {
    op o = op::put;
    uint8_t kind = 0;
    std::string_view key;
    std::string_view value;
};

// Why the bytes at some position are not a valid record (bus/framing.h); bad_record: the
// CRC matches but the op, kind, key length or value breaks the rules.
using damage = bus::framing::damage;
using bus::framing::to_string;

// Decodes the record at the start of `bytes`. On damage::none fills `out` (views into
// `bytes`) and `size` (framed size).
damage decode_record(std::string_view bytes, record_view& out, size_t& size);

struct scan_result {
    uint64_t valid_bytes = 0;  // bytes of `records` before the first damage (or all)
    uint64_t records = 0;      // valid records before any damage
    damage first_damage = damage::none;
    uint64_t damage_pos = 0;          // position in `records` of the first damage
    bool valid_after_damage = false;  // a valid record starts after the damage: not a torn tail
    bool search_exhausted = false;    // valid_after_damage assumed: the search hit its budget
};

// Most bytes the search after damage checksums before assuming a valid record follows.
inline constexpr uint64_t k_search_budget = 1ull << 30;

// Walks the records in `records` (a file's bytes after its header), calling `visit` for
// each valid one until the first damage. When there is damage, looks for any valid record
// after it, to tell a torn tail (nothing valid follows) from corruption in the middle.
scan_result scan(std::string_view records, const std::function<void(const record_view&)>& visit,
                 uint64_t search_budget = k_search_budget);

}  // namespace sluice::broker::persist::format
