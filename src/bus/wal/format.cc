// SPDX-License-Identifier: Apache-2.0
//
// Encoding and scanning of WAL segments (docs/wal-format.md). Pure functions over
// bytes, no I/O: recovery, readers, sluice-wal-dump and the wal_recover fuzzer use them.
#include "bus/wal/format.h"

#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/endian.h"
#include "bus/numbered_file.h"
#include "bus/wal/crc32c.h"

namespace sluice::bus::wal {
namespace {

constexpr framing::layout k_layout{k_record_header_size, k_min_body_size, k_max_body_size};

// Body layout check and decode; false when the lengths do not add up.
bool decode_body(std::string_view body, uint8_t type, record& out) {
    const size_t fixed = type == k_record_type_session_message ? 19 : 17;
    if (body.size() < k_min_body_size + fixed - 17) return false;
    const char* p = body.data();
    size_t left = body.size();
    out.offset = load_le64(p);
    out.msg.receive_time_ms = static_cast<int64_t>(load_le64(p + 8));
    out.msg.qos = static_cast<uint8_t>(p[16]);
    out.msg.packet_id = type == k_record_type_session_message ? load_le16(p + 17) : 0;
    p += fixed;
    left -= fixed;
    auto take = [&](size_t len_bytes, std::string& dst) {
        if (left < len_bytes) return false;
        const size_t len = len_bytes == 2 ? load_le16(p) : load_le32(p);
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
    return numbered_file_name("", base_offset, ".log");
}

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
    return parse_numbered_file_name(name, "", ".log");
}

std::string encode_segment_header(uint32_t partition, uint64_t base_offset) {
    std::string h(k_segment_magic, 4);
    append_le16(h, k_format_version);
    append_le16(h, static_cast<uint16_t>(k_segment_header_size));
    append_le32(h, partition);
    append_le64(h, base_offset);
    append_le32(h, crc32c(h));
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
    const size_t total = encoded_record_size(m);
    SLUICE_CHECK(total != 0, "encode_record: message too large");
    out.reserve(out.size() + total);
    const size_t start = framing::begin_record(out, static_cast<uint32_t>(total - k_record_header_size));
    out.push_back(static_cast<char>(m.packet_id != 0 ? k_record_type_session_message : k_record_type_message));
    append_le64(out, offset);
    append_le64(out, static_cast<uint64_t>(m.receive_time_ms));
    out.push_back(static_cast<char>(m.qos));
    if (m.packet_id != 0) append_le16(out, m.packet_id);
    append_le16(out, static_cast<uint16_t>(m.client_id.size()));
    out.append(m.client_id);
    append_le16(out, static_cast<uint16_t>(m.topic.size()));
    out.append(m.topic);
    append_le32(out, static_cast<uint32_t>(m.payload.size()));
    out.append(m.payload);
    SLUICE_ASSERT(out.size() - start == total, "record size mismatch");
    framing::seal_record(out, start);
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
    framing::frame f;
    const damage d = framing::check_frame(bytes, k_layout, f);
    if (d != damage::none) return d;
    const auto type = static_cast<uint8_t>(f.header[8]);
    if (type != k_record_type_message && type != k_record_type_session_message) return damage::bad_record;
    if (!decode_body(f.body, type, out)) return damage::bad_record;
    if (out.offset != expected_offset) return damage::bad_record;
    size = f.size;
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
    record rec;
    framing::search(bytes, from, k_layout, [&](uint64_t at, uint32_t) -> size_t {
        const uint64_t off = load_le64(bytes.data() + at + k_record_header_size);
        size_t size = 0;
        if (off < lo || off >= hi || decode_record(bytes.substr(at), off, rec, size) != damage::none) return 0;
        r.valid_after_damage = true;
        r.max_offset_after_damage = std::max(r.max_offset_after_damage, off);
        return size;
    });
}
}  // namespace

scan_result scan_segment(std::string_view bytes, uint64_t expected_base,
                         const std::function<void(const record&, uint64_t pos)>& visit) {
    scan_result r;
    r.base_offset = expected_base;
    r.next_offset = expected_base;
    if (bytes.size() < k_segment_header_size) {
        r.header = framing::all_zero(bytes) && !bytes.empty() ? header_status::zero_filled : header_status::short_file;
        return r;
    }
    const char* h = bytes.data();
    if (framing::all_zero(bytes.substr(0, k_segment_header_size))) {
        r.header = header_status::zero_filled;
        return r;
    }
    if (std::memcmp(h, k_segment_magic, 4) != 0 || crc32c(h, 20) != load_le32(h + 20)) {
        r.header = header_status::bad;
        find_valid_after(bytes, 0, r);  // how far did the offsets go? (quarantine range)
        return r;
    }
    r.version = load_le16(h + 4);
    r.partition = load_le32(h + 8);
    if (r.version < k_oldest_readable_version || r.version > k_format_version ||
        load_le16(h + 6) != k_segment_header_size) {
        r.header = header_status::unsupported_version;
        return r;
    }
    if (load_le64(h + 12) != expected_base) {
        r.header = header_status::wrong_base;
        find_valid_after(bytes, 0, r);
        return r;
    }

    record rec;
    const framing::walk_result walked = framing::walk(bytes, k_segment_header_size, [&](uint64_t pos, size_t& size) {
        const damage d = decode_record(bytes.substr(pos), r.next_offset, rec, size);
        if (d != damage::none) return d;
        if (visit) visit(rec, pos);
        r.newest_time_ms = std::max(r.newest_time_ms, rec.msg.receive_time_ms);
        ++r.next_offset;
        return damage::none;
    });
    r.records = walked.records;
    r.valid_bytes = walked.end;
    r.first_damage = walked.first_damage;
    if (r.first_damage != damage::none) r.damage_pos = walked.end;
    if (!framing::may_precede_valid_records(r.first_damage)) return r;
    find_valid_after(bytes, walked.end + 1, r);
    return r;
}

}  // namespace sluice::bus::wal
