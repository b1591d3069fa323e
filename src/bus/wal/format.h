// SPDX-License-Identifier: Apache-2.0
//
// The WAL's on-disk format: segment header, record layout, file names, and the scan
// that recovery, readers, sluice-wal-dump and the fuzzer share; the record framing and
// its damage classification are bus/framing.h. The format is specified byte by byte in
// docs/wal-format.md; this file, format.cc, bus/framing.* and that document must change
// together, and every released version keeps a golden file in tests/golden/wal/.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "bus/bus.h"
#include "bus/framing.h"

namespace sluice::bus::wal {

inline constexpr char k_segment_magic[4] = {'S', 'L', 'W', 'L'};
// Version 2 added record type 2; segments of version 1 (type 1 only) stay readable.
inline constexpr uint16_t k_format_version = 2;
inline constexpr uint16_t k_oldest_readable_version = 1;
inline constexpr size_t k_segment_header_size = 24;
inline constexpr size_t k_record_header_size = 9;  // crc32c u32, length u32, type u8
inline constexpr uint8_t k_record_type_message = 1;
// A message with the publisher's packet id (bus::message::packet_id != 0), version 2.
inline constexpr uint8_t k_record_type_session_message = 2;
// offset u64, receive_time_ms i64, qos u8, [type 2: packet_id u16,] client_id u16+bytes,
// topic u16+bytes, payload u32+bytes
inline constexpr size_t k_min_body_size = 8 + 8 + 1 + 2 + 2 + 4;
inline constexpr size_t k_max_payload_size = 16u << 20;
inline constexpr size_t k_max_body_size = k_min_body_size + 2 + 2 * size_t{0xFFFF} + k_max_payload_size;

// "00000000000000000042.log" for base offset 42.
std::string segment_file_name(uint64_t base_offset);
// The base offset of a segment file name, or nullopt if `name` is not one.
std::optional<uint64_t> parse_segment_file_name(std::string_view name);

std::string encode_segment_header(uint32_t partition, uint64_t base_offset);
// Size of the framed record for `m`, or 0 when `m` cannot be stored (field too long).
size_t encoded_record_size(const message& m);
// Appends the framed record. REQUIRES: encoded_record_size(m) != 0.
void encode_record(std::string& out, uint64_t offset, const message& m);

enum class header_status {
    ok,
    short_file,           // fewer than k_segment_header_size bytes
    zero_filled,          // header bytes are all zero (created, never synced)
    bad,                  // wrong magic or CRC
    unsupported_version,  // intact header of a format this build cannot read
    wrong_base,           // base offset differs from the file name
};

// Why the record at some position is not a valid next record (bus/framing.h). Each is a
// distinct case in recovery (docs/wal-format.md "Recovery"); bad_record: the type, body
// layout or offset is wrong.
using damage = framing::damage;
using framing::to_string;
const char* to_string(header_status h);

// Decodes the record at the start of `bytes`, which must have offset `expected_offset`.
// On success fills `out` and `size` (framed size) and returns damage::none.
damage decode_record(std::string_view bytes, uint64_t expected_offset, record& out, size_t& size);

struct scan_result {
    header_status header = header_status::ok;
    uint16_t version = 0;
    uint32_t partition = 0;
    uint64_t base_offset = 0;
    uint64_t valid_bytes = 0;    // end of the last valid record (0 when the header is bad)
    uint64_t next_offset = 0;    // offset after the last valid record
    uint64_t records = 0;        // valid records before any damage
    int64_t newest_time_ms = 0;  // max receive time among them
    damage first_damage = damage::none;
    uint64_t damage_pos = 0;          // file position of the first damage
    bool valid_after_damage = false;  // a valid later record exists: mid-segment corruption
    uint64_t max_offset_after_damage = 0;
};

// Scans a whole segment image. `expected_base` is the base from the file name.
// `visit` (optional) sees each valid record before the first damage, with its position.
scan_result scan_segment(std::string_view bytes, uint64_t expected_base,
                         const std::function<void(const record&, uint64_t pos)>& visit = {});

}  // namespace sluice::bus::wal
