// SPDX-License-Identifier: Apache-2.0
//
// Encoding, decoding and scanning of the state store's files (see format.h and
// docs/decisions/0002-session-persistence.md).
#include "broker/persist/format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/assert.h"
#include "bus/wal/crc32c.h"

namespace sluice::broker::persist::format {
namespace {

void put_u16(std::string& out, uint16_t v) {
    out.push_back(static_cast<char>(v & 0xFFu));
    out.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
void put_u64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
uint16_t get_u16(const char* p) {
    return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}
uint32_t get_u32(const char* p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i)
        v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
}
uint64_t get_u64(const char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
}
bool all_zero(std::string_view bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

}  // namespace

std::string journal_file_name(uint64_t generation) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "journal-%020llu.log", static_cast<unsigned long long>(generation));
    return buf;
}

std::optional<uint64_t> parse_journal_file_name(std::string_view name) {
    constexpr std::string_view prefix = "journal-";
    constexpr std::string_view suffix = ".log";
    if (name.size() != prefix.size() + 20 + suffix.size()) return std::nullopt;
    if (name.substr(0, prefix.size()) != prefix || name.substr(name.size() - suffix.size()) != suffix) {
        return std::nullopt;
    }
    uint64_t v = 0;
    for (char c : name.substr(prefix.size(), 20)) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
    }
    return v;
}

std::string encode_file_header(file_type type, uint64_t generation) {
    std::string out;
    out.reserve(k_file_header_size);
    out.append(type == file_type::journal ? k_journal_magic : k_snapshot_magic, 4);
    put_u16(out, k_format_version);
    put_u16(out, 0);
    put_u64(out, generation);
    put_u32(out, bus::wal::crc32c(out));
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
        return all_zero(bytes) ? header_status::zero_filled : header_status::short_file;
    }
    const std::string_view header = bytes.substr(0, k_file_header_size);
    if (all_zero(header)) return header_status::zero_filled;
    const char* magic = type == file_type::journal ? k_journal_magic : k_snapshot_magic;
    if (std::memcmp(header.data(), magic, 4) != 0) return header_status::bad;
    if (bus::wal::crc32c(header.data(), 16) != get_u32(header.data() + 16)) return header_status::bad;
    if (get_u16(header.data() + 4) != k_format_version || get_u16(header.data() + 6) != 0) {
        return header_status::unsupported_version;
    }
    generation = get_u64(header.data() + 8);
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
    const size_t start = out.size();
    put_u32(out, 0);  // crc, patched below
    put_u32(out, static_cast<uint32_t>(body));
    out.push_back(static_cast<char>(o));
    out.push_back(static_cast<char>(kind));
    put_u32(out, static_cast<uint32_t>(key.size()));
    out.append(key);
    out.append(value);
    const uint32_t crc = bus::wal::crc32c(out.data() + start + 4, out.size() - start - 4);
    for (size_t i = 0; i < 4; ++i)
        out[start + i] = static_cast<char>((crc >> (8 * i)) & 0xFFu);
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
            return "record extends past the end";
        case damage::bad_crc:
            return "record CRC mismatch";
        case damage::bad_record:
            return "malformed record";
    }
    return "?";
}

damage decode_record(std::string_view bytes, record_view& out, size_t& size) {
    if (bytes.size() < k_record_header_size) {
        return all_zero(bytes) && !bytes.empty() ? damage::zero_filled : damage::truncated_header;
    }
    const uint32_t length = get_u32(bytes.data() + 4);
    if (length == 0 && all_zero(bytes)) return damage::zero_filled;
    if (length < k_min_body_size || length > k_max_body_size) return damage::bad_length;
    if (bytes.size() - k_record_header_size < length) {
        return all_zero(bytes) ? damage::zero_filled : damage::torn_record;
    }
    const char* body = bytes.data() + k_record_header_size;
    if (bus::wal::crc32c(bytes.data() + 4, 4 + size_t{length}) != get_u32(bytes.data())) {
        return damage::bad_crc;
    }
    const auto o = static_cast<uint8_t>(body[0]);
    const auto kind = static_cast<uint8_t>(body[1]);
    const uint32_t key_length = get_u32(body + 2);
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
    size = k_record_header_size + length;
    return damage::none;
}

scan_result scan(std::string_view records, const std::function<void(const record_view&)>& visit,
                 uint64_t search_budget) {
    scan_result r;
    size_t pos = 0;
    while (pos < records.size()) {
        record_view rec;
        size_t size = 0;
        const damage d = decode_record(records.substr(pos), rec, size);
        if (d != damage::none) {
            r.first_damage = d;
            r.damage_pos = pos;
            break;
        }
        if (visit) visit(rec);
        ++r.records;
        pos += size;
    }
    r.valid_bytes = pos;
    if (r.first_damage != damage::none && r.first_damage != damage::zero_filled) {
        // Any decodable record after the damage means bytes that were once durable follow
        // it. Only runs on damage. Cheap header checks first, then the CRC, within a budget
        // so a large damaged journal cannot stall start-up: past it, assume the worst.
        uint64_t crc_bytes = 0;
        for (size_t q = pos + 1; q + k_record_header_size + k_min_body_size <= records.size(); ++q) {
            const char* h = records.data() + q;
            const uint32_t length = get_u32(h + 4);
            const auto o = static_cast<uint8_t>(h[8]);
            const auto kind = static_cast<uint8_t>(h[9]);
            if (length < k_min_body_size || length > k_max_body_size ||
                length > records.size() - q - k_record_header_size || o < 1 || o > 4 ||
                (kind == 0) != (o == static_cast<uint8_t>(op::snapshot_end)) ||
                get_u32(h + 10) > length - k_min_body_size) {
                continue;
            }
            crc_bytes += length;
            if (crc_bytes > search_budget) {
                r.valid_after_damage = true;
                r.search_exhausted = true;
                break;
            }
            record_view rec;
            size_t size = 0;
            if (decode_record(records.substr(q), rec, size) == damage::none) {
                r.valid_after_damage = true;
                break;
            }
        }
    }
    return r;
}

}  // namespace sluice::broker::persist::format
