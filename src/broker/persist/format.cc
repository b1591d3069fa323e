// SPDX-License-Identifier: Apache-2.0
//
// Encoding, decoding and scanning of the state store's files (see format.h and
// docs/decisions/0002-session-persistence.md).
#include "broker/persist/format.h"

#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/endian.h"
#include "bus/numbered_file.h"
#include "bus/wal/crc32c.h"

namespace sluice::broker::persist::format {
namespace {

constexpr bus::framing::layout k_layout{k_record_header_size, k_min_body_size, k_max_body_size};

}  // namespace

std::string journal_file_name(uint64_t generation) {
    return bus::numbered_file_name("journal-", generation, ".log");
}

std::optional<uint64_t> parse_journal_file_name(std::string_view name) {
    return bus::parse_numbered_file_name(name, "journal-", ".log");
}

std::string encode_file_header(file_type type, uint64_t generation) {
    std::string out;
    out.reserve(k_file_header_size);
    out.append(type == file_type::journal ? k_journal_magic : k_snapshot_magic, 4);
    append_le16(out, k_format_version);
    append_le16(out, 0);
    append_le64(out, generation);
    append_le32(out, bus::wal::crc32c(out));
    return out;
}

const char* to_string(header_status h) {
    switch (h) {
        case header_status::ok:
            return "ok";
        case header_status::short_file:
            return "short file";
        case header_status::zero_filled:
            return "zero-filled header";
        case header_status::bad:
            return "bad magic or header CRC";
        case header_status::unsupported_version:
            return "unsupported format version";
    }
    return "?";
}

header_status decode_file_header(std::string_view bytes, file_type type, uint64_t& generation) {
    if (bytes.size() < k_file_header_size) {
        return bus::framing::all_zero(bytes) ? header_status::zero_filled : header_status::short_file;
    }
    const std::string_view header = bytes.substr(0, k_file_header_size);
    if (bus::framing::all_zero(header)) return header_status::zero_filled;
    const char* magic = type == file_type::journal ? k_journal_magic : k_snapshot_magic;
    if (std::memcmp(header.data(), magic, 4) != 0) return header_status::bad;
    if (bus::wal::crc32c(header.data(), 16) != load_le32(header.data() + 16)) return header_status::bad;
    if (load_le16(header.data() + 4) != k_format_version || load_le16(header.data() + 6) != 0) {
        return header_status::unsupported_version;
    }
    generation = load_le64(header.data() + 8);
    return header_status::ok;
}

size_t encoded_record_size(std::string_view key, std::string_view value) {
    return k_record_header_size + k_min_body_size + key.size() + value.size();
}

void encode_record(std::string& out, op o, uint8_t kind, std::string_view key, std::string_view value) {
    const size_t body = k_min_body_size + key.size() + value.size();
    SLUICE_CHECK(body <= k_max_body_size, "state store record of %zu bytes is too large", body);
    SLUICE_CHECK((kind != 0) == (o != op::snapshot_end), "record kind %u invalid for op %u", kind,
                 static_cast<unsigned>(o));
    SLUICE_CHECK(value.empty() || o == op::put || o == op::snapshot_end, "erase records carry no value");
    const size_t start = bus::framing::begin_record(out, static_cast<uint32_t>(body));
    out.push_back(static_cast<char>(o));
    out.push_back(static_cast<char>(kind));
    append_le32(out, static_cast<uint32_t>(key.size()));
    out.append(key);
    out.append(value);
    bus::framing::seal_record(out, start);
}

damage decode_record(std::string_view bytes, record_view& out, size_t& size) {
    bus::framing::frame f;
    const damage d = bus::framing::check_frame(bytes, k_layout, f);
    if (d != damage::none) return d;
    const char* body = f.body.data();
    const auto length = static_cast<uint32_t>(f.body.size());
    const auto o = static_cast<uint8_t>(body[0]);
    const auto kind = static_cast<uint8_t>(body[1]);
    const uint32_t key_length = load_le32(body + 2);
    if (key_length > length - k_min_body_size) return damage::bad_record;
    const std::string_view key(body + k_min_body_size, key_length);
    const std::string_view value(body + k_min_body_size + key_length, length - k_min_body_size - key_length);
    switch (static_cast<op>(o)) {
        case op::put:
            if (kind == 0) return damage::bad_record;
            break;
        case op::erase:
        case op::erase_prefix:
            if (kind == 0 || !value.empty()) return damage::bad_record;
            break;
        case op::snapshot_end:
            if (kind != 0 || !key.empty() || value.size() != 8) return damage::bad_record;
            break;
        default:
            return damage::bad_record;
    }
    out.o = static_cast<op>(o);
    out.kind = kind;
    out.key = key;
    out.value = value;
    size = f.size;
    return damage::none;
}

scan_result scan(std::string_view records, const std::function<void(const record_view&)>& visit,
                 uint64_t search_budget) {
    scan_result r;
    const bus::framing::walk_result walked = bus::framing::walk(records, 0, [&](uint64_t pos, size_t& size) {
        record_view rec;
        const damage d = decode_record(records.substr(pos), rec, size);
        if (d == damage::none && visit) visit(rec);
        return d;
    });
    r.valid_bytes = walked.end;
    r.records = walked.records;
    r.first_damage = walked.first_damage;
    if (r.first_damage != damage::none) r.damage_pos = walked.end;
    if (!bus::framing::may_precede_valid_records(r.first_damage)) return r;
    // Any decodable record after the damage means bytes that were once durable follow it.
    // Cheap header checks first, then the CRC, within a budget so a large damaged journal
    // cannot stall start-up: past it, assume the worst.
    uint64_t crc_bytes = 0;
    bus::framing::search(records, walked.end + 1, k_layout, [&](uint64_t q, uint32_t length) -> size_t {
        const char* h = records.data() + q;
        const auto o = static_cast<uint8_t>(h[8]);
        const auto kind = static_cast<uint8_t>(h[9]);
        if (o < 1 || o > 4 || (kind == 0) != (o == static_cast<uint8_t>(op::snapshot_end)) ||
            load_le32(h + 10) > length - k_min_body_size) {
            return 0;
        }
        crc_bytes += length;
        if (crc_bytes > search_budget) {
            r.valid_after_damage = true;
            r.search_exhausted = true;
            return bus::framing::k_stop;
        }
        record_view rec;
        size_t size = 0;
        if (decode_record(records.substr(q), rec, size) != damage::none) return 0;
        r.valid_after_damage = true;
        return bus::framing::k_stop;
    });
    return r;
}

}  // namespace sluice::broker::persist::format
