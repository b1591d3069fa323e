// SPDX-License-Identifier: Apache-2.0
//
// JSON escaping (always valid JSON, whatever the bytes), numbers, and the payload helpers
// of /api/dead-letters.
#include "http/json.h"

#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

TEST(api_json, escapes_specials_controls_and_invalid_utf8) {
    EXPECT_EQ(json_string("plain"), "\"plain\"");
    EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(json_string("l1\nl2\r\t"), "\"l1\\nl2\\r\\t\"");
    EXPECT_EQ(json_string(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
    EXPECT_EQ(json_string(std::string("a\0b", 3)), "\"a\\u0000b\"");
    EXPECT_EQ(json_string("</script>"), "\"\\u003c/script>\"");
    // Valid multi-byte sequences pass through unchanged.
    EXPECT_EQ(json_string("température 温度 \xF0\x9F\x8C\xA1"), "\"température 温度 \xF0\x9F\x8C\xA1\"");
    // Invalid: lone continuation, truncated sequence, overlong '/', a surrogate, > U+10FFFF.
    EXPECT_EQ(json_string("\x80"), "\"\\ufffd\"");
    EXPECT_EQ(json_string("x\xC3"), "\"x\\ufffd\"");
    EXPECT_EQ(json_string("\xC0\xAF"), "\"\\ufffd\\ufffd\"");
    EXPECT_EQ(json_string("\xED\xA0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
    EXPECT_EQ(json_string("\xF4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

TEST(api_json, numbers_round_trip_and_non_finite_is_null) {
    auto num = [](double v) {
        std::string s;
        append_json_number(s, v);
        return s;
    };
    EXPECT_EQ(num(0), "0");
    EXPECT_EQ(num(71.5), "71.5");
    EXPECT_EQ(num(0.1), "0.1");
    EXPECT_EQ(num(-3), "-3");
    EXPECT_EQ(num(1e300), "1e+300");
    EXPECT_EQ(num(std::numeric_limits<double>::quiet_NaN()), "null");
    EXPECT_EQ(num(std::numeric_limits<double>::infinity()), "null");
}

TEST(api_payload, base64_and_printable_checks) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("f"), "Zg==");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_EQ(base64_encode("foo"), "Zm9v");
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_encode(std::string("\x00\xff\xfe", 3)), "AP/+");
    EXPECT_TRUE(is_printable_utf8("{\"temperature\": 71.5}\n"));
    EXPECT_TRUE(is_printable_utf8("°C"));
    EXPECT_FALSE(is_printable_utf8(std::string("\x01\x02", 2)));
    EXPECT_FALSE(is_printable_utf8("\xff"));
}

}  // namespace
}  // namespace sluice::http
