// SPDX-License-Identifier: Apache-2.0
//
// The sans-I/O MQTT 3.1.1 / 5.0 codec: bytes in, packets out; packets to bytes. No sockets, no
// threads, no exceptions. The broker frames its socket buffer with parse_frame() and decodes
// each complete packet with decode(); clients and tests use stream_decoder. Everything a peer
// can get wrong comes back as an mqtt::errc (mqtt/errc.h) that maps to the reason code to send.
// Format, validation and the error table: docs/mqtt-codec.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "mqtt/errc.h"
#include "mqtt/topic.h"
#include "mqtt/types.h"

namespace sluice::mqtt {

// Largest remaining length a fixed header can carry (spec §1.5.5): 268,435,455.
inline constexpr uint32_t max_remaining_length = 268435455;
// Largest packet: 5-byte fixed header + max_remaining_length.
inline constexpr uint32_t max_packet_size_limit = max_remaining_length + 5;

// One packet's fixed header, as found at the start of a buffer.
struct frame {
    uint8_t first_byte = 0;  // packet type << 4 | flags
    uint32_t remaining_length = 0;
    uint8_t header_size = 0;  // 2..5
    size_t total_size() const { return size_t{header_size} + remaining_length; }
    packet_type type() const { return static_cast<packet_type>(first_byte >> 4); }
    uint8_t flags() const { return static_cast<uint8_t>(first_byte & 0x0F); }
};

// Looks at the start of `in` for one packet's fixed header. Never reads past `in`.
// Returns: std::nullopt - more bytes are needed to know the packet's size.
//          frame - the header; the packet is complete once in.size() >= total_size().
//          errc::malformed_remaining_length - 5th length byte or non-minimal encoding.
//          errc::packet_too_large - header_size + remaining_length > max_packet_size; decided
//          from the header alone, before the caller buffers or allocates anything for the body.
result<std::optional<frame>> parse_frame(std::string_view in, uint32_t max_packet_size);

// Decodes one complete packet. `bytes` is the whole packet, fixed header included.
// REQUIRES: bytes.size() == f.total_size() and f was parsed from bytes.
// v: the connection's negotiated version (a CONNECT is decoded whatever v is: it carries its
// own). Returns the packet, or the errc of the first violation found.
result<packet> decode(const frame& f, std::string_view bytes, version v);

// Incremental decoder for clients and tests: buffers partial reads (a packet may be split at
// any byte). Not thread-safe; one per connection. After an error the decoder stays failed and
// next() returns the same error: the connection must be closed.
class stream_decoder {
public:
    explicit stream_decoder(version v = version::v5, uint32_t max_packet_size = max_remaining_length);

    void feed(std::string_view bytes);
    // std::nullopt: need more bytes. After decoding a CONNECT the decoder switches to that
    // CONNECT's version by itself.
    result<std::optional<packet>> next();
    void set_version(version v) { version_ = v; }
    version current_version() const { return version_; }
    // Bytes fed but not yet returned as packets.
    size_t buffered() const { return buffer_.size() - consumed_; }

private:
    std::string buffer_;
    size_t consumed_ = 0;
    version version_;
    uint32_t max_packet_size_;
    std::error_code failed_;
};

// Encodes p for a connection speaking v and appends it to out. Encodes exactly what the spec
// allows for v: 3.1.1 drops properties and the reason codes it has no room for, and uses the
// shortest 5.0 forms (e.g. a 2-byte PUBACK for success without properties). A CONNECT is
// encoded in its own `protocol` version; v is ignored for it.
// REQUIRES (checked): strings <= 65535 bytes, remaining length <= max_remaining_length,
// qos <= 2, no AUTH for 3.1.1. Validity of topics etc. is the caller's business.
void encode(const packet& p, version v, std::string& out);

// Broker fan-out: encodes a PUBLISH's fixed header and variable header (topic, packet id,
// properties) for a payload of payload_size bytes, WITHOUT the payload (the broker sends a
// shared payload buffer after it). p.payload is ignored. Returns the offset within `out` of the
// 2-byte big-endian packet id so the caller can patch it, or std::string::npos when qos == 0.
size_t encode_publish_header(const publish& p, size_t payload_size, version v, std::string& out);

// Variable byte integer (spec §1.5.5), exposed for tests and other framings.
// Appends 1..4 bytes. REQUIRES: value <= max_remaining_length.
void encode_varint(uint32_t value, std::string& out);
size_t varint_size(uint32_t value);

}  // namespace sluice::mqtt
