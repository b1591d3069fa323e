// SPDX-License-Identifier: Apache-2.0
//
// Decoder of the compact binary edge format (docs/payload-formats.md, produced by
// edge/sluice_edge.h). Bounds-checked byte by byte: any byte string either decodes
// or yields a reason naming the field and reading that failed.
#include <cstring>

#include "base/endian.h"
#include "pipeline/binary_format.h"
#include "pipeline/decoder.h"
#include "pipeline/reason.h"

namespace sluice::pipeline {

using detail::set_reason;

namespace {

constexpr double pow10_table[binary::max_scale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

// LEB128, at most 10 bytes, no bits beyond 64. False when truncated or overlong.
bool get_varint(const uint8_t*& p, const uint8_t* end, uint64_t& out) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p == end) return false;
        const uint8_t b = *p++;
        if (shift == 63 && b > 1) return false;
        v |= static_cast<uint64_t>(b & 0x7F) << shift;
        if ((b & 0x80) == 0) {
            out = v;
            return true;
        }
    }
    return false;
}

}  // namespace

result<void> payload_decoder::decode_binary(std::string_view payload, decoded_payload& out) {
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
    const uint8_t* const end = p + payload.size();
    if (payload.empty()) return set_reason(reason_, errc::empty_payload, "empty payload");
    const uint8_t magic = *p++;
    if ((magic & binary::magic_mask) != binary::magic_family) {
        return set_reason(reason_, errc::bad_binary, "binary: bad magic byte 0x%02x (expected 0xA1)", magic);
    }
    if (magic != binary::magic_v1) {
        return set_reason(reason_, errc::bad_binary, "binary: unsupported version %u", magic & 0x0Fu);
    }
    if (p == end) return set_reason(reason_, errc::bad_binary, "binary: truncated header (flags)");
    const uint8_t flags = *p++;
    if ((flags & ~binary::flags_known) != 0) {
        return set_reason(reason_, errc::bad_binary, "binary: reserved flag bits set (0x%02x)", flags);
    }
    uint64_t seq;
    if (!get_varint(p, end, seq)) {
        return set_reason(reason_, errc::bad_binary, "binary: truncated or overlong sequence number");
    }
    if (end - p < 7) return set_reason(reason_, errc::bad_binary, "binary: truncated header (time, count)");
    int64_t time = static_cast<int64_t>(load_le(p, 6));
    p += 6;
    const unsigned count = *p++;
    out.seq = seq;
    out.seq_restart = (flags & binary::flag_seq_restart) != 0;
    out.readings.reserve(count);
    for (unsigned i = 0; i < count; ++i) {
        uint64_t dt, id;
        if (!get_varint(p, end, dt) || !get_varint(p, end, id) || p == end) {
            return set_reason(reason_, errc::bad_binary, "binary: truncated reading %u", i);
        }
        if (dt > binary::max_time_ms) {
            return set_reason(reason_, errc::bad_binary, "binary: reading %u: time delta %llu ms is too large", i,
                              static_cast<unsigned long long>(dt));
        }
        if (id > UINT32_MAX) {
            return set_reason(reason_, errc::bad_binary, "binary: reading %u: metric id %llu exceeds 32 bits", i,
                              static_cast<unsigned long long>(id));
        }
        time += static_cast<int64_t>(dt);  // both < 2^48 per reading, at most 255 readings: no overflow
        const uint8_t tag = *p++;
        const unsigned kind = tag >> 4, scale = tag & 0x0Fu;
        static constexpr unsigned kind_size[] = {1, 2, 4, 4, 8};
        if (kind > binary::kind_float64) {
            return set_reason(reason_, errc::bad_binary, "binary: reading %u: unknown value kind %u", i, kind);
        }
        if (scale > (kind <= binary::kind_int32 ? binary::max_scale : 0u)) {
            return set_reason(reason_, errc::bad_binary, "binary: reading %u: bad decimal scale %u for value kind %u",
                              i, scale, kind);
        }
        const unsigned size = kind_size[kind];
        if (static_cast<std::size_t>(end - p) < size) {
            return set_reason(reason_, errc::bad_binary, "binary: truncated reading %u", i);
        }
        const uint64_t raw = load_le(p, size);
        p += size;
        double value;
        switch (kind) {
            case binary::kind_int8:
                value = static_cast<int8_t>(static_cast<uint8_t>(raw));
                break;
            case binary::kind_int16:
                value = static_cast<int16_t>(static_cast<uint16_t>(raw));
                break;
            case binary::kind_int32:
                value = static_cast<int32_t>(static_cast<uint32_t>(raw));
                break;
            case binary::kind_float32: {
                float f;
                const auto bits = static_cast<uint32_t>(raw);
                std::memcpy(&f, &bits, sizeof f);
                value = f;
                break;
            }
            default:
                std::memcpy(&value, &raw, sizeof value);
                break;
        }
        if (scale != 0) value /= pow10_table[scale];
        out.readings.push_back(reading{time, {}, static_cast<uint32_t>(id), value});
    }
    if (p != end) {
        return set_reason(reason_, errc::bad_binary, "binary: %zu trailing bytes after %u readings",
                          static_cast<std::size_t>(end - p), count);
    }
    return ok();
}

}  // namespace sluice::pipeline
