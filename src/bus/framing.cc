// SPDX-License-Identifier: Apache-2.0
//
// Record framing shared by the WAL and the state store (see framing.h).
#include "bus/framing.h"

#include <algorithm>

#include "bus/wal/crc32c.h"

namespace sluice::bus::framing {

bool all_zero(std::string_view bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
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

damage check_frame(std::string_view bytes, const layout& l, frame& out) {
    if (bytes.size() < l.header_size) {
        return all_zero(bytes) && !bytes.empty() ? damage::zero_filled : damage::truncated_header;
    }
    const uint32_t length = load_le32(bytes.data() + 4);
    if (length == 0 && all_zero(bytes)) return damage::zero_filled;
    if (length < l.min_body || length > l.max_body) return damage::bad_length;
    if (bytes.size() - l.header_size < length) return damage::torn_record;
    if (wal::crc32c(bytes.data() + 4, l.header_size - 4 + length) != load_le32(bytes.data())) return damage::bad_crc;
    out.header = bytes.substr(0, l.header_size);
    out.body = bytes.substr(l.header_size, length);
    out.size = l.header_size + length;
    return damage::none;
}

void seal_record(std::string& out, size_t start) {
    store_le32(out.data() + start, wal::crc32c(out.data() + start + 4, out.size() - start - 4));
}

}  // namespace sluice::bus::framing
