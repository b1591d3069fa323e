// SPDX-License-Identifier: Apache-2.0
#include "base/utf8.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(utf8_sequence_length, well_formed_and_ill_formed) {
    EXPECT_EQ(utf8_sequence_length(std::string_view("\0", 1)), 1u);
    EXPECT_EQ(utf8_sequence_length("a"), 1u);
    EXPECT_EQ(utf8_sequence_length("\xC3\xA9"), 2u);
    EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC"), 3u);
    EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98\x80"), 4u);
    EXPECT_EQ(utf8_sequence_length("\xF4\x8F\xBF\xBF"), 4u);  // U+10FFFF
    EXPECT_EQ(utf8_sequence_length("\xC0\x80"), 0u);          // overlong U+0000
    EXPECT_EQ(utf8_sequence_length("\xC1\xBF"), 0u);          // overlong
    EXPECT_EQ(utf8_sequence_length("\xE0\x80\xAF"), 0u);      // overlong '/'
    EXPECT_EQ(utf8_sequence_length("\xF0\x80\x80\xAF"), 0u);  // overlong '/'
    EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80"), 0u);      // U+D800 surrogate
    EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80"), 0u);  // U+110000
    EXPECT_EQ(utf8_sequence_length("\xF5\x80\x80\x80"), 0u);
    EXPECT_EQ(utf8_sequence_length("\xF8\x88\x80\x80\x80"), 0u);
    EXPECT_EQ(utf8_sequence_length("\x80"), 0u);  // lone continuation
    EXPECT_EQ(utf8_sequence_length("\xE2\x82"), 0u);
    EXPECT_EQ(utf8_sequence_length("\xC3\x28"), 0u);
}

TEST(check_utf8, tells_null_from_malformed_by_what_comes_first) {
    EXPECT_EQ(check_utf8(""), utf8_status::ok);
    EXPECT_EQ(check_utf8("plain ascii, longer than eight bytes"), utf8_status::ok);
    EXPECT_EQ(check_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), utf8_status::ok);
    EXPECT_EQ(check_utf8(std::string("abcdefgh\0", 9)), utf8_status::null_character);
    EXPECT_EQ(check_utf8(std::string("a\0\xFF", 3)), utf8_status::null_character);
    EXPECT_EQ(check_utf8(std::string("a\xFF\0", 3)), utf8_status::malformed);
    EXPECT_EQ(check_utf8(std::string("\xC3\0", 2)), utf8_status::malformed);
    EXPECT_EQ(check_utf8("abcdefg\xC3"), utf8_status::malformed);  // cut at the end
}

TEST(repair_utf8, keeps_valid_and_replaces_invalid) {
    EXPECT_EQ(repair_utf8("plain"), "plain");
    EXPECT_EQ(repair_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    EXPECT_EQ(repair_utf8(std::string_view("a\0b", 3)),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(repair_utf8("\xFF"), "\xEF\xBF\xBD");
    EXPECT_EQ(repair_utf8("\xC3"), "\xEF\xBF\xBD");                                  // truncated
    EXPECT_EQ(repair_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
    EXPECT_EQ(repair_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
    EXPECT_EQ(repair_utf8("\xF4\x90\x80\x80").size(), 12u);                          // > U+10FFFF
}

// The two policies agree: a string passes check_utf8 exactly when repair leaves it alone,
// and repair's output always passes.
TEST(utf8, check_and_repair_agree_on_random_bytes) {
    std::mt19937 rng(9);
    const unsigned char alphabet[] = {0x00, 'a',  0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED,
                                      0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x9F, 0xA0, 0x8F, 0x90};
    for (int n = 0; n < 200000; ++n) {
        std::string s(rng() % 12, '\0');
        for (auto& c : s)
            c = static_cast<char>(alphabet[rng() % sizeof alphabet]);
        const std::string repaired = repair_utf8(s);
        EXPECT_EQ(check_utf8(s) == utf8_status::ok, repaired == s) << n;
        EXPECT_EQ(check_utf8(repaired), utf8_status::ok) << n;
    }
}

}  // namespace
}  // namespace sluice
