// SPDX-License-Identifier: Apache-2.0
//
// Byte layouts of the state store's values (see records.h and
// docs/decisions/0002-session-persistence.md "Values"). Little-endian, length-prefixed,
// one leading version byte per record so fields can be added in a later version.
#include "broker/persist/records.h"

#include "base/assert.h"
#include "base/endian.h"

namespace sluice::broker::persist {
namespace {

constexpr uint8_t k_record_version = 1;

constexpr uint8_t k_prop_payload_format = 1u << 0;
constexpr uint8_t k_prop_content_type = 1u << 1;
constexpr uint8_t k_prop_response_topic = 1u << 2;
constexpr uint8_t k_prop_correlation_data = 1u << 3;
constexpr uint8_t k_prop_all = 0x0F;

constexpr uint8_t k_sub_no_local = 1u << 0;
constexpr uint8_t k_sub_retain_as_published = 1u << 1;

class writer {
public:
    explicit writer(std::string& out) : out_(out) {}
    void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u16(uint16_t v) { append_le16(out_, v); }
    void u32(uint32_t v) { append_le32(out_, v); }
    void u64(uint64_t v) { append_le64(out_, v); }
    void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
    void boolean(bool v) { u8(v ? 1 : 0); }
    void str(std::string_view s) {
        SLUICE_CHECK(s.size() <= UINT32_MAX, "string of %zu bytes too long to persist", s.size());
        u32(static_cast<uint32_t>(s.size()));
        out_.append(s);
    }

private:
    std::string& out_;
};

// Bounds-checked reader: once a read fails every later read fails too, so decoders check
// ok() once at the end of a group of fields.
class reader {
public:
    explicit reader(std::string_view in) : in_(in) {}
    bool ok() const { return ok_; }
    bool at_end() const { return ok_ && pos_ == in_.size(); }
    void fail() { ok_ = false; }

    uint8_t u8() { return take(1) ? static_cast<uint8_t>(in_[pos_ - 1]) : 0; }
    uint16_t u16() { return take(2) ? load_le16(in_.data() + pos_ - 2) : 0; }
    uint32_t u32() { return take(4) ? load_le32(in_.data() + pos_ - 4) : 0; }
    uint64_t u64() { return take(8) ? load_le64(in_.data() + pos_ - 8) : 0; }
    int64_t i64() { return static_cast<int64_t>(u64()); }
    bool boolean() {
        const uint8_t v = u8();
        if (v > 1) ok_ = false;
        return v == 1;
    }
    uint8_t qos() {
        const uint8_t v = u8();
        if (v > 2) ok_ = false;
        return v;
    }
    std::string str() {
        const uint32_t n = u32();
        if (!ok_ || in_.size() - pos_ < n) {
            ok_ = false;
            return {};
        }
        std::string s(in_.substr(pos_, n));
        pos_ += n;
        return s;
    }

private:
    // Consumes n bytes, or fails when fewer are left.
    bool take(size_t n) {
        if (!ok_ || in_.size() - pos_ < n) {
            ok_ = false;
            return false;
        }
        pos_ += n;
        return true;
    }
    std::string_view in_;
    size_t pos_ = 0;
    bool ok_ = true;
};

void check_qos(uint8_t qos) {
    SLUICE_CHECK(qos <= 2, "QoS %u out of range", qos);
}

void write_props(writer& w, const message_properties& p) {
    uint8_t present = 0;
    if (p.payload_format_indicator) present |= k_prop_payload_format;
    if (p.content_type) present |= k_prop_content_type;
    if (p.response_topic) present |= k_prop_response_topic;
    if (p.correlation_data) present |= k_prop_correlation_data;
    w.u8(present);
    if (p.payload_format_indicator) w.u8(*p.payload_format_indicator);
    if (p.content_type) w.str(*p.content_type);
    if (p.response_topic) w.str(*p.response_topic);
    if (p.correlation_data) w.str(*p.correlation_data);
    SLUICE_CHECK(p.user_properties.size() <= UINT32_MAX, "too many user properties");
    w.u32(static_cast<uint32_t>(p.user_properties.size()));
    for (const auto& [key, value] : p.user_properties) {
        w.str(key);
        w.str(value);
    }
}

message_properties read_props(reader& r) {
    message_properties p;
    const uint8_t present = r.u8();
    if ((present & ~k_prop_all) != 0) r.fail();
    if (present & k_prop_payload_format) p.payload_format_indicator = r.u8();
    if (present & k_prop_content_type) p.content_type = r.str();
    if (present & k_prop_response_topic) p.response_topic = r.str();
    if (present & k_prop_correlation_data) p.correlation_data = r.str();
    const uint32_t n = r.u32();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string key = r.str();
        std::string value = r.str();
        p.user_properties.emplace_back(std::move(key), std::move(value));
    }
    return p;
}

void write_message(writer& w, const message_record& m) {
    check_qos(m.qos);
    w.str(m.topic);
    w.str(m.payload);
    w.u8(m.qos);
    w.boolean(m.retain);
    write_props(w, m.props);
    w.i64(m.expires_at_ms);
}

message_record read_message(reader& r) {
    message_record m;
    m.topic = r.str();
    m.payload = r.str();
    m.qos = r.qos();
    m.retain = r.boolean();
    m.props = read_props(r);
    m.expires_at_ms = r.i64();
    return m;
}

// Reads and checks the leading version byte.
std::error_code read_version(reader& r) {
    const uint8_t v = r.u8();
    if (!r.ok()) return make_error_code(errc::corruption);
    if (v != k_record_version) return make_error_code(errc::unsupported_version);
    return {};
}

}  // namespace

std::string encode(const message_record& m) {
    std::string out;
    out.reserve(64 + m.topic.size() + m.payload.size());
    writer w(out);
    w.u8(k_record_version);
    write_message(w, m);
    return out;
}

std::string encode(const session_record& s) {
    std::string out;
    writer w(out);
    SLUICE_CHECK(s.protocol_version >= 3 && s.protocol_version <= 5, "protocol version %u", s.protocol_version);
    w.u8(k_record_version);
    w.str(s.client_id);
    w.u8(s.protocol_version);
    w.u32(s.expiry_interval);
    w.i64(s.disconnected_at_ms);
    w.u32(static_cast<uint32_t>(s.subscriptions.size()));
    for (const auto& sub : s.subscriptions) {
        check_qos(sub.qos);
        SLUICE_CHECK(sub.retain_handling <= 2, "retain handling %u", sub.retain_handling);
        w.str(sub.filter);
        w.u8(sub.qos);
        uint8_t flags = 0;
        if (sub.no_local) flags |= k_sub_no_local;
        if (sub.retain_as_published) flags |= k_sub_retain_as_published;
        w.u8(flags);
        w.u8(sub.retain_handling);
        w.u32(sub.subscription_id);
    }
    w.u32(static_cast<uint32_t>(s.inbound_qos2.size()));
    for (uint16_t id : s.inbound_qos2)
        w.u16(id);
    w.boolean(s.will.has_value());
    if (s.will) {
        const will_record& will = *s.will;
        check_qos(will.qos);
        w.str(will.topic);
        w.str(will.payload);
        w.u8(will.qos);
        w.boolean(will.retain);
        write_props(w, will.props);
        w.boolean(will.message_expiry_interval.has_value());
        if (will.message_expiry_interval) w.u32(*will.message_expiry_interval);
        w.i64(will.due_at_ms);
    }
    return out;
}

std::string encode(const session_message_record& m) {
    std::string out;
    out.reserve(64 + m.message.topic.size() + m.message.payload.size());
    writer w(out);
    check_qos(m.qos);
    SLUICE_CHECK(m.st <= session_message_record::state::await_pubcomp, "session message state %u",
                 static_cast<unsigned>(m.st));
    w.u8(k_record_version);
    w.u64(m.order);
    w.u16(m.packet_id);
    w.u8(static_cast<uint8_t>(m.st));
    w.u8(m.qos);
    w.boolean(m.retain);
    w.u32(static_cast<uint32_t>(m.subscription_ids.size()));
    for (uint32_t id : m.subscription_ids)
        w.u32(id);
    write_message(w, m.message);
    return out;
}

result<message_record> decode_message_record(std::string_view bytes) {
    reader r(bytes);
    if (auto ec = read_version(r)) return ec;
    message_record m = read_message(r);
    if (!r.at_end()) return errc::corruption;
    return m;
}

result<session_record> decode_session_record(std::string_view bytes) {
    reader r(bytes);
    if (auto ec = read_version(r)) return ec;
    session_record s;
    s.client_id = r.str();
    s.protocol_version = r.u8();
    if (s.protocol_version < 3 || s.protocol_version > 5) r.fail();
    s.expiry_interval = r.u32();
    s.disconnected_at_ms = r.i64();
    const uint32_t subs = r.u32();
    for (uint32_t i = 0; i < subs && r.ok(); ++i) {
        subscription_record sub;
        sub.filter = r.str();
        sub.qos = r.qos();
        const uint8_t flags = r.u8();
        if ((flags & ~(k_sub_no_local | k_sub_retain_as_published)) != 0) r.fail();
        sub.no_local = (flags & k_sub_no_local) != 0;
        sub.retain_as_published = (flags & k_sub_retain_as_published) != 0;
        sub.retain_handling = r.u8();
        if (sub.retain_handling > 2) r.fail();
        sub.subscription_id = r.u32();
        s.subscriptions.push_back(std::move(sub));
    }
    const uint32_t ids = r.u32();
    for (uint32_t i = 0; i < ids && r.ok(); ++i)
        s.inbound_qos2.push_back(r.u16());
    if (r.boolean()) {
        will_record will;
        will.topic = r.str();
        will.payload = r.str();
        will.qos = r.qos();
        will.retain = r.boolean();
        will.props = read_props(r);
        if (r.boolean()) will.message_expiry_interval = r.u32();
        will.due_at_ms = r.i64();
        s.will = std::move(will);
    }
    if (!r.at_end()) return errc::corruption;
    return s;
}

result<session_message_record> decode_session_message_record(std::string_view bytes) {
    reader r(bytes);
    if (auto ec = read_version(r)) return ec;
    session_message_record m;
    m.order = r.u64();
    m.packet_id = r.u16();
    const uint8_t st = r.u8();
    if (st > static_cast<uint8_t>(session_message_record::state::await_pubcomp)) r.fail();
    m.st = static_cast<session_message_record::state>(st);
    m.qos = r.qos();
    m.retain = r.boolean();
    const uint32_t ids = r.u32();
    for (uint32_t i = 0; i < ids && r.ok(); ++i)
        m.subscription_ids.push_back(r.u32());
    m.message = read_message(r);
    if (!r.at_end()) return errc::corruption;
    return m;
}

std::string encode(const resend_entry_record& e) {
    std::string out;
    writer w(out);
    w.u8(k_record_version);
    w.u16(e.packet_id);
    w.u64(e.fingerprint);
    return out;
}

result<resend_entry_record> decode_resend_entry_record(std::string_view bytes) {
    reader r(bytes);
    if (auto ec = read_version(r)) return ec;
    resend_entry_record e;
    e.packet_id = r.u16();
    e.fingerprint = r.u64();
    if (!r.at_end() || e.packet_id == 0) return errc::corruption;
    return e;
}

std::string encode(const resend_checkpoint_record& c) {
    std::string out;
    writer w(out);
    w.u8(k_record_version);
    w.u64(c.next_offset);
    return out;
}

result<resend_checkpoint_record> decode_resend_checkpoint_record(std::string_view bytes) {
    reader r(bytes);
    if (auto ec = read_version(r)) return ec;
    resend_checkpoint_record c;
    c.next_offset = r.u64();
    if (!r.at_end()) return errc::corruption;
    return c;
}

std::string encode(const spool_record& s) {
    SLUICE_CHECK(s.read_offset <= s.end_offset, "spool range [%llu, %llu)",
                 static_cast<unsigned long long>(s.read_offset), static_cast<unsigned long long>(s.end_offset));
    std::string out;
    writer w(out);
    w.u8(k_record_version);
    w.u64(s.file_id);
    w.u64(s.read_offset);
    w.u64(s.end_offset);
    w.u64(s.count);
    w.u64(s.bytes);
    w.u64(s.last_order);
    return out;
}

result<spool_record> decode_spool_record(std::string_view bytes) {
    reader r(bytes);
    if (auto ec = read_version(r)) return ec;
    spool_record s;
    s.file_id = r.u64();
    s.read_offset = r.u64();
    s.end_offset = r.u64();
    s.count = r.u64();
    s.bytes = r.u64();
    s.last_order = r.u64();
    if (!r.at_end() || s.read_offset > s.end_offset || (s.count == 0) != (s.read_offset == s.end_offset))
        return errc::corruption;
    return s;
}

std::string session_message_prefix(std::string_view client_id) {
    SLUICE_CHECK(client_id.size() <= 0xFFFF, "client id of %zu bytes", client_id.size());
    std::string key;
    key.reserve(2 + client_id.size() + 8);
    append_be16(key, static_cast<uint16_t>(client_id.size()));
    key.append(client_id);
    return key;
}

std::string session_message_key(std::string_view client_id, uint64_t order) {
    std::string key = session_message_prefix(client_id);
    append_be64(key, order);  // big-endian: keys sort in order
    return key;
}

bool parse_session_message_key(std::string_view key, std::string& client_id, uint64_t& order) {
    if (key.size() < 10) return false;
    const size_t n = load_be16(key.data());
    if (key.size() != 2 + n + 8) return false;
    client_id.assign(key.substr(2, n));
    order = load_be64(key.data() + 2 + n);
    return true;
}

std::string resend_entry_key(std::string_view client_id, uint16_t slot) {
    std::string key = session_message_prefix(client_id);
    append_be16(key, slot);
    return key;
}

bool parse_resend_entry_key(std::string_view key, std::string& client_id, uint16_t& slot) {
    if (key.size() < 4) return false;
    const size_t n = load_be16(key.data());
    if (key.size() != 2 + n + 2) return false;
    client_id.assign(key.substr(2, n));
    slot = load_be16(key.data() + 2 + n);
    return true;
}

std::string resend_checkpoint_key(uint32_t partition) {
    std::string key;
    append_be32(key, partition);
    return key;
}

bool parse_resend_checkpoint_key(std::string_view key, uint32_t& partition) {
    if (key.size() != 4) return false;
    partition = load_be32(key.data());
    return true;
}

}  // namespace sluice::broker::persist
