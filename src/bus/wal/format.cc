// SPDX-License-Identifier: Apache-2.0
//
// Encoding and scanning of WAL segments (docs/wal-format.md). Pure functions over
// bytes, no I/O: recovery, readers, sluice-wal-dump and the wal_recover fuzzer use them.
#include "bus/wal/format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/assert.h"
#include "bus/wal/crc32c.h"

namespace sluice::bus::wal {
namespace {

void put_u16(std::string& out, uint16_t v) {
    char b[2] = {static_cast<char>(v & 0xFFu), static_cast<char>(v >> 8)};
    out.append(b, 2);
}
void put_u32(std::string& out, uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i)
        b[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
    out.append(b, 4);
}
void put_u64(std::string& out, uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
    out.append(b, 8);
}
uint64_t get_le(const char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}
uint16_t get_u16(const char* p) {
    return static_cast<uint16_t>(get_le(p, 2));
}
uint32_t get_u32(const char* p) {
    return static_cast<uint32_t>(get_le(p, 4));
}
uint64_t get_u64(const char* p) {
    return get_le(p, 8);
}

bool all_zero(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// Body layout check and decode; false when the lengths do not add up.
bool decode_body(std::string_view body, uint8_t type, record& out) {
    const size_t fixed = type == k_record_type_session_message ? 19 : 17;
    if (body.size() < k_min_body_size + fixed - 17) return false;
    const char* p = body.data();
    size_t left = body.size();
    out.offset = get_u64(p);
    out.msg.receive_time_ms = static_cast<int64_t>(get_u64(p + 8));
    out.msg.qos = static_cast<uint8_t>(p[16]);
    out.msg.packet_id = type == k_record_type_session_message ? get_u16(p + 17) : 0;
    p += fixed;
    left -= fixed;
    auto take = [&](size_t len_bytes, std::string& dst) {
        if (left < len_bytes) return false;
        size_t len = static_cast<size_t>(get_le(p, static_cast<int>(len_bytes)));
        p += len_bytes;
        left -= len_bytes;
        if (left < len) return false;
        dst.assign(p, len);
        p += len;
        left -= len;
        return true;
    };
    if (!take(2, out.msg.client_id) || !take(2, out.msg.topic) || !take(4, out.msg.payload)) return false;
    return left == 0 && out.msg.qos <= 2 && (type == k_record_type_message || out.msg.packet_id != 0);
}

}  // namespace

std::string segment_file_name(uint64_t base_offset) {
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(base_offset));
    return name;
}

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
    if (name.size() != 24 || name.substr(20) != ".log") return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < 20; ++i) {
        char c = name[i];
        if (c < '0' || c > '9') return std::nullopt;
        uint64_t digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
    }
    return v;
}

std::string encode_segment_header(uint32_t partition, uint64_t base_offset) {
    std::string h(k_segment_magic, 4);
    put_u16(h, k_format_version);
    put_u16(h, static_cast<uint16_t>(k_segment_header_size));
    put_u32(h, partition);
    put_u64(h, base_offset);
    put_u32(h, crc32c(h));
    SLUICE_CHECK(h.size() == k_segment_header_size, "segment header size");
    return h;
}

size_t encoded_record_size(const message& m) {
    if (m.client_id.size() > 0xFFFFu || m.topic.size() > 0xFFFFu || m.payload.size() > k_max_payload_size ||
        m.qos > 2) {
        return 0;
    }
    const size_t packet_id_bytes = m.packet_id != 0 ? 2 : 0;
    return k_record_header_size + k_min_body_size + packet_id_bytes + m.client_id.size() + m.topic.size() +
           m.payload.size();
}

void encode_record(std::string& out, uint64_t offset, const message& m) {
    size_t total = encoded_record_size(m);
    SLUICE_CHECK(total != 0, "encode_record: message too large");
    size_t start = out.size();
    out.reserve(start + total);
    put_u32(out, 0);  // CRC, filled below
    put_u32(out, static_cast<uint32_t>(total - k_record_header_size));
    out.push_back(static_cast<char>(m.packet_id != 0 ? k_record_type_session_message : k_record_type_message));
    put_u64(out, offset);
    put_u64(out, static_cast<uint64_t>(m.receive_time_ms));
    out.push_back(static_cast<char>(m.qos));
    if (m.packet_id != 0) put_u16(out, m.packet_id);
    put_u16(out, static_cast<uint16_t>(m.client_id.size()));
    out.append(m.client_id);
    put_u16(out, static_cast<uint16_t>(m.topic.size()));
    out.append(m.topic);
    put_u32(out, static_cast<uint32_t>(m.payload.size()));
    out.append(m.payload);
    SLUICE_ASSERT(out.size() - start == total, "record size mismatch");
    uint32_t crc = crc32c(out.data() + start + 4, total - 4);
    for (int i = 0; i < 4; ++i)
        out[start + static_cast<size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xFFu);
}

const char* to_string(damage d) {
    switch (d) {
        case damage::none:
            return "none";
        case damage::truncated_header:
            return "truncated record header";
        case damage::zero_filled:
            return "zero-filled tail";
        case damage::bad_length:
            return "bad record length";
        case damage::torn_record:
            return "torn record";
        case damage::bad_crc:
            return "bad CRC";
        case damage::bad_record:
            return "bad record body";
    }
    return "?";
}

const char* to_string(header_status h) {
    switch (h) {
        case header_status::ok:
            return "ok";
        case header_status::short_file:
            return "short segment header";
        case header_status::zero_filled:
            return "zero-filled segment header";
        case header_status::bad:
            return "bad segment header";
        case header_status::unsupported_version:
            return "unsupported format version";
        case header_status::wrong_base:
            return "header base offset differs from file name";
    }
    return "?";
}

damage decode_record(std::string_view bytes, uint64_t expected_offset, record& out, size_t& size) {
    if (bytes.size() < k_record_header_size)
        return all_zero(bytes) && !bytes.empty() ? damage::zero_filled : damage::truncated_header;
    const char* p = bytes.data();
    uint32_t stored_crc = get_u32(p);
    uint32_t length = get_u32(p + 4);
    if (length == 0 && stored_crc == 0 && all_zero(bytes)) return damage::zero_filled;
    if (length < k_min_body_size || length > k_max_body_size) return damage::bad_length;
    if (bytes.size() - k_record_header_size < length) return damage::torn_record;
    if (crc32c(p + 4, length + 5u) != stored_crc) return damage::bad_crc;
    const auto type = static_cast<uint8_t>(p[8]);
    if (type != k_record_type_message && type != k_record_type_session_message) return damage::bad_record;
    if (!decode_body(bytes.substr(k_record_header_size, length), type, out)) return damage::bad_record;
    if (out.offset != expected_offset) return damage::bad_record;
    size = k_record_header_size + length;
    return damage::none;
}

namespace {
// Looks for valid records at or after `from` whose offsets are plausible successors
// of r.next_offset: if one exists, damage before it is corruption in the middle, not a
// torn tail. Updates r.valid_after_damage and r.max_offset_after_damage.
void find_valid_after(std::string_view bytes, uint64_t from, scan_result& r) {
    const uint64_t lo = r.next_offset;
    const uint64_t hi =
        lo + (bytes.size() - std::min<uint64_t>(from, bytes.size())) / (k_record_header_size + k_min_body_size) + 1;
    uint64_t at = from;
    record rec;
    while (at + k_record_header_size + k_min_body_size <= bytes.size()) {
        const char* p = bytes.data() + at;
        uint32_t length = get_u32(p + 4);
        if (length >= k_min_body_size && length <= k_max_body_size &&
            bytes.size() - at - k_record_header_size >= length) {
            uint64_t off = get_u64(p + k_record_header_size);
            size_t size = 0;
            if (off >= lo && off < hi && decode_record(bytes.substr(at), off, rec, size) == damage::none) {
                r.valid_after_damage = true;
                r.max_offset_after_damage = std::max(r.max_offset_after_damage, off);
                at += size;
                continue;
            }
        }
        ++at;
    }
}
}  // namespace

scan_result scan_segment(std::string_view bytes, uint64_t expected_base,
                         const std::function<void(const record&, uint64_t pos)>& visit) {
    scan_result r;
    r.base_offset = expected_base;
    r.next_offset = expected_base;
    if (bytes.size() < k_segment_header_size) {
        r.header = all_zero(bytes) && !bytes.empty() ? header_status::zero_filled : header_status::short_file;
        return r;
    }
    const char* h = bytes.data();
    if (all_zero(bytes.substr(0, k_segment_header_size))) {
        r.header = header_status::zero_filled;
        return r;
    }
    if (std::memcmp(h, k_segment_magic, 4) != 0 || crc32c(h, 20) != get_u32(h + 20)) {
        r.header = header_status::bad;
        find_valid_after(bytes, 0, r);  // how far did the offsets go? (quarantine range)
        return r;
    }
    r.version = get_u16(h + 4);
    r.partition = get_u32(h + 8);
    if (r.version < k_oldest_readable_version || r.version > k_format_version ||
        get_u16(h + 6) != k_segment_header_size) {
        r.header = header_status::unsupported_version;
        return r;
    }
    if (get_u64(h + 12) != expected_base) {
        r.header = header_status::wrong_base;
        find_valid_after(bytes, 0, r);
        return r;
    }

    uint64_t pos = k_segment_header_size;
    record rec;
    while (pos < bytes.size()) {
        size_t size = 0;
        damage d = decode_record(bytes.substr(pos), r.next_offset, rec, size);
        if (d != damage::none) {
            r.first_damage = d;
            r.damage_pos = pos;
            break;
        }
        if (visit) visit(rec, pos);
        r.newest_time_ms = std::max(r.newest_time_ms, rec.msg.receive_time_ms);
        ++r.records;
        ++r.next_offset;
        pos += size;
    }
    r.valid_bytes = pos;
    if (r.first_damage == damage::none || r.first_damage == damage::zero_filled ||
        r.first_damage == damage::truncated_header) {
        return r;
    }
    find_valid_after(bytes, pos + 1, r);
    return r;
}

}  // namespace sluice::bus::wal
