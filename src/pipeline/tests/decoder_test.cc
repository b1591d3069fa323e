// SPDX-License-Identifier: Apache-2.0
//
// Decoder tests: every accepted JSON shape, the compact binary format from hand-written
// bytes (the example in docs/payload-formats.md), and malformed inputs with the exact
// reason strings that end up in dead_letters.reason.
#include "pipeline/decoder.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::pipeline {
namespace {

constexpr int64_t rx = 1'700'000'000'000;  // the broker's receive time in these tests

class decoder_test : public ::testing::Test {
protected:
    // Decodes and expects success.
    const decoded_payload& ok(std::string_view payload, payload_format f = payload_format::auto_detect) {
        auto r = dec_.decode(payload, f, rx, out_);
        EXPECT_TRUE(r.has_value()) << "payload: " << payload << "\nreason: " << dec_.reason();
        EXPECT_TRUE(dec_.reason().empty());
        return out_;
    }
    // Decodes and expects failure with exactly this code and reason.
    void bad(std::string_view payload, errc code, std::string_view reason,
             payload_format f = payload_format::auto_detect) {
        auto r = dec_.decode(payload, f, rx, out_);
        ASSERT_FALSE(r.has_value()) << "payload: " << payload;
        EXPECT_EQ(r.error(), make_error_code(code)) << r.error().message();
        EXPECT_EQ(dec_.reason(), reason) << "payload: " << payload;
    }
    static std::string bytes(std::initializer_list<int> b) {
        std::string s;
        for (int c : b)
            s.push_back(static_cast<char>(c));
        return s;
    }

    payload_decoder dec_;
    decoded_payload out_;
};

TEST_F(decoder_test, json_single_reading_with_ms_timestamp) {
    const auto& p = ok(R"({"ts": 1732212345123, "temperature": 71.5, "humidity": 40.2})");
    EXPECT_FALSE(p.seq.has_value());
    ASSERT_EQ(p.readings.size(), 2u);
    EXPECT_EQ(p.readings[0].time_ms, 1732212345123);
    EXPECT_EQ(p.readings[0].metric_name, "temperature");
    EXPECT_EQ(p.readings[0].metric_id, 0u);
    EXPECT_EQ(p.readings[0].value, 71.5);
    EXPECT_EQ(p.readings[1].metric_name, "humidity");
    EXPECT_EQ(p.readings[1].value, 40.2);
    EXPECT_EQ(p.readings[1].time_ms, 1732212345123);
}

TEST_F(decoder_test, json_timestamp_after_metrics_applies_to_all) {
    const auto& p = ok(R"({"temperature": -3, "ts": 5000})");
    ASSERT_EQ(p.readings.size(), 1u);
    EXPECT_EQ(p.readings[0].time_ms, 5000);
    EXPECT_EQ(p.readings[0].value, -3.0);
}

TEST_F(decoder_test, json_missing_timestamp_means_receive_time) {
    const auto& p = ok(R"({"pressure": 101.3})");
    ASSERT_EQ(p.readings.size(), 1u);
    EXPECT_EQ(p.readings[0].time_ms, rx);
}

TEST_F(decoder_test, json_rfc3339_timestamp) {
    const auto& p = ok(R"({"ts": "2024-11-21T18:05:45.123Z", "v": 1})");
    EXPECT_EQ(p.readings[0].time_ms, 1732212345123);
    const auto& q = ok(R"({"ts": "2024-11-21T20:05:45.123+02:00", "v": 1})");
    EXPECT_EQ(q.readings[0].time_ms, 1732212345123);
}

TEST_F(decoder_test, json_booleans_are_zero_and_one) {
    const auto& p = ok(R"({"door_open": true, "alarm": false})");
    ASSERT_EQ(p.readings.size(), 2u);
    EXPECT_EQ(p.readings[0].value, 1.0);
    EXPECT_EQ(p.readings[1].value, 0.0);
}

TEST_F(decoder_test, json_seq_and_device_are_not_metrics) {
    const auto& p = ok(R"({"seq": 18446744073709551615, "device": "press-7", "rpm": 1200})");
    ASSERT_TRUE(p.seq.has_value());
    EXPECT_EQ(*p.seq, 18446744073709551615ull);
    EXPECT_EQ(p.device, "press-7");
    ASSERT_EQ(p.readings.size(), 1u);
    EXPECT_EQ(p.readings[0].metric_name, "rpm");
}

TEST_F(decoder_test, json_escaped_key_is_unescaped) {
    const auto& p = ok(R"({"temp\u00e9rature": 1})");
    ASSERT_EQ(p.readings.size(), 1u);
    EXPECT_EQ(p.readings[0].metric_name, "temp\xc3\xa9rature");
}

TEST_F(decoder_test, json_batch) {
    const auto& p = ok(R"({"seq": 42, "readings": [
        {"ts": 1000, "temperature": 20.5, "humidity": 40},
        {"ts": "1970-01-01T00:00:02Z", "temperature": 20.75},
        {"humidity": 41}
    ]})");
    ASSERT_TRUE(p.seq.has_value());
    EXPECT_EQ(*p.seq, 42u);
    ASSERT_EQ(p.readings.size(), 4u);
    EXPECT_EQ(p.readings[0].time_ms, 1000);
    EXPECT_EQ(p.readings[1].time_ms, 1000);
    EXPECT_EQ(p.readings[2].time_ms, 2000);
    EXPECT_EQ(p.readings[2].value, 20.75);
    EXPECT_EQ(p.readings[3].time_ms, rx);  // no ts anywhere: receive time
    EXPECT_EQ(p.readings[3].metric_name, "humidity");
}

TEST_F(decoder_test, json_batch_envelope_ts_is_default_for_readings) {
    const auto& p = ok(R"({"readings": [{"a": 1}, {"ts": 7, "a": 2}], "ts": 5})");
    ASSERT_EQ(p.readings.size(), 2u);
    EXPECT_EQ(p.readings[0].time_ms, 5);
    EXPECT_EQ(p.readings[1].time_ms, 7);
}

TEST_F(decoder_test, json_empty_batch_is_valid) {
    const auto& p = ok(R"({"seq": 9, "readings": []})");
    EXPECT_EQ(*p.seq, 9u);
    EXPECT_TRUE(p.readings.empty());
}

TEST_F(decoder_test, json_top_level_array) {
    const auto& p = ok(R"(  [{"ts": 1, "a": 1.5}, {"ts": 2, "b": 2.5}])");
    ASSERT_EQ(p.readings.size(), 2u);
    EXPECT_EQ(p.readings[1].metric_name, "b");
    EXPECT_EQ(p.readings[1].time_ms, 2);
}

TEST_F(decoder_test, json_explicit_format) {
    const auto& p = ok(R"({"a": 1})", payload_format::json);
    EXPECT_EQ(p.readings.size(), 1u);
}

TEST_F(decoder_test, json_non_numeric_metrics_are_rejected_with_the_name) {
    bad(R"({"ts": 1, "x": "hot"})", errc::non_numeric_metric, "metric 'x' is not a number (string)");
    bad(R"({"x": null})", errc::non_numeric_metric, "metric 'x' is not a number (null)");
    bad(R"({"gps": {"lat": 1}})", errc::non_numeric_metric, "metric 'gps' is not a number (object)");
    bad(R"({"v": [1, 2]})", errc::non_numeric_metric, "metric 'v' is not a number (array)");
    bad(R"({"readings": [{"a": 1}, {"b": "x"}]})", errc::non_numeric_metric,
        "readings[1]: metric 'b' is not a number (string)");
}

TEST_F(decoder_test, json_bad_timestamps) {
    bad(R"({"ts": 1.5, "a": 1})", errc::bad_timestamp, "'ts' must be integer Unix milliseconds or an RFC 3339 string");
    bad(R"({"ts": -1, "a": 1})", errc::bad_timestamp, "'ts' -1 is out of range");
    bad(R"({"ts": "yesterday", "a": 1})", errc::bad_timestamp, "'ts' \"yesterday\" is not an RFC 3339 timestamp");
    bad(R"({"ts": "2024-02-30T00:00:00Z", "a": 1})", errc::bad_timestamp,
        "'ts' \"2024-02-30T00:00:00Z\" is not an RFC 3339 timestamp");
    bad(R"({"ts": true, "a": 1})", errc::bad_timestamp,
        "'ts' must be integer Unix milliseconds or an RFC 3339 string, not boolean");
    bad(R"([{"a": 1}, {"a": 1}, {"ts": null, "a": 1}])", errc::bad_timestamp,
        "readings[2]: 'ts' must be integer Unix milliseconds or an RFC 3339 string, not null");
}

TEST_F(decoder_test, json_shape_errors) {
    bad(R"(42)", errc::bad_json_shape, "JSON top level is a number; expected an object or an array",
        payload_format::json);
    bad(R"("x")", errc::bad_json_shape, "JSON top level is a string; expected an object or an array",
        payload_format::json);
    bad(R"({"ts": 5})", errc::bad_json_shape, "JSON object has no metric members");
    bad(R"({})", errc::bad_json_shape, "JSON object has no metric members");
    bad(R"({"a": 1, "readings": []})", errc::bad_json_shape, "batch has metric 'a' beside 'readings'");
    bad(R"({"readings": {"a": 1}})", errc::bad_json_shape, "'readings' must be an array");
    bad(R"({"readings": [1]})", errc::bad_json_shape, "readings[0] is not an object");
    bad(R"([{"a": 1}, {"ts": 3}])", errc::bad_json_shape, "readings[1] has no metric members");
    bad(R"([{"seq": 3, "a": 1}])", errc::bad_json_shape, "readings[0]: 'seq' is only allowed at the top level");
    bad(R"({"seq": -1, "a": 1})", errc::bad_json_shape, "'seq' must be an unsigned 64-bit integer");
    bad(R"({"seq": "1", "a": 1})", errc::bad_json_shape, "'seq' must be an unsigned 64-bit integer");
    bad(R"({"device": 7, "a": 1})", errc::bad_json_shape, "'device' must be a string");
    bad(R"({"ts": 1, "ts": 2, "a": 1})", errc::bad_json_shape, "duplicate 'ts'");
    bad(R"({"": 1})", errc::bad_json_shape, "metric with an empty name");
}

TEST_F(decoder_test, json_syntax_errors_name_the_byte) {
    bad(R"({"ts": 1, "a": })", errc::invalid_json, "invalid JSON at byte 15: syntax error");
    bad(R"({"a": 1} x)", errc::invalid_json, "invalid JSON at byte 0: unbalanced braces or brackets");
    bad(R"({"a": 1)", errc::invalid_json, "invalid JSON at byte 0: unbalanced braces or brackets");
    bad(R"({"a": tru})", errc::invalid_json, "invalid JSON at byte 6: syntax error");
    bad(R"({"a": 1, "b": 2, "c": 01})", errc::invalid_json, "invalid JSON at byte 22: bad number");
    bad(R"([{"a": 1}] [])", errc::invalid_json, "invalid JSON at byte 11: trailing content");
    bad(R"({"a": 1e999})", errc::invalid_json, "invalid JSON at byte 6: bad number");
    bad(R"({"a: 1})", errc::invalid_json, "invalid JSON: unclosed string");
    bad("\xA1\x00", errc::invalid_json, "invalid JSON: invalid UTF-8", payload_format::json);
}

TEST_F(decoder_test, auto_detect) {
    EXPECT_EQ(detect_format(" \r\n\t{"), payload_format::json);
    EXPECT_EQ(detect_format("["), payload_format::json);
    EXPECT_EQ(detect_format("\xA1"), payload_format::binary);
    EXPECT_EQ(detect_format("\xAF"), payload_format::binary);
    EXPECT_EQ(detect_format("hello"), std::nullopt);
    EXPECT_EQ(detect_format("   "), std::nullopt);
    EXPECT_EQ(detect_format(""), std::nullopt);
    bad("", errc::empty_payload, "empty payload");
    bad(" \n", errc::empty_payload, "empty payload");
    bad("hello", errc::unknown_format,
        "unrecognized payload: first byte 0x68 is neither JSON ('{' or '[') nor a compact binary magic byte (0xA1)");
    bad("", errc::empty_payload, "empty payload", payload_format::json);
}

TEST_F(decoder_test, buffers_are_reused_across_sizes) {
    std::string big = R"({"readings": [)";
    for (int i = 0; i < 2000; ++i)
        big += std::string(i ? "," : "") + R"({"ts": )" + std::to_string(i) + R"(, "m": 1})";
    big += "]}";
    EXPECT_EQ(ok(big).readings.size(), 2000u);
    EXPECT_EQ(ok(R"({"a": 2})").readings.size(), 1u);
    EXPECT_EQ(out_.readings[0].value, 2.0);
    EXPECT_EQ(ok(big).readings[1999].time_ms, 1999);
}

TEST(rfc3339, parses_and_rejects) {
    EXPECT_EQ(parse_rfc3339_ms("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_rfc3339_ms("1970-01-01t00:00:01.5z"), 1500);
    EXPECT_EQ(parse_rfc3339_ms("1970-01-01 00:00:00.123456789Z"), 123);
    EXPECT_EQ(parse_rfc3339_ms("2000-02-29T00:00:00Z"), 951782400000);
    EXPECT_EQ(parse_rfc3339_ms("1970-01-01T00:00:00-01:30"), 5400000);
    EXPECT_EQ(parse_rfc3339_ms("2016-12-31T23:59:60Z"), parse_rfc3339_ms("2016-12-31T23:59:59Z"));
    EXPECT_EQ(parse_rfc3339_ms("1900-02-29T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339_ms("2024-11-21T18:05:45"), std::nullopt);  // no offset
    EXPECT_EQ(parse_rfc3339_ms("2024-11-21T18:05:45.Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339_ms("2024-13-01T00:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339_ms("2024-11-21T24:00:00Z"), std::nullopt);
    EXPECT_EQ(parse_rfc3339_ms("2024-11-21T18:05:45Zjunk"), std::nullopt);
    EXPECT_EQ(parse_rfc3339_ms("2024-11-21T18:05:45+0200"), std::nullopt);
    EXPECT_EQ(parse_rfc3339_ms(""), std::nullopt);
}

// The worked example of docs/payload-formats.md, byte for byte.
TEST_F(decoder_test, binary_documented_example) {
    const std::string payload = bytes({0xA1, 0x01, 0x2A, 0x23, 0xC9, 0xE6, 0x4F, 0x93, 0x01, 0x03,  //
                                       0x00, 0x03, 0x11, 0xCB, 0x02,                                //
                                       0x00, 0x04, 0x11, 0x92, 0x01,                                //
                                       0x64, 0x03, 0x11, 0xCC, 0x02});
    const auto& p = ok(payload);
    ASSERT_TRUE(p.seq.has_value());
    EXPECT_EQ(*p.seq, 42u);
    EXPECT_TRUE(p.seq_restart);
    ASSERT_EQ(p.readings.size(), 3u);
    EXPECT_EQ(p.readings[0].time_ms, 1732212345123);
    EXPECT_EQ(p.readings[0].metric_id, 3u);
    EXPECT_TRUE(p.readings[0].metric_name.empty());
    EXPECT_EQ(p.readings[0].value, 71.5);
    EXPECT_EQ(p.readings[1].metric_id, 4u);
    EXPECT_EQ(p.readings[1].value, 40.2);
    EXPECT_EQ(p.readings[2].time_ms, 1732212345223);
    EXPECT_EQ(p.readings[2].value, 71.6);
}

TEST_F(decoder_test, binary_value_kinds) {
    // int8 -5 scale 0; int32 -100000 scale 3; float32 0.5; float64 0.1; varint id 300.
    const std::string payload =
        bytes({0xA1, 0x00, 0x00, 0,    0,    0,    0,    0,    0,    0x04, 0x00, 0x01, 0x00, 0xFB,
               0x01, 0x01, 0x23, 0x60, 0x79, 0xFE, 0xFF, 0x00, 0xAC, 0x02, 0x30, 0x00, 0x00, 0x00,
               0x3F, 0x00, 0x01, 0x40, 0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0x3F});
    const auto& p = ok(payload, payload_format::binary);
    ASSERT_EQ(p.readings.size(), 4u);
    EXPECT_FALSE(p.seq_restart);
    EXPECT_EQ(*p.seq, 0u);
    EXPECT_EQ(p.readings[0].value, -5.0);
    EXPECT_EQ(p.readings[0].time_ms, 0);
    EXPECT_EQ(p.readings[1].value, -100.0);
    EXPECT_EQ(p.readings[1].time_ms, 1);
    EXPECT_EQ(p.readings[2].metric_id, 300u);
    EXPECT_EQ(p.readings[2].value, 0.5);
    EXPECT_EQ(p.readings[3].value, 0.1);
}

TEST_F(decoder_test, binary_zero_readings_carries_only_seq) {
    const auto& p = ok(bytes({0xA1, 0x00, 0x05, 1, 0, 0, 0, 0, 0, 0x00}));
    EXPECT_EQ(*p.seq, 5u);
    EXPECT_TRUE(p.readings.empty());
}

TEST_F(decoder_test, binary_malformed) {
    const auto b = payload_format::binary;
    bad(bytes({0xA2, 0x00}), errc::bad_binary, "binary: unsupported version 2");
    bad(bytes({0x7B}), errc::bad_binary, "binary: bad magic byte 0x7b (expected 0xA1)", b);
    bad(bytes({0xA1}), errc::bad_binary, "binary: truncated header (flags)");
    bad(bytes({0xA1, 0x02, 0x00}), errc::bad_binary, "binary: reserved flag bits set (0x02)");
    bad(bytes({0xA1, 0x00, 0x80}), errc::bad_binary, "binary: truncated or overlong sequence number");
    bad(bytes({0xA1, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02}), errc::bad_binary,
        "binary: truncated or overlong sequence number");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0}), errc::bad_binary, "binary: truncated header (time, count)");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x01, 0x00, 0x05, 0x00, 0x01}), errc::bad_binary,
        "binary: truncated reading 1");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x10, 0x05}), errc::bad_binary,
        "binary: truncated reading 0");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x50, 0x05}), errc::bad_binary,
        "binary: reading 0: unknown value kind 5");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x0A, 0x05}), errc::bad_binary,
        "binary: reading 0: bad decimal scale 10 for value kind 0");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x31, 0, 0, 0, 0}), errc::bad_binary,
        "binary: reading 0: bad decimal scale 1 for value kind 3");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00, 0x05}),
        errc::bad_binary, "binary: reading 0: metric id 4294967296 exceeds 32 bits");
    bad(bytes({0xA1, 0x00, 0x00, 0,    0,    0,    0,    0,    0,    0x01, 0x80,
               0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01, 0x00, 0x05}),
        errc::bad_binary, "binary: reading 0: time delta 562949953421312 ms is too large");
    bad(bytes({0xA1, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x00, 0x05, 0xEE, 0xEE}), errc::bad_binary,
        "binary: 2 trailing bytes after 1 readings");
}

}  // namespace
}  // namespace sluice::pipeline
