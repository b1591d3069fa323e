// SPDX-License-Identifier: Apache-2.0
//
// Round trips and malformed-input cases for the state store's value codecs (records.h):
// every field survives encode/decode, every truncation and out-of-range byte is refused
// with errc::corruption, and no input makes a decoder crash.
#include "broker/persist/records.h"

#include <random>

#include <gtest/gtest.h>

namespace sluice::broker::persist {
namespace {

message_properties full_props() {
    message_properties p;
    p.payload_format_indicator = 1;
    p.content_type = "application/json";
    p.response_topic = "reply/to/me";
    p.correlation_data = std::string("\x00\x01\xff", 3);
    p.user_properties = {{"site", "plant-7"}, {"site", "dup keys are kept"}, {"", ""}};
    return p;
}

message_record full_message() {
    message_record m;
    m.topic = "devices/d-1/telemetry";
    m.payload = std::string("{\"t\":1}\x00\xff", 9);
    m.qos = 2;
    m.retain = true;
    m.props = full_props();
    m.expires_at_ms = 1732212345123;
    return m;
}

session_record full_session() {
    session_record s;
    s.client_id = "sensor-42";
    s.protocol_version = 5;
    s.expiry_interval = 0xFFFFFFFF;
    s.disconnected_at_ms = 1732212340000;
    s.subscriptions.push_back({"a/+/c", 1, true, false, 2, 7});
    s.subscriptions.push_back({"$share/g/x/#", 2, false, true, 1, 0});
    s.subscriptions.push_back({"#", 0, false, false, 0, 268435455});
    s.inbound_qos2 = {1, 2, 65535};
    will_record w;
    w.topic = "status/sensor-42";
    w.payload = "offline";
    w.qos = 1;
    w.retain = true;
    w.props = full_props();
    w.message_expiry_interval = 3600;
    w.due_at_ms = 1732212345000;
    s.will = w;
    return s;
}

session_message_record full_session_message() {
    session_message_record m;
    m.order = 0x0102030405060708ULL;
    m.packet_id = 65535;
    m.st = session_message_record::state::await_pubrec;
    m.qos = 2;
    m.retain = false;
    m.subscription_ids = {1, 268435455};
    m.message = full_message();
    return m;
}

TEST(persist_records, message_round_trip) {
    const auto m = full_message();
    auto d = decode_message_record(encode(m));
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(*d, m);

    const message_record empty;
    auto e = decode_message_record(encode(empty));
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, empty);
    EXPECT_FALSE(e->props.content_type.has_value());
}

TEST(persist_records, session_round_trip) {
    const auto s = full_session();
    auto d = decode_session_record(encode(s));
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(*d, s);

    session_record minimal;
    minimal.client_id = "c";
    minimal.protocol_version = 4;
    auto m = decode_session_record(encode(minimal));
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, minimal);
    EXPECT_FALSE(m->will.has_value());

    // A will without a message expiry interval stays without one.
    auto s2 = full_session();
    s2.will->message_expiry_interval.reset();
    auto d2 = decode_session_record(encode(s2));
    ASSERT_TRUE(d2);
    EXPECT_EQ(*d2, s2);
}

TEST(persist_records, session_message_round_trip) {
    const auto m = full_session_message();
    auto d = decode_session_message_record(encode(m));
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(*d, m);

    session_message_record queued;
    queued.order = 1;
    queued.qos = 1;
    queued.message.topic = "t";
    auto q = decode_session_message_record(encode(queued));
    ASSERT_TRUE(q);
    EXPECT_EQ(*q, queued);
    EXPECT_EQ(q->st, session_message_record::state::queued);
}

// Every strict prefix of a valid encoding is refused as corruption, and so is any trailing byte.
template <typename Decode>
void check_truncations(const std::string& bytes, Decode decode) {
    for (size_t n = 0; n < bytes.size(); ++n) {
        auto r = decode(std::string_view(bytes).substr(0, n));
        ASSERT_FALSE(r) << "prefix of " << n << " bytes decoded";
        EXPECT_EQ(r.error(), errc::corruption) << n;
    }
    auto longer = decode(bytes + "x");
    ASSERT_FALSE(longer);
    EXPECT_EQ(longer.error(), errc::corruption);
}

TEST(persist_records, truncated_and_trailing_bytes_are_corruption) {
    check_truncations(encode(full_message()), decode_message_record);
    check_truncations(encode(full_session()), decode_session_record);
    check_truncations(encode(full_session_message()), decode_session_message_record);
    check_truncations(encode(resend_entry_record{7, 0x0102030405060708ull}), decode_resend_entry_record);
    check_truncations(encode(resend_checkpoint_record{42}), decode_resend_checkpoint_record);
    check_truncations(encode(spool_record{3, 16, 1016, 2, 900, 77}), decode_spool_record);
}

TEST(persist_records, spool_records_round_trip_and_keep_their_range_consistent) {
    const spool_record r{0x0102030405060708ull, 16, 4096, 10, 3000, 99};
    auto d = decode_spool_record(encode(r));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, r);
    auto empty = decode_spool_record(encode(spool_record{1, 500, 500, 0, 0, 12}));
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->count, 0u);
    // A range with messages but no bytes, or bytes but no messages, is damage.
    EXPECT_EQ(decode_spool_record(encode(spool_record{1, 500, 500, 3, 0, 12})).error(), errc::corruption);
    EXPECT_EQ(decode_spool_record(encode(spool_record{1, 16, 500, 0, 0, 12})).error(), errc::corruption);
}

TEST(persist_records, resend_records_round_trip_and_keys) {
    const resend_entry_record e{65535, 0xFEDCBA9876543210ull};
    auto d = decode_resend_entry_record(encode(e));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, e);
    EXPECT_EQ(decode_resend_entry_record(encode(resend_entry_record{0, 1})).error(), errc::corruption);
    auto c = decode_resend_checkpoint_record(encode(resend_checkpoint_record{UINT64_MAX}));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->next_offset, UINT64_MAX);

    // A session's resend entries share the prefix its queued messages use, so one
    // erase_prefix per kind drops them; they never parse as a queued-message key.
    const auto key = resend_entry_key("dev-1", 300);
    EXPECT_EQ(key.substr(0, session_message_prefix("dev-1").size()), session_message_prefix("dev-1"));
    std::string id;
    uint16_t slot = 0;
    ASSERT_TRUE(parse_resend_entry_key(key, id, slot));
    EXPECT_EQ(id, "dev-1");
    EXPECT_EQ(slot, 300);
    uint64_t order = 0;
    EXPECT_FALSE(parse_session_message_key(key, id, order));
    EXPECT_FALSE(parse_resend_entry_key(session_message_key("dev-1", 1), id, slot));
    uint32_t partition = 0;
    ASSERT_TRUE(parse_resend_checkpoint_key(resend_checkpoint_key(0x01020304u), partition));
    EXPECT_EQ(partition, 0x01020304u);
    EXPECT_FALSE(parse_resend_checkpoint_key("abc", partition));
}

TEST(persist_records, unknown_version_is_unsupported) {
    auto bytes = encode(full_session());
    bytes[0] = 2;
    auto r = decode_session_record(bytes);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_version);
    auto m = encode(full_message());
    m[0] = 0;
    EXPECT_EQ(decode_message_record(m).error(), errc::unsupported_version);
}

TEST(persist_records, out_of_range_fields_are_corruption) {
    // message: version(1) topic(4+n) payload(4+n) qos retain ...
    message_record m;
    m.topic = "t";
    auto bytes = encode(m);
    const size_t qos_at = 1 + 4 + 1 + 4;
    bytes[qos_at] = 3;
    EXPECT_EQ(decode_message_record(bytes).error(), errc::corruption);
    bytes[qos_at] = 0;
    bytes[qos_at + 1] = 2;  // retain must be 0 or 1
    EXPECT_EQ(decode_message_record(bytes).error(), errc::corruption);
    bytes[qos_at + 1] = 0;
    bytes[qos_at + 2] = 0x10;  // unknown property bit
    EXPECT_EQ(decode_message_record(bytes).error(), errc::corruption);
    bytes[qos_at + 2] = 0;
    ASSERT_TRUE(decode_message_record(bytes));

    session_record s;
    s.client_id = "c";
    auto sb = encode(s);
    sb[1 + 4 + 1] = 6;  // protocol version
    EXPECT_EQ(decode_session_record(sb).error(), errc::corruption);

    session_message_record sm;
    auto smb = encode(sm);
    smb[1 + 8 + 2] = 4;  // state
    EXPECT_EQ(decode_session_message_record(smb).error(), errc::corruption);
}

TEST(persist_records, random_mutations_never_crash) {
    std::mt19937 rng(12345);
    const std::string originals[] = {encode(full_message()), encode(full_session()), encode(full_session_message())};
    int decoded = 0;
    int refused = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string bytes = originals[i % 3];
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f)
            bytes[rng() % bytes.size()] = static_cast<char>(rng());
        const bool ok = (i % 3 == 0)   ? decode_message_record(bytes).has_value()
                        : (i % 3 == 1) ? decode_session_record(bytes).has_value()
                                       : decode_session_message_record(bytes).has_value();
        (ok ? decoded : refused)++;
    }
    // Flipped payload bytes still decode; flipped lengths and enums do not.
    EXPECT_GT(decoded, 0);
    EXPECT_GT(refused, 0);
}

TEST(persist_records, session_message_keys_sort_by_client_then_order) {
    const auto k1 = session_message_key("a", 2);
    const auto k2 = session_message_key("a", 256);
    const auto k3 = session_message_key("ab", 1);
    EXPECT_LT(k1, k2);
    EXPECT_EQ(k1.substr(0, session_message_prefix("a").size()), session_message_prefix("a"));
    EXPECT_NE(k3.substr(0, session_message_prefix("a").size()), session_message_prefix("a"));

    std::string id;
    uint64_t order = 0;
    ASSERT_TRUE(parse_session_message_key(k2, id, order));
    EXPECT_EQ(id, "a");
    EXPECT_EQ(order, 256u);
    ASSERT_TRUE(parse_session_message_key(session_message_key("", UINT64_MAX), id, order));
    EXPECT_EQ(id, "");
    EXPECT_EQ(order, UINT64_MAX);
    EXPECT_FALSE(parse_session_message_key("short", id, order));
    EXPECT_FALSE(parse_session_message_key(k2 + "x", id, order));
}

}  // namespace
}  // namespace sluice::broker::persist
