// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the MQTT decoder the way the broker drives it: arbitrary bytes through
// stream_decoder, fed in chunks, until it needs more bytes or reports an error. The first
// input byte picks the connection's version (bits 0-1: 3.1, 3.1.1, 5.0) and the chunk size
// (bits 2-7), so splits at odd boundaries are explored too. Every decoded packet is
// re-encoded, which exercises the encoder on whatever the decoder accepts. Any crash,
// sanitizer report or invariant failure is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mqtt/codec.h"

using namespace sluice::mqtt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static constexpr version versions[] = {version::v3_1, version::v3_1_1, version::v5, version::v5};
    const version v = versions[data[0] & 0x03];
    const size_t chunk = size_t{1} + (data[0] >> 2);
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    // A small limit so that packet_too_large is reached too.
    stream_decoder sd(v, (data[0] & 0x80) != 0 ? 64 : max_remaining_length);
    size_t fed = 0;
    while (true) {
        auto r = sd.next();
        if (!r) {
            // Every error maps to a failure reason code.
            if (static_cast<uint8_t>(to_reason_code(r.error())) < 0x80) __builtin_trap();
            return 0;
        }
        if (r->has_value()) {
            std::string out;
            encode(**r, sd.current_version(), out);
            continue;
        }
        if (fed >= in.size()) return 0;
        const size_t n = std::min(chunk, in.size() - fed);
        sd.feed(in.substr(fed, n));
        fed += n;
    }
}
