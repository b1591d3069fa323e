// SPDX-License-Identifier: Apache-2.0
//
// Sample packets shared by the codec tests: one of every packet type for a version, each
// carrying every property the type allows in 5.0, and helpers to write bytes as hex. Every
// sample is canonical for its version (what decode() returns for what encode() writes), so
// round trips compare equal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/codec.h"

namespace sluice::mqtt::test {

// "10 1E 00 04" -> the bytes. Spaces are ignored.
inline std::string hex(std::string_view text) {
    std::string out;
    int high = -1;
    for (char ch : text) {
        int v;
        if (ch >= '0' && ch <= '9') {
            v = ch - '0';
        } else if (ch >= 'a' && ch <= 'f') {
            v = ch - 'a' + 10;
        } else if (ch >= 'A' && ch <= 'F') {
            v = ch - 'A' + 10;
        } else {
            continue;
        }
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<char>(high * 16 + v));
            high = -1;
        }
    }
    return out;
}

inline std::string to_hex(std::string_view bytes) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    for (char ch : bytes) {
        const auto b = static_cast<unsigned char>(ch);
        if (!out.empty()) out.push_back(' ');
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0x0F]);
    }
    return out;
}

inline std::vector<user_property> two_user_properties() {
    return {{"region", "eu-west"}, {"region", "eu-west-2 \xC3\xA9"}};  // repeated key, order kept
}

inline properties reason_props() {
    properties p;
    p.reason_string = "because";
    p.user_properties = two_user_properties();
    return p;
}

// One packet of every type, in packet_type order (AUTH only for 5.0), canonical for v.
inline std::vector<packet> sample_packets(version v) {
    const bool v5 = v == version::v5;
    std::vector<packet> out;

    connect c;
    c.protocol = v;
    c.clean_start = false;
    c.keep_alive = 60;
    c.client_id = "device-0042";
    will w;
    w.topic = "devices/0042/status";
    w.payload = std::string("offline\0\xFF", 9);
    w.qos = 1;
    w.retain = true;
    if (v5) {
        w.props.payload_format_indicator = 1;
        w.props.message_expiry_interval = 3600;
        w.props.content_type = "text/plain";
        w.props.response_topic = "devices/0042/reply";
        w.props.correlation_data = std::string("\x00\x01\x02", 3);
        w.props.will_delay_interval = 30;
        w.props.user_properties = two_user_properties();
        c.props.session_expiry_interval = 86400;
        c.props.authentication_method = "SCRAM-SHA-1";
        c.props.authentication_data = std::string("\x01\x00\xFE", 3);
        c.props.request_problem_information = 0;
        c.props.request_response_information = 1;
        c.props.receive_maximum = 20;
        c.props.topic_alias_maximum = 10;
        c.props.user_properties = two_user_properties();
        c.props.maximum_packet_size = 1 << 20;
    }
    c.will_message = w;
    c.username = "user";
    c.password = std::string("p\0ss", 4);
    out.emplace_back(c);

    connack ca;
    ca.session_present = v != version::v3_1;  // 3.1 has no Session Present flag
    if (v5) {
        ca.props.session_expiry_interval = 0;
        ca.props.assigned_client_identifier = "auto-7f3a";
        ca.props.server_keep_alive = 120;
        ca.props.authentication_method = "SCRAM-SHA-1";
        ca.props.authentication_data = "server-final";
        ca.props.response_information = "responses/";
        ca.props.server_reference = "other.example:1883";
        ca.props.reason_string = "welcome";
        ca.props.receive_maximum = 100;
        ca.props.topic_alias_maximum = 16;
        ca.props.maximum_qos = 1;
        ca.props.retain_available = 1;
        ca.props.user_properties = two_user_properties();
        ca.props.maximum_packet_size = 65536;
        ca.props.wildcard_subscription_available = 1;
        ca.props.subscription_identifier_available = 0;
        ca.props.shared_subscription_available = 1;
    }
    out.emplace_back(ca);

    publish p;
    p.topic = "devices/0042/telemetry";
    p.payload = R"({"ts": 1732212345123, "temperature": 71.5})";
    p.qos = 2;
    p.retain = true;
    p.dup = true;
    p.packet_id = 0xBEEF;
    if (v5) {
        p.props.payload_format_indicator = 1;
        p.props.message_expiry_interval = 60;
        p.props.content_type = "application/json";
        p.props.response_topic = "devices/0042/reply";
        p.props.correlation_data = "corr";
        p.props.subscription_identifiers = {1, 268435455};
        p.props.topic_alias = 3;
        p.props.user_properties = two_user_properties();
    }
    out.emplace_back(p);

    const properties ack_props = v5 ? reason_props() : properties{};
    out.emplace_back(puback{1, v5 ? reason_code::no_matching_subscribers : reason_code::success, ack_props});
    out.emplace_back(pubrec{2, v5 ? reason_code::quota_exceeded : reason_code::success, ack_props});
    out.emplace_back(pubrel{3, v5 ? reason_code::packet_identifier_not_found : reason_code::success, ack_props});
    out.emplace_back(pubcomp{65535, reason_code::success, ack_props});

    subscribe s;
    s.packet_id = 10;
    s.entries.push_back({"devices/+/telemetry", 1, v5, v5, static_cast<uint8_t>(v5 ? 2 : 0)});
    s.entries.push_back({"factory/#", 2, false, false, static_cast<uint8_t>(v5 ? 1 : 0)});
    s.entries.push_back({"$share/loggers/devices/#", 0, false, v5, 0});
    if (v5) {
        s.props.subscription_identifiers = {42};
        s.props.user_properties = two_user_properties();
    }
    out.emplace_back(s);

    suback sa;
    sa.packet_id = 10;
    sa.codes = {reason_code::granted_qos_1, reason_code::granted_qos_2, reason_code::unspecified_error};
    if (v5) {
        sa.codes.push_back(reason_code::wildcard_subscriptions_not_supported);
        sa.props = reason_props();
    }
    out.emplace_back(sa);

    unsubscribe u;
    u.packet_id = 11;
    u.filters = {"devices/+/telemetry", "factory/#"};
    if (v5) u.props.user_properties = two_user_properties();
    out.emplace_back(u);

    unsuback ua;
    ua.packet_id = 11;
    if (v5) {
        ua.codes = {reason_code::success, reason_code::no_subscription_existed};
        ua.props = reason_props();
    }
    out.emplace_back(ua);

    out.emplace_back(pingreq{});
    out.emplace_back(pingresp{});

    disconnect d;
    if (v5) {
        d.code = reason_code::disconnect_with_will_message;
        d.props.session_expiry_interval = 0;
        d.props.server_reference = "other.example:1883";
        d.props.reason_string = "bye";
        d.props.user_properties = two_user_properties();
    }
    out.emplace_back(d);

    if (v5) {
        auth a;
        a.code = reason_code::continue_authentication;
        a.props.authentication_method = "SCRAM-SHA-1";
        a.props.authentication_data = std::string("\x00\xFF", 2);
        a.props.reason_string = "more";
        a.props.user_properties = two_user_properties();
        out.emplace_back(a);
    }
    return out;
}

// Encodes then decodes one packet (stream-free). Returns the decode result.
inline result<packet> encode_decode(const packet& p, version v, std::string* wire = nullptr) {
    std::string bytes;
    encode(p, v, bytes);
    if (wire) *wire = bytes;
    auto f = parse_frame(bytes, max_packet_size_limit);
    if (!f) return f.error();
    SLUICE_CHECK(f->has_value() && (*f)->total_size() == bytes.size(), "encoder framing broken");
    return decode(**f, bytes, v);
}

// Decodes exactly one packet from bytes (which must hold exactly one packet).
inline result<packet> decode_one(std::string_view bytes, version v, uint32_t max = max_packet_size_limit) {
    auto f = parse_frame(bytes, max);
    if (!f) return f.error();
    if (!f->has_value()) return make_error_code(errc::truncated);
    if ((*f)->total_size() > bytes.size()) return make_error_code(errc::truncated);
    if ((*f)->total_size() < bytes.size()) return make_error_code(errc::trailing_bytes);
    return decode(**f, bytes, v);
}

}  // namespace sluice::mqtt::test
