// SPDX-License-Identifier: Apache-2.0
//
// The record framing that the WAL (docs/wal-format.md) and the broker's state store
// (docs/decisions/0002-session-persistence.md) share, and its damage classification:
// crc32c u32, body length u32 (both little-endian), the format's own header bytes, then
// the body; the CRC covers everything after itself. One place decides what a torn tail
// is (nothing valid follows the damage: safe to cut) as opposed to corruption in the
// middle (a valid record follows: data that was durable would be lost). Each format
// keeps its own file header, version, body rules and log wording.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/endian.h"

namespace sluice::bus::framing {

inline constexpr size_t k_prefix_size = 8;  // crc32c u32, length u32

struct layout {
    size_t header_size = k_prefix_size;  // k_prefix_size plus the format's own header bytes
    size_t min_body = 0;
    size_t max_body = 0;
};

// Why the bytes at some position are not a valid next record.
enum class damage {
    none,
    truncated_header,  // fewer than header_size bytes left
    zero_filled,       // every byte from here to the end is zero
    bad_length,        // length outside [min_body, max_body]
    torn_record,       // the record extends past the end of the input
    bad_crc,           // complete record whose CRC does not match
    bad_record,        // CRC matches but the format rejects the header bytes or body
};

// The names in docs/wal-format.md "Recovery".
const char* to_string(damage d);

bool all_zero(std::string_view bytes);

// A record whose framing checked out: views into the input.
struct frame {
    std::string_view header;  // header_size bytes; the format's own start at k_prefix_size
    std::string_view body;
    size_t size = 0;  // header_size + body.size()
};

// Checks the framing of the record at the start of `bytes` and, on damage::none, fills
// `out`. Never returns bad_record: judging the body is the format's job.
damage check_frame(std::string_view bytes, const layout& l, frame& out);

// Zero-filled and truncated-header damage run to the end of the input: no record can
// follow them, so there is nothing to search for.
inline bool may_precede_valid_records(damage d) {
    return d != damage::none && d != damage::zero_filled && d != damage::truncated_header;
}

// Appends the prefix of a record whose body (with the format's own header bytes) will be
// `body_size` bytes, CRC left open; returns where the record starts. The caller appends the
// format's header bytes and the body, then calls seal_record.
inline size_t begin_record(std::string& out, uint32_t body_size) {
    const size_t start = out.size();
    append_le32(out, 0);
    append_le32(out, body_size);
    return start;
}
// Fills in the CRC of the record from `start` to the end of `out`.
void seal_record(std::string& out, size_t start);

struct walk_result {
    uint64_t end = 0;      // position after the last valid record: where any damage is
    uint64_t records = 0;  // valid records walked
    damage first_damage = damage::none;
};

// Walks consecutive records from `from`: `decode(pos, size)` judges the record at `pos`,
// returning damage::none and its framed size, or the damage that ends the walk.
template <typename Decode>
walk_result walk(std::string_view bytes, uint64_t from, Decode&& decode) {
    walk_result r;
    r.end = from;
    while (r.end < bytes.size()) {
        size_t size = 0;
        const damage d = decode(r.end, size);
        if (d != damage::none) {
            r.first_damage = d;
            break;
        }
        ++r.records;
        r.end += size;
    }
    return r;
}

// What search()'s callback returns to stop.
inline constexpr size_t k_stop = SIZE_MAX;

// The search for valid records after damage: offers `try_at(pos, length)` each position
// at or after `from`, in order, where a record of `l` could start (length in range, body
// inside `bytes`). try_at returns the framed size of a valid record at pos to go on after
// it, 0 to go on at the next byte, or k_stop.
template <typename TryAt>
void search(std::string_view bytes, uint64_t from, const layout& l, TryAt&& try_at) {
    uint64_t at = from;
    while (at + l.header_size + l.min_body <= bytes.size()) {
        const uint32_t length = load_le32(bytes.data() + at + 4);
        size_t step = 0;
        if (length >= l.min_body && length <= l.max_body && bytes.size() - at - l.header_size >= length) {
            step = try_at(at, length);
            if (step == k_stop) return;
        }
        at += step != 0 ? step : 1;
    }
}

}  // namespace sluice::bus::framing
