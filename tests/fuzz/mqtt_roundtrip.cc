// SPDX-License-Identifier: Apache-2.0
//
// Round-trip fuzzer: whatever the decoder accepts, the encoder must write back in a form the
// decoder reads as an equal packet, byte-identical when encoded again; and
// encode_publish_header + payload must equal encode() for every PUBLISH. The first input byte
// picks the version (3.1, 3.1.1, 5.0); the rest is one packet.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mqtt/codec.h"

using namespace sluice::mqtt;

namespace {

sluice::result<packet> decode_exact(std::string_view bytes, version v) {
    auto f = parse_frame(bytes, max_packet_size_limit);
    if (!f) return f.error();
    if (!f->has_value() || (*f)->total_size() != bytes.size()) return make_error_code(errc::truncated);
    return decode(**f, bytes, v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static constexpr version versions[] = {version::v3_1, version::v3_1_1, version::v5, version::v5};
    const version v = versions[data[0] & 0x03];
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    auto f = parse_frame(in, max_packet_size_limit);
    if (!f || !f->has_value() || (*f)->total_size() > in.size()) return 0;
    const std::string_view bytes = in.substr(0, (*f)->total_size());
    auto first = decode(**f, bytes, v);
    if (!first) return 0;

    // A CONNECT is encoded (and must be decoded) in its own version.
    version wire_version = v;
    if (const auto* c = std::get_if<connect>(&*first)) wire_version = c->protocol;

    std::string encoded;
    encode(*first, v, encoded);
    auto second = decode_exact(encoded, wire_version);
    if (!second) __builtin_trap();               // we wrote something we cannot read
    if (!(*second == *first)) __builtin_trap();  // the packet changed on the way
    std::string again;
    encode(*second, v, again);
    if (again != encoded) __builtin_trap();  // encoding is not deterministic

    if (const auto* p = std::get_if<publish>(&*first)) {
        std::string head;
        const size_t off = encode_publish_header(*p, p->payload.size(), v, head);
        if (head + p->payload != encoded) __builtin_trap();
        if ((p->qos == 0) != (off == std::string::npos)) __builtin_trap();
        if (p->qos > 0 && (static_cast<uint8_t>(head[off]) != (p->packet_id >> 8) ||
                           static_cast<uint8_t>(head[off + 1]) != (p->packet_id & 0xFF))) {
            __builtin_trap();
        }
    }
    return 0;
}
