// SPDX-License-Identifier: Apache-2.0
//
// Decoder and encoder of MQTT 3.1.1 / 5.0 packets (mqtt/codec.h). The decoder is on every
// message's path: it reads through a bounds-checked cursor over the caller's bytes, copies
// each string exactly once into the packet, and reports the first violation as an errc.
// The encoder measures a packet with the same code that writes it (a counting sink, then an
// appending sink), so it reserves the exact size and writes in one pass.
#include "mqtt/codec.h"

#include <array>
#include <type_traits>

#include "base/assert.h"
#include "base/endian.h"

namespace sluice::mqtt {
namespace {

constexpr errc ok = errc{};  // errc has no 0 value: "no error" inside this file

#define SLUICE_MQTT_TRY(expr)                            \
    do {                                                 \
        if (const errc e_ = (expr); e_ != ok) return e_; \
    } while (0)

bool is_v5(version v) {
    return v == version::v5;
}

// ---------------------------------------------------------------------------------------------
// Reading

class cursor {
public:
    explicit cursor(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

    size_t remaining() const { return static_cast<size_t>(end_ - p_); }
    bool empty() const { return p_ == end_; }

    errc u8(uint8_t& v) {
        if (p_ == end_) return errc::truncated;
        v = static_cast<uint8_t>(*p_++);
        return ok;
    }
    errc u16(uint16_t& v) {
        if (remaining() < 2) return errc::truncated;
        v = load_be16(p_);
        p_ += 2;
        return ok;
    }
    errc u32(uint32_t& v) {
        if (remaining() < 4) return errc::truncated;
        v = load_be32(p_);
        p_ += 4;
        return ok;
    }
    // Variable byte integer: at most 4 bytes, shortest form (spec 5.0 [MQTT-1.5.5-1]).
    errc varint(uint32_t& v) {
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i) {
            if (p_ == end_) return errc::truncated;
            const auto b = static_cast<uint8_t>(*p_++);
            value |= uint32_t{b & 0x7Fu} << (7 * i);
            if ((b & 0x80u) == 0) {
                if (b == 0 && i > 0) return errc::malformed_variable_byte_integer;
                v = value;
                return ok;
            }
        }
        return errc::malformed_variable_byte_integer;
    }
    errc take(size_t n, std::string_view& out) {
        if (remaining() < n) return errc::truncated;
        out = std::string_view(p_, n);
        p_ += n;
        return ok;
    }
    // Two-byte length prefixed bytes (binary data, or the raw bytes of a UTF-8 string).
    errc binary(std::string_view& out) {
        uint16_t len = 0;
        SLUICE_MQTT_TRY(u16(len));
        return take(len, out);
    }
    errc utf8(std::string_view& out) {
        SLUICE_MQTT_TRY(binary(out));
        switch (check_utf8(out)) {
            case utf8_status::ok:
                return ok;
            case utf8_status::malformed:
                return errc::malformed_utf8;
            case utf8_status::null_character:
                return errc::utf8_null_character;
        }
        return errc::malformed_utf8;
    }
    std::string_view rest() {
        std::string_view r(p_, remaining());
        p_ = end_;
        return r;
    }

private:
    const char* p_;
    const char* end_;
};

// Properties ----------------------------------------------------------------------------------

enum class prop_kind : uint8_t { none, byte, u16, u32, varint, utf8, binary, pair };

// Bit n = allowed in packet type n; bit 0 = allowed in the will properties of CONNECT.
constexpr uint32_t bit(packet_type t) {
    return 1u << static_cast<unsigned>(t);
}
constexpr uint32_t will_bit = 1u;

struct prop_spec {
    prop_kind kind = prop_kind::none;
    uint32_t allowed = 0;
};

constexpr std::array<prop_spec, 0x2B> make_prop_table() {
    using pt = packet_type;
    std::array<prop_spec, 0x2B> t{};
    const uint32_t message = bit(pt::publish) | will_bit;
    const uint32_t acks = bit(pt::connack) | bit(pt::puback) | bit(pt::pubrec) | bit(pt::pubrel) | bit(pt::pubcomp) |
                          bit(pt::suback) | bit(pt::unsuback) | bit(pt::disconnect) | bit(pt::auth);
    t[0x01] = {prop_kind::byte, message};
    t[0x02] = {prop_kind::u32, message};
    t[0x03] = {prop_kind::utf8, message};
    t[0x08] = {prop_kind::utf8, message};
    t[0x09] = {prop_kind::binary, message};
    t[0x0B] = {prop_kind::varint, bit(pt::publish) | bit(pt::subscribe)};
    t[0x11] = {prop_kind::u32, bit(pt::connect) | bit(pt::connack) | bit(pt::disconnect)};
    t[0x12] = {prop_kind::utf8, bit(pt::connack)};
    t[0x13] = {prop_kind::u16, bit(pt::connack)};
    t[0x15] = {prop_kind::utf8, bit(pt::connect) | bit(pt::connack) | bit(pt::auth)};
    t[0x16] = {prop_kind::binary, bit(pt::connect) | bit(pt::connack) | bit(pt::auth)};
    t[0x17] = {prop_kind::byte, bit(pt::connect)};
    t[0x18] = {prop_kind::u32, will_bit};
    t[0x19] = {prop_kind::byte, bit(pt::connect)};
    t[0x1A] = {prop_kind::utf8, bit(pt::connack)};
    t[0x1C] = {prop_kind::utf8, bit(pt::connack) | bit(pt::disconnect)};
    t[0x1F] = {prop_kind::utf8, acks};
    t[0x21] = {prop_kind::u16, bit(pt::connect) | bit(pt::connack)};
    t[0x22] = {prop_kind::u16, bit(pt::connect) | bit(pt::connack)};
    t[0x23] = {prop_kind::u16, bit(pt::publish)};
    t[0x24] = {prop_kind::byte, bit(pt::connack)};
    t[0x25] = {prop_kind::byte, bit(pt::connack)};
    t[0x26] = {prop_kind::pair, 0xFFFFFFFFu};  // every packet type with properties, and the will
    t[0x27] = {prop_kind::u32, bit(pt::connect) | bit(pt::connack)};
    t[0x28] = {prop_kind::byte, bit(pt::connack)};
    t[0x29] = {prop_kind::byte, bit(pt::connack)};
    t[0x2A] = {prop_kind::byte, bit(pt::connack)};
    return t;
}
constexpr auto prop_table = make_prop_table();

struct prop_value {
    uint32_t number = 0;
    std::string_view a;
    std::string_view b;
};

errc boolean(uint32_t v) {
    return v <= 1 ? ok : errc::invalid_property_value;
}
errc nonzero(uint32_t v) {
    return v != 0 ? ok : errc::invalid_property_value;
}

errc store_property(uint8_t id, const prop_value& v, properties& p) {
    const auto u8v = static_cast<uint8_t>(v.number);
    const auto u16v = static_cast<uint16_t>(v.number);
    switch (id) {
        case 0x01:
            p.payload_format_indicator = u8v;
            return boolean(v.number);
        case 0x02:
            p.message_expiry_interval = v.number;
            return ok;
        case 0x03:
            p.content_type.emplace(v.a);
            return ok;
        case 0x08:
            if (!valid_topic_name(v.a)) return errc::invalid_property_value;
            p.response_topic.emplace(v.a);
            return ok;
        case 0x09:
            p.correlation_data.emplace(v.a);
            return ok;
        case 0x0B:
            p.subscription_identifiers.push_back(v.number);
            return nonzero(v.number);
        case 0x11:
            p.session_expiry_interval = v.number;
            return ok;
        case 0x12:
            p.assigned_client_identifier.emplace(v.a);
            return ok;
        case 0x13:
            p.server_keep_alive = u16v;
            return ok;
        case 0x15:
            p.authentication_method.emplace(v.a);
            return ok;
        case 0x16:
            p.authentication_data.emplace(v.a);
            return ok;
        case 0x17:
            p.request_problem_information = u8v;
            return boolean(v.number);
        case 0x18:
            p.will_delay_interval = v.number;
            return ok;
        case 0x19:
            p.request_response_information = u8v;
            return boolean(v.number);
        case 0x1A:
            p.response_information.emplace(v.a);
            return ok;
        case 0x1C:
            p.server_reference.emplace(v.a);
            return ok;
        case 0x1F:
            p.reason_string.emplace(v.a);
            return ok;
        case 0x21:
            p.receive_maximum = u16v;
            return nonzero(v.number);
        case 0x22:
            p.topic_alias_maximum = u16v;
            return ok;
        case 0x23:
            p.topic_alias = u16v;
            return nonzero(v.number);
        case 0x24:
            p.maximum_qos = u8v;
            return boolean(v.number);
        case 0x25:
            p.retain_available = u8v;
            return boolean(v.number);
        case 0x26:
            p.user_properties.push_back(user_property{std::string(v.a), std::string(v.b)});
            return ok;
        case 0x27:
            p.maximum_packet_size = v.number;
            return nonzero(v.number);
        case 0x28:
            p.wildcard_subscription_available = u8v;
            return boolean(v.number);
        case 0x29:
            p.subscription_identifier_available = u8v;
            return boolean(v.number);
        case 0x2A:
            p.shared_subscription_available = u8v;
            return boolean(v.number);
        default:
            return errc::unknown_property;
    }
}

// Inside the property block a value cut short is a malformed property, not a short packet.
errc as_property_error(errc e) {
    return e == errc::truncated ? errc::malformed_property : e;
}

// REQUIRES: 5.0. `allowed` is bit(type) or will_bit.
errc read_properties(cursor& c, uint32_t allowed, bool publish_like, properties& out) {
    uint32_t len = 0;
    SLUICE_MQTT_TRY(c.varint(len));
    if (len == 0) return ok;
    std::string_view block;
    if (c.take(len, block) != ok) return errc::malformed_property;
    cursor pc(block);
    uint64_t seen = 0;
    while (!pc.empty()) {
        uint32_t id32 = 0;
        SLUICE_MQTT_TRY(as_property_error(pc.varint(id32)));
        if (id32 >= prop_table.size() || prop_table[id32].kind == prop_kind::none) {
            return errc::unknown_property;
        }
        const auto id = static_cast<uint8_t>(id32);
        const prop_spec& spec = prop_table[id];
        if ((spec.allowed & allowed) == 0) return errc::property_not_allowed;
        const bool repeatable = id == 0x26 || (id == 0x0B && publish_like);
        const uint64_t mask = uint64_t{1} << id;
        if ((seen & mask) != 0 && !repeatable) return errc::duplicate_property;
        seen |= mask;
        prop_value v;
        switch (spec.kind) {
            case prop_kind::byte: {
                uint8_t b = 0;
                SLUICE_MQTT_TRY(as_property_error(pc.u8(b)));
                v.number = b;
                break;
            }
            case prop_kind::u16: {
                uint16_t w = 0;
                SLUICE_MQTT_TRY(as_property_error(pc.u16(w)));
                v.number = w;
                break;
            }
            case prop_kind::u32:
                SLUICE_MQTT_TRY(as_property_error(pc.u32(v.number)));
                break;
            case prop_kind::varint:
                SLUICE_MQTT_TRY(as_property_error(pc.varint(v.number)));
                break;
            case prop_kind::utf8:
                SLUICE_MQTT_TRY(as_property_error(pc.utf8(v.a)));
                break;
            case prop_kind::binary:
                SLUICE_MQTT_TRY(as_property_error(pc.binary(v.a)));
                break;
            case prop_kind::pair:
                SLUICE_MQTT_TRY(as_property_error(pc.utf8(v.a)));
                SLUICE_MQTT_TRY(as_property_error(pc.utf8(v.b)));
                break;
            case prop_kind::none:
                return errc::unknown_property;
        }
        SLUICE_MQTT_TRY(store_property(id, v, out));
    }
    if (out.authentication_data && !out.authentication_method) return errc::auth_data_without_method;
    return ok;
}

// Reason codes allowed per packet type (5.0 §2.4 and each packet's section).
bool reason_allowed(packet_type t, uint8_t code) {
    switch (t) {
        case packet_type::connack:
            return code == 0x00 || (code >= 0x80 && code <= 0x9F && code != 0x8B && code != 0x8D && code != 0x8E &&
                                    code != 0x8F && code != 0x91 && code != 0x92 && code != 0x93 && code != 0x94 &&
                                    code != 0x96 && code != 0x98 && code != 0x9E);
        case packet_type::puback:
        case packet_type::pubrec:
            return code == 0x00 || code == 0x10 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x90 ||
                   code == 0x91 || code == 0x97 || code == 0x99;
        case packet_type::pubrel:
        case packet_type::pubcomp:
            return code == 0x00 || code == 0x92;
        case packet_type::suback:
            return code <= 0x02 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x8F || code == 0x91 ||
                   code == 0x97 || code == 0x9E || code == 0xA1 || code == 0xA2;
        case packet_type::unsuback:
            return code == 0x00 || code == 0x11 || code == 0x80 || code == 0x83 || code == 0x87 || code == 0x8F ||
                   code == 0x91;
        case packet_type::disconnect:
            return code == 0x00 || code == 0x04 ||
                   (code >= 0x80 && code <= 0xA2 && code != 0x84 && code != 0x85 && code != 0x86 && code != 0x88 &&
                    code != 0x8A && code != 0x8C && code != 0x91 && code != 0x92);
        case packet_type::auth:
            return code == 0x00 || code == 0x18 || code == 0x19;
        default:
            return false;
    }
}

errc read_reason(cursor& c, packet_type t, reason_code& out) {
    uint8_t b = 0;
    SLUICE_MQTT_TRY(c.u8(b));
    if (!reason_allowed(t, b)) return errc::invalid_reason_code;
    out = static_cast<reason_code>(b);
    return ok;
}

errc read_topic_name(cursor& c, std::string_view& out) {
    SLUICE_MQTT_TRY(c.utf8(out));
    if (has_wildcard(out)) return errc::topic_name_invalid;
    return ok;
}

errc read_packet_id(cursor& c, uint16_t& out) {
    SLUICE_MQTT_TRY(c.u16(out));
    return out == 0 ? errc::zero_packet_id : ok;
}

errc finish(const cursor& c) {
    return c.empty() ? ok : errc::trailing_bytes;
}

// Per packet type ------------------------------------------------------------------------------

errc decode_connect(cursor& c, connect& p) {
    std::string_view name;
    SLUICE_MQTT_TRY(c.binary(name));
    uint8_t level = 0;
    SLUICE_MQTT_TRY(c.u8(level));
    if (name == "MQTT") {
        if (level == 4) {
            p.protocol = version::v3_1_1;
        } else if (level == 5) {
            p.protocol = version::v5;
        } else {
            return errc::unsupported_protocol_version;
        }
    } else if (name == "MQIsdp") {
        if (level != 3) return errc::unsupported_protocol_version;
        p.protocol = version::v3_1;
    } else {
        return errc::bad_protocol_name;
    }
    const bool v5 = is_v5(p.protocol);
    uint8_t flags = 0;
    SLUICE_MQTT_TRY(c.u8(flags));
    if ((flags & 0x01u) != 0) return errc::connect_reserved_flag;
    p.clean_start = (flags & 0x02u) != 0;
    const bool will_flag = (flags & 0x04u) != 0;
    const auto will_qos = static_cast<uint8_t>((flags >> 3) & 0x03u);
    const bool will_retain = (flags & 0x20u) != 0;
    const bool password_flag = (flags & 0x40u) != 0;
    const bool username_flag = (flags & 0x80u) != 0;
    if (will_qos == 3 || (!will_flag && (will_qos != 0 || will_retain))) return errc::will_flags_invalid;
    if (!v5 && password_flag && !username_flag) return errc::password_without_username;
    SLUICE_MQTT_TRY(c.u16(p.keep_alive));
    if (v5) SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::connect), false, p.props));
    std::string_view s;
    SLUICE_MQTT_TRY(c.utf8(s));
    p.client_id.assign(s);
    if (will_flag) {
        will& w = p.will_message.emplace();
        w.qos = will_qos;
        w.retain = will_retain;
        if (v5) SLUICE_MQTT_TRY(read_properties(c, will_bit, true, w.props));
        SLUICE_MQTT_TRY(read_topic_name(c, s));
        if (s.empty()) return errc::topic_name_invalid;
        w.topic.assign(s);
        SLUICE_MQTT_TRY(c.binary(s));
        w.payload.assign(s);
    }
    if (username_flag) {
        SLUICE_MQTT_TRY(c.utf8(s));
        p.username.emplace(s);
    }
    if (password_flag) {
        SLUICE_MQTT_TRY(c.binary(s));
        p.password.emplace(s);
    }
    return finish(c);
}

constexpr std::array<reason_code, 6> v3_connack_codes = {reason_code::success,
                                                         reason_code::unsupported_protocol_version,
                                                         reason_code::client_identifier_not_valid,
                                                         reason_code::server_unavailable,
                                                         reason_code::bad_user_name_or_password,
                                                         reason_code::not_authorized};

errc decode_connack(cursor& c, version v, connack& p) {
    uint8_t ack = 0;
    SLUICE_MQTT_TRY(c.u8(ack));
    // 3.1 has no Session Present flag: the whole byte is reserved.
    if ((ack & (v == version::v3_1 ? 0xFFu : 0xFEu)) != 0) return errc::connack_reserved_flags;
    p.session_present = (ack & 0x01u) != 0;
    if (is_v5(v)) {
        SLUICE_MQTT_TRY(read_reason(c, packet_type::connack, p.code));
        SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::connack), false, p.props));
    } else {
        uint8_t rc = 0;
        SLUICE_MQTT_TRY(c.u8(rc));
        if (rc >= v3_connack_codes.size()) return errc::invalid_reason_code;
        p.code = v3_connack_codes[rc];
    }
    if (p.session_present && p.code != reason_code::success) return errc::session_present_on_failure;
    return finish(c);
}

errc decode_publish(cursor& c, uint8_t flags, version v, publish& p) {
    p.retain = (flags & 0x01u) != 0;
    p.qos = static_cast<uint8_t>((flags >> 1) & 0x03u);
    p.dup = (flags & 0x08u) != 0;
    if (p.qos == 3) return errc::invalid_qos;
    if (p.dup && p.qos == 0) return errc::dup_on_qos0;
    std::string_view topic;
    SLUICE_MQTT_TRY(read_topic_name(c, topic));
    if (p.qos > 0) SLUICE_MQTT_TRY(read_packet_id(c, p.packet_id));
    if (is_v5(v)) {
        SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::publish), true, p.props));
        if (topic.empty() && !p.props.topic_alias) return errc::topic_alias_missing;
    } else if (topic.empty()) {
        return errc::topic_name_invalid;
    }
    p.topic.assign(topic);
    p.payload.assign(c.rest());
    return ok;
}

template <typename Ack>
errc decode_ack(cursor& c, packet_type t, version v, Ack& p) {
    SLUICE_MQTT_TRY(read_packet_id(c, p.packet_id));
    if (is_v5(v) && !c.empty()) {
        SLUICE_MQTT_TRY(read_reason(c, t, p.code));
        if (!c.empty()) SLUICE_MQTT_TRY(read_properties(c, bit(t), false, p.props));
    }
    return finish(c);
}

errc decode_subscribe(cursor& c, version v, subscribe& p) {
    SLUICE_MQTT_TRY(read_packet_id(c, p.packet_id));
    const bool v5 = is_v5(v);
    if (v5) SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::subscribe), false, p.props));
    if (c.empty()) return errc::empty_subscribe;
    while (!c.empty()) {
        std::string_view filter;
        SLUICE_MQTT_TRY(c.utf8(filter));
        uint8_t options = 0;
        SLUICE_MQTT_TRY(c.u8(options));
        if ((options & (v5 ? 0xC0u : 0xFCu)) != 0) return errc::subscription_options_reserved;
        subscription s;
        s.qos = static_cast<uint8_t>(options & 0x03u);
        if (s.qos == 3) return errc::invalid_qos;
        s.no_local = (options & 0x04u) != 0;
        s.retain_as_published = (options & 0x08u) != 0;
        s.retain_handling = static_cast<uint8_t>((options >> 4) & 0x03u);
        if (s.retain_handling == 3) return errc::invalid_retain_handling;
        if (!valid_topic_filter(filter)) return errc::topic_filter_invalid;
        if (s.no_local && filter.substr(0, 7) == "$share/") return errc::no_local_on_shared;
        s.filter.assign(filter);
        p.entries.push_back(std::move(s));
    }
    return ok;
}

errc decode_suback(cursor& c, version v, suback& p) {
    SLUICE_MQTT_TRY(read_packet_id(c, p.packet_id));
    const bool v5 = is_v5(v);
    if (v5) SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::suback), false, p.props));
    if (c.empty()) return errc::empty_ack_payload;
    p.codes.reserve(c.remaining());
    while (!c.empty()) {
        uint8_t b = 0;
        SLUICE_MQTT_TRY(c.u8(b));
        const bool allowed = v5 ? reason_allowed(packet_type::suback, b) : (b <= 2 || b == 0x80);
        if (!allowed) return errc::invalid_reason_code;
        p.codes.push_back(static_cast<reason_code>(b));
    }
    return ok;
}

errc decode_unsubscribe(cursor& c, version v, unsubscribe& p) {
    SLUICE_MQTT_TRY(read_packet_id(c, p.packet_id));
    if (is_v5(v)) SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::unsubscribe), false, p.props));
    if (c.empty()) return errc::empty_unsubscribe;
    while (!c.empty()) {
        std::string_view filter;
        SLUICE_MQTT_TRY(c.utf8(filter));
        if (!valid_topic_filter(filter)) return errc::topic_filter_invalid;
        p.filters.emplace_back(filter);
    }
    return ok;
}

errc decode_unsuback(cursor& c, version v, unsuback& p) {
    SLUICE_MQTT_TRY(read_packet_id(c, p.packet_id));
    if (!is_v5(v)) return finish(c);
    SLUICE_MQTT_TRY(read_properties(c, bit(packet_type::unsuback), false, p.props));
    if (c.empty()) return errc::empty_ack_payload;
    p.codes.reserve(c.remaining());
    while (!c.empty()) {
        reason_code code{};
        SLUICE_MQTT_TRY(read_reason(c, packet_type::unsuback, code));
        p.codes.push_back(code);
    }
    return ok;
}

// DISCONNECT and AUTH: remaining length 0 means success without properties (5.0).
template <typename P>
errc decode_reason_only(cursor& c, packet_type t, version v, P& p) {
    if (!is_v5(v) || c.empty()) return finish(c);
    SLUICE_MQTT_TRY(read_reason(c, t, p.code));
    if (!c.empty()) SLUICE_MQTT_TRY(read_properties(c, bit(t), false, p.props));
    return finish(c);
}

uint8_t required_flags(packet_type t) {
    return (t == packet_type::pubrel || t == packet_type::subscribe || t == packet_type::unsubscribe) ? uint8_t{0x02}
                                                                                                      : uint8_t{0x00};
}

// Decodes straight into the packet held by the result: the packet structs are large (the
// properties alone are ~500 bytes), so every move saved shows in the benchmark.
template <typename P, typename F>
result<packet> decode_in_place(F&& body) {
    result<packet> r{packet(std::in_place_type<P>)};
    if (const errc e = body(std::get<P>(*r)); e != ok) r = make_error_code(e);
    return r;
}

// ---------------------------------------------------------------------------------------------
// Writing: the same body code runs against a counter (to size) and an appender (to write).

struct counter {
    size_t n = 0;
    void put(uint8_t) { ++n; }
    void put(std::string_view s) { n += s.size(); }
};

struct appender {
    std::string& out;
    void put(uint8_t b) { out.push_back(static_cast<char>(b)); }
    void put(std::string_view s) { out.append(s); }
};

template <typename S>
void put_u16(S& s, uint16_t v) {
    s.put(static_cast<uint8_t>(v >> 8));
    s.put(static_cast<uint8_t>(v));
}
template <typename S>
void put_u32(S& s, uint32_t v) {
    s.put(static_cast<uint8_t>(v >> 24));
    s.put(static_cast<uint8_t>(v >> 16));
    s.put(static_cast<uint8_t>(v >> 8));
    s.put(static_cast<uint8_t>(v));
}
template <typename S>
void put_varint(S& s, uint32_t v) {
    SLUICE_CHECK(v <= max_remaining_length, "variable byte integer %u too large", v);
    do {
        auto b = static_cast<uint8_t>(v & 0x7Fu);
        v >>= 7;
        if (v != 0) b = static_cast<uint8_t>(b | 0x80u);
        s.put(b);
    } while (v != 0);
}
template <typename S>
void put_str(S& s, std::string_view v) {
    SLUICE_CHECK(v.size() <= 0xFFFF, "string of %zu bytes cannot be encoded", v.size());
    put_u16(s, static_cast<uint16_t>(v.size()));
    s.put(v);
}

template <typename S>
void put_props_body(S& s, const properties& p) {
    auto byte = [&](uint8_t id, const std::optional<uint8_t>& v) {
        if (v) {
            s.put(id);
            s.put(*v);
        }
    };
    auto u16 = [&](uint8_t id, const std::optional<uint16_t>& v) {
        if (v) {
            s.put(id);
            put_u16(s, *v);
        }
    };
    auto u32 = [&](uint8_t id, const std::optional<uint32_t>& v) {
        if (v) {
            s.put(id);
            put_u32(s, *v);
        }
    };
    auto str = [&](uint8_t id, const std::optional<std::string>& v) {
        if (v) {
            s.put(id);
            put_str(s, *v);
        }
    };
    byte(0x01, p.payload_format_indicator);
    u32(0x02, p.message_expiry_interval);
    str(0x03, p.content_type);
    str(0x08, p.response_topic);
    str(0x09, p.correlation_data);
    for (uint32_t id : p.subscription_identifiers) {
        s.put(uint8_t{0x0B});
        put_varint(s, id);
    }
    u32(0x11, p.session_expiry_interval);
    str(0x12, p.assigned_client_identifier);
    u16(0x13, p.server_keep_alive);
    str(0x15, p.authentication_method);
    str(0x16, p.authentication_data);
    byte(0x17, p.request_problem_information);
    u32(0x18, p.will_delay_interval);
    byte(0x19, p.request_response_information);
    str(0x1A, p.response_information);
    str(0x1C, p.server_reference);
    str(0x1F, p.reason_string);
    u16(0x21, p.receive_maximum);
    u16(0x22, p.topic_alias_maximum);
    u16(0x23, p.topic_alias);
    byte(0x24, p.maximum_qos);
    byte(0x25, p.retain_available);
    for (const user_property& up : p.user_properties) {
        s.put(uint8_t{0x26});
        put_str(s, up.key);
        put_str(s, up.value);
    }
    u32(0x27, p.maximum_packet_size);
    byte(0x28, p.wildcard_subscription_available);
    byte(0x29, p.subscription_identifier_available);
    byte(0x2A, p.shared_subscription_available);
}

template <typename S>
void put_props(S& s, const properties& p) {
    if (p.empty()) {
        s.put(uint8_t{0});
        return;
    }
    counter len;
    put_props_body(len, p);
    SLUICE_CHECK(len.n <= max_remaining_length, "properties of %zu bytes", len.n);
    put_varint(s, static_cast<uint32_t>(len.n));
    put_props_body(s, p);
}

uint8_t v3_connack_code(reason_code code) {
    switch (code) {
        case reason_code::success:
            return 0;
        case reason_code::unsupported_protocol_version:
            return 1;
        case reason_code::client_identifier_not_valid:
            return 2;
        case reason_code::bad_user_name_or_password:
        case reason_code::bad_authentication_method:
            return 4;
        case reason_code::not_authorized:
        case reason_code::banned:
            return 5;
        default:
            return 3;  // server_unavailable and every other failure
    }
}

uint8_t first_byte(packet_type t, uint8_t flags) {
    return static_cast<uint8_t>((static_cast<uint8_t>(t) << 4) | flags);
}

struct body_writer {
    version v;
    bool v5() const { return is_v5(v); }

    template <typename S>
    void write(S& s, const connect& p) const {
        const bool c5 = is_v5(p.protocol);
        if (p.protocol == version::v3_1) {
            put_str(s, "MQIsdp");
        } else {
            put_str(s, "MQTT");
        }
        s.put(static_cast<uint8_t>(p.protocol));
        uint8_t flags = 0;
        if (p.clean_start) flags |= 0x02u;
        if (p.will_message) {
            SLUICE_CHECK(p.will_message->qos <= 2, "will qos %u", unsigned{p.will_message->qos});
            flags = static_cast<uint8_t>(flags | 0x04u | (unsigned{p.will_message->qos} << 3) |
                                         (p.will_message->retain ? 0x20u : 0u));
        }
        if (p.password) flags |= 0x40u;
        if (p.username) flags |= 0x80u;
        s.put(flags);
        put_u16(s, p.keep_alive);
        if (c5) put_props(s, p.props);
        put_str(s, p.client_id);
        if (p.will_message) {
            if (c5) put_props(s, p.will_message->props);
            put_str(s, p.will_message->topic);
            put_str(s, p.will_message->payload);
        }
        if (p.username) put_str(s, *p.username);
        if (p.password) put_str(s, *p.password);
    }
    template <typename S>
    void write(S& s, const connack& p) const {
        const bool ok_code = p.code == reason_code::success;
        // MQTT 3.1 has no Session Present flag: the byte is reserved and must be 0.
        s.put(static_cast<uint8_t>(p.session_present && ok_code && v != version::v3_1 ? 1 : 0));
        if (v5()) {
            s.put(static_cast<uint8_t>(p.code));
            put_props(s, p.props);
        } else {
            s.put(v3_connack_code(p.code));
        }
    }
    template <typename S>
    void write_publish_header(S& s, const publish& p) const {
        put_str(s, p.topic);
        if (p.qos > 0) put_u16(s, p.packet_id);
        if (v5()) put_props(s, p.props);
    }
    template <typename S>
    void write(S& s, const publish& p) const {
        write_publish_header(s, p);
        s.put(p.payload);
    }
    template <typename S, typename Ack>
    void write_ack(S& s, const Ack& p) const {
        put_u16(s, p.packet_id);
        if (!v5()) return;
        const bool has_props = !p.props.empty();
        if (p.code == reason_code::success && !has_props) return;
        s.put(static_cast<uint8_t>(p.code));
        if (has_props) put_props(s, p.props);
    }
    template <typename S>
    void write(S& s, const puback& p) const {
        write_ack(s, p);
    }
    template <typename S>
    void write(S& s, const pubrec& p) const {
        write_ack(s, p);
    }
    template <typename S>
    void write(S& s, const pubrel& p) const {
        write_ack(s, p);
    }
    template <typename S>
    void write(S& s, const pubcomp& p) const {
        write_ack(s, p);
    }
    template <typename S>
    void write(S& s, const subscribe& p) const {
        put_u16(s, p.packet_id);
        if (v5()) put_props(s, p.props);
        for (const subscription& e : p.entries) {
            put_str(s, e.filter);
            SLUICE_CHECK(e.qos <= 2 && e.retain_handling <= 2, "bad subscription options");
            uint8_t o = e.qos;
            if (v5()) {
                o = static_cast<uint8_t>(o | (e.no_local ? 0x04u : 0u) | (e.retain_as_published ? 0x08u : 0u) |
                                         (unsigned{e.retain_handling} << 4));
            }
            s.put(o);
        }
    }
    template <typename S>
    void write(S& s, const suback& p) const {
        put_u16(s, p.packet_id);
        if (v5()) put_props(s, p.props);
        for (reason_code code : p.codes) {
            const auto b = static_cast<uint8_t>(code);
            s.put(v5() || b <= 2 ? b : uint8_t{0x80});
        }
    }
    template <typename S>
    void write(S& s, const unsubscribe& p) const {
        put_u16(s, p.packet_id);
        if (v5()) put_props(s, p.props);
        for (const std::string& f : p.filters)
            put_str(s, f);
    }
    template <typename S>
    void write(S& s, const unsuback& p) const {
        put_u16(s, p.packet_id);
        if (!v5()) return;
        put_props(s, p.props);
        for (reason_code code : p.codes)
            s.put(static_cast<uint8_t>(code));
    }
    template <typename S>
    void write(S&, const pingreq&) const {}
    template <typename S>
    void write(S&, const pingresp&) const {}
    template <typename S, typename P>
    void write_reason_only(S& s, const P& p) const {
        if (!v5()) return;
        const bool has_props = !p.props.empty();
        if (p.code == reason_code::success && !has_props) return;
        s.put(static_cast<uint8_t>(p.code));
        if (has_props) put_props(s, p.props);
    }
    template <typename S>
    void write(S& s, const disconnect& p) const {
        write_reason_only(s, p);
    }
    template <typename S>
    void write(S& s, const auth& p) const {
        SLUICE_CHECK(v5(), "AUTH does not exist before MQTT 5.0");
        write_reason_only(s, p);
    }
};

uint8_t flags_of(const packet& p) {
    if (const auto* pub = std::get_if<publish>(&p)) {
        SLUICE_CHECK(pub->qos <= 2, "publish qos %u", unsigned{pub->qos});
        return static_cast<uint8_t>((pub->dup ? 0x08u : 0u) | (unsigned{pub->qos} << 1) | (pub->retain ? 0x01u : 0u));
    }
    return required_flags(type_of(p));
}

void put_fixed_header(std::string& out, uint8_t first, size_t remaining, size_t extra_reserve) {
    SLUICE_CHECK(remaining <= max_remaining_length, "packet body of %zu bytes is too large", remaining);
    const auto rl = static_cast<uint32_t>(remaining);
    out.reserve(out.size() + 1 + varint_size(rl) + extra_reserve);
    out.push_back(static_cast<char>(first));
    encode_varint(rl, out);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

size_t varint_size(uint32_t value) {
    if (value < 128u) return 1;
    if (value < 16384u) return 2;
    if (value < 2097152u) return 3;
    return 4;
}

void encode_varint(uint32_t value, std::string& out) {
    appender a{out};
    put_varint(a, value);
}

result<std::optional<frame>> parse_frame(std::string_view in, uint32_t max_packet_size) {
    if (in.size() < 2) return std::optional<frame>{};
    uint32_t value = 0;
    for (size_t i = 1; i < 5; ++i) {
        if (i >= in.size()) return std::optional<frame>{};
        const auto b = static_cast<uint8_t>(in[i]);
        value |= uint32_t{b & 0x7Fu} << (7 * (i - 1));
        if ((b & 0x80u) == 0) {
            if (b == 0 && i > 1) return errc::malformed_remaining_length;
            frame f;
            f.first_byte = static_cast<uint8_t>(in[0]);
            f.remaining_length = value;
            f.header_size = static_cast<uint8_t>(i + 1);
            if (f.total_size() > max_packet_size) return errc::packet_too_large;
            return std::optional<frame>{f};
        }
    }
    return errc::malformed_remaining_length;
}

result<packet> decode(const frame& f, std::string_view bytes, version v) {
    SLUICE_CHECK(bytes.size() == f.total_size(), "decode given %zu bytes for a %zu-byte packet", bytes.size(),
                 f.total_size());
    cursor c(bytes.substr(f.header_size));
    const uint8_t type_bits = static_cast<uint8_t>(f.first_byte >> 4);
    const uint8_t flags = f.flags();
    if (type_bits == 0) return errc::invalid_packet_type;
    const auto t = static_cast<packet_type>(type_bits);
    // MQTT 3.1 coded PUBREL, SUBSCRIBE and UNSUBSCRIBE as QoS 1 messages, which a client
    // could mark DUP on a resend: accept that bit from 3.1 clients.
    const uint8_t dup_allowed = v == version::v3_1 && required_flags(t) == 0x02 ? 0x08 : 0x00;
    if (t != packet_type::publish && (flags & ~dup_allowed) != required_flags(t)) return errc::reserved_flags;
    switch (t) {
        case packet_type::connect: {
            return decode_in_place<connect>([&](connect& p) { return decode_connect(c, p); });
        }
        case packet_type::connack: {
            return decode_in_place<connack>([&](connack& p) { return decode_connack(c, v, p); });
        }
        case packet_type::publish: {
            return decode_in_place<publish>([&](publish& p) { return decode_publish(c, flags, v, p); });
        }
        case packet_type::puback: {
            return decode_in_place<puback>([&](puback& p) { return decode_ack(c, t, v, p); });
        }
        case packet_type::pubrec: {
            return decode_in_place<pubrec>([&](pubrec& p) { return decode_ack(c, t, v, p); });
        }
        case packet_type::pubrel: {
            return decode_in_place<pubrel>([&](pubrel& p) { return decode_ack(c, t, v, p); });
        }
        case packet_type::pubcomp: {
            return decode_in_place<pubcomp>([&](pubcomp& p) { return decode_ack(c, t, v, p); });
        }
        case packet_type::subscribe: {
            return decode_in_place<subscribe>([&](subscribe& p) { return decode_subscribe(c, v, p); });
        }
        case packet_type::suback: {
            return decode_in_place<suback>([&](suback& p) { return decode_suback(c, v, p); });
        }
        case packet_type::unsubscribe: {
            return decode_in_place<unsubscribe>([&](unsubscribe& p) { return decode_unsubscribe(c, v, p); });
        }
        case packet_type::unsuback: {
            return decode_in_place<unsuback>([&](unsuback& p) { return decode_unsuback(c, v, p); });
        }
        case packet_type::pingreq:
            return decode_in_place<pingreq>([&](pingreq&) { return finish(c); });
        case packet_type::pingresp:
            return decode_in_place<pingresp>([&](pingresp&) { return finish(c); });
        case packet_type::disconnect: {
            return decode_in_place<disconnect>([&](disconnect& p) { return decode_reason_only(c, t, v, p); });
        }
        case packet_type::auth: {
            if (!is_v5(v)) return errc::invalid_packet_type;
            return decode_in_place<auth>([&](auth& p) { return decode_reason_only(c, t, v, p); });
        }
    }
    return errc::invalid_packet_type;
}

void encode(const packet& p, version v, std::string& out) {
    if (const auto* c = std::get_if<connect>(&p)) v = c->protocol;
    const body_writer w{v};
    std::visit(
        [&](const auto& pk) {
            counter n;
            w.write(n, pk);
            put_fixed_header(out, first_byte(type_of(p), flags_of(p)), n.n, n.n);
            appender a{out};
            w.write(a, pk);
        },
        p);
}

size_t encode_publish_header(const publish& p, size_t payload_size, version v, std::string& out) {
    SLUICE_CHECK(p.qos <= 2, "publish qos %u", unsigned{p.qos});
    const body_writer w{v};
    counter n;
    w.write_publish_header(n, p);
    const auto flags = static_cast<uint8_t>((p.dup ? 0x08u : 0u) | (unsigned{p.qos} << 1) | (p.retain ? 0x01u : 0u));
    put_fixed_header(out, first_byte(packet_type::publish, flags), n.n + payload_size, n.n);
    const size_t id_offset = p.qos > 0 ? out.size() + 2 + p.topic.size() : std::string::npos;
    appender a{out};
    w.write_publish_header(a, p);
    return id_offset;
}

// ---------------------------------------------------------------------------------------------

stream_decoder::stream_decoder(version v, uint32_t max_packet_size) : version_(v), max_packet_size_(max_packet_size) {}

void stream_decoder::feed(std::string_view bytes) {
    // Drop consumed bytes before growing, so the buffer stays about one packet large.
    if (consumed_ > 0 && (consumed_ == buffer_.size() || consumed_ >= buffer_.size() / 2)) {
        buffer_.erase(0, consumed_);
        consumed_ = 0;
    }
    buffer_.append(bytes);
}

result<std::optional<packet>> stream_decoder::next() {
    if (failed_) return failed_;
    const std::string_view avail = std::string_view(buffer_).substr(consumed_);
    auto fr = parse_frame(avail, max_packet_size_);
    if (!fr) {
        failed_ = fr.error();
        return failed_;
    }
    if (!fr->has_value()) return std::optional<packet>{};
    const frame f = **fr;
    if (avail.size() < f.total_size()) return std::optional<packet>{};
    auto decoded = decode(f, avail.substr(0, f.total_size()), version_);
    if (!decoded) {
        failed_ = decoded.error();
        return failed_;
    }
    consumed_ += f.total_size();
    if (const auto* c = std::get_if<connect>(&*decoded)) version_ = c->protocol;
    return std::optional<packet>{std::move(decoded).value()};
}

}  // namespace sluice::mqtt
