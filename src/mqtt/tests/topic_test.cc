// SPDX-License-Identifier: Apache-2.0
//
// UTF-8 and topic rules (spec 5.0 §1.5.4, §4.7, §4.8.2), including the non-normative examples
// of §4.7.1 ("sport/tennis/#" matches "sport/tennis" ...) and the $-topic rule of §4.7.2.
#include "mqtt/topic.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::mqtt {
namespace {

TEST(utf8, accepts_well_formed) {
    EXPECT_TRUE(valid_utf8_string(""));
    EXPECT_TRUE(valid_utf8_string("plain ascii text that is longer than eight bytes"));
    EXPECT_TRUE(valid_utf8_string("caf\xC3\xA9"));             // U+00E9
    EXPECT_TRUE(valid_utf8_string("\xE2\x82\xAC"));            // U+20AC
    EXPECT_TRUE(valid_utf8_string("\xF0\x9F\x98\x80 emoji"));  // U+1F600
    EXPECT_TRUE(valid_utf8_string("\xF4\x8F\xBF\xBF"));        // U+10FFFF
    EXPECT_TRUE(
        valid_utf8_string("\xEF\xBB\xBF"
                          "bom"));  // U+FEFF is allowed
    EXPECT_TRUE(valid_utf8_string(std::string(65535, 'a')));
}

TEST(utf8, rejects_ill_formed) {
    EXPECT_FALSE(valid_utf8_string(std::string(65536, 'a')));
    EXPECT_EQ(check_utf8(std::string("a\0b", 3)), utf8_status::null_character);
    EXPECT_EQ(check_utf8(std::string("abcdefgh\0", 9)), utf8_status::null_character);
    EXPECT_EQ(check_utf8("\xC0\x80"), utf8_status::malformed);          // overlong U+0000
    EXPECT_EQ(check_utf8("\xE0\x80\xAF"), utf8_status::malformed);      // overlong '/'
    EXPECT_EQ(check_utf8("\xF0\x80\x80\xAF"), utf8_status::malformed);  // overlong '/'
    EXPECT_EQ(check_utf8("\xED\xA0\x80"), utf8_status::malformed);      // U+D800 surrogate
    EXPECT_EQ(check_utf8("\xED\xBF\xBF"), utf8_status::malformed);      // U+DFFF surrogate
    EXPECT_EQ(check_utf8("\xF4\x90\x80\x80"), utf8_status::malformed);  // U+110000
    EXPECT_EQ(check_utf8("\xF8\x88\x80\x80\x80"), utf8_status::malformed);
    EXPECT_EQ(check_utf8("\x80"), utf8_status::malformed);         // lone continuation
    EXPECT_EQ(check_utf8("abcdefg\xC3"), utf8_status::malformed);  // cut at the end
    EXPECT_EQ(check_utf8("\xE2\x82"), utf8_status::malformed);
    EXPECT_EQ(check_utf8("\xC3\x28"), utf8_status::malformed);
    EXPECT_EQ(check_utf8("\xFF"), utf8_status::malformed);
}

TEST(topic_name, rules) {
    EXPECT_TRUE(valid_topic_name("devices/0042/telemetry"));
    EXPECT_TRUE(valid_topic_name("/"));
    EXPECT_TRUE(valid_topic_name("$SYS/broker/load"));
    EXPECT_TRUE(valid_topic_name("a b/ c"));
    EXPECT_FALSE(valid_topic_name(""));
    EXPECT_FALSE(valid_topic_name("a/+/b"));
    EXPECT_FALSE(valid_topic_name("a/#"));
    EXPECT_FALSE(valid_topic_name("a+"));
    EXPECT_FALSE(valid_topic_name(std::string("a\0", 2)));
}

TEST(topic_filter, rules) {
    for (const char* ok : {"#", "+", "/", "+/+", "/+", "a/#", "sport/tennis/+", "sport/+/player1", "+/tennis/#", "a//b",
                           "$SYS/#", "$share/g/a/b", "$share/group/#", "$share/g/+/x"}) {
        EXPECT_TRUE(valid_topic_filter(ok)) << ok;
    }
    for (const char* bad : {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/+b", "#/a", "a/b#", "$share/",
                            "$share/g", "$share/g/", "$share//a", "$share/g+/a", "$share/#/a", "$share/g/a#"}) {
        EXPECT_FALSE(valid_topic_filter(bad)) << bad;
    }
}

TEST(parse_shared, splits_group_and_filter) {
    auto s = parse_shared("$share/loggers/devices/+/telemetry");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->group, "loggers");
    EXPECT_EQ(s->filter, "devices/+/telemetry");
    EXPECT_FALSE(parse_shared("devices/#"));
    EXPECT_FALSE(parse_shared("$share/g"));
    EXPECT_FALSE(parse_shared("$SHARE/g/a"));
}

TEST(topic_filter, examples_from_the_spec) {
    // MQTT 5.0 §4.7.1.2 / §4.7.1.3 non-normative examples.
    EXPECT_TRUE(valid_topic_filter("sport/tennis/player1/#"));
    EXPECT_TRUE(valid_topic_filter("sport/tennis/#"));
    EXPECT_FALSE(valid_topic_filter("sport/tennis#"));
    EXPECT_FALSE(valid_topic_filter("sport/tennis/#/ranking"));
    EXPECT_TRUE(valid_topic_filter("#"));
    EXPECT_TRUE(valid_topic_filter("+"));
    EXPECT_TRUE(valid_topic_filter("+/tennis/#"));
    EXPECT_FALSE(valid_topic_filter("sport+"));
    EXPECT_TRUE(valid_topic_filter("sport/+/player1"));
    EXPECT_TRUE(valid_topic_filter("/+"));
    EXPECT_TRUE(valid_topic_filter("+/+"));
    EXPECT_TRUE(valid_topic_filter("/"));
    EXPECT_TRUE(valid_topic_filter("a//b"));
    EXPECT_FALSE(valid_topic_filter(""));
    EXPECT_FALSE(valid_topic_filter("a/++"));
    EXPECT_FALSE(valid_topic_filter("##"));
    EXPECT_FALSE(valid_topic_filter(std::string_view("a\0b", 3)));
    EXPECT_FALSE(valid_topic_filter(std::string(65536, 'a')));
    EXPECT_TRUE(valid_topic_filter(std::string(65535, 'a')));
}

TEST(topic_name, examples) {
    EXPECT_TRUE(valid_topic_name("sport/tennis/player1"));
    EXPECT_TRUE(valid_topic_name("/"));
    EXPECT_TRUE(valid_topic_name("Accounts payable"));
    EXPECT_TRUE(valid_topic_name("$SYS/broker/load"));
    EXPECT_FALSE(valid_topic_name(""));
    EXPECT_FALSE(valid_topic_name("sport/+"));
    EXPECT_FALSE(valid_topic_name("sport/#"));
    EXPECT_FALSE(valid_topic_name(std::string_view("a\0", 2)));
}

TEST(parse_shared, examples) {
    auto p = parse_shared("$share/consumer1/sport/tennis/+");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->group, "consumer1");
    EXPECT_EQ(p->filter, "sport/tennis/+");

    p = parse_shared("$share/consumer2/#");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->group, "consumer2");
    EXPECT_EQ(p->filter, "#");

    p = parse_shared("$share/g//");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->filter, "/");

    // "$share" alone or "$shared/..." are ordinary filters.
    EXPECT_FALSE(parse_shared("sport/#"));
    EXPECT_TRUE(valid_topic_filter("$share"));
    EXPECT_FALSE(parse_shared("$share"));
    EXPECT_TRUE(valid_topic_filter("$shared/x"));
    EXPECT_FALSE(parse_shared("$shared/x"));

    for (const char* bad :
         {"$share/", "$share/g", "$share/g/", "$share//a", "$share/g+/a", "$share/#/a", "$share/g/a/#/b", "a/#/b"}) {
        EXPECT_FALSE(parse_shared(bad)) << bad;
        EXPECT_FALSE(valid_topic_filter(bad)) << bad;
    }
}

TEST(topic_matches, spec_examples) {
    // §4.7.1.2: "sport/tennis/player1/#"
    EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1"));
    EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
    EXPECT_TRUE(topic_matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
    EXPECT_TRUE(topic_matches("sport/#", "sport"));
    EXPECT_TRUE(topic_matches("#", "sport/tennis"));
    // §4.7.1.3: "sport/tennis/+"
    EXPECT_TRUE(topic_matches("sport/tennis/+", "sport/tennis/player1"));
    EXPECT_TRUE(topic_matches("sport/tennis/+", "sport/tennis/player2"));
    EXPECT_FALSE(topic_matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    EXPECT_TRUE(topic_matches("sport/+", "sport/"));
    EXPECT_FALSE(topic_matches("sport/+", "sport"));
    EXPECT_TRUE(topic_matches("+/+", "/finance"));
    EXPECT_TRUE(topic_matches("/+", "/finance"));
    EXPECT_FALSE(topic_matches("+", "/finance"));
    // Plain levels.
    EXPECT_TRUE(topic_matches("a/b", "a/b"));
    EXPECT_FALSE(topic_matches("a/b", "a/bc"));
    EXPECT_FALSE(topic_matches("a/b", "a/b/c"));
    EXPECT_FALSE(topic_matches("a/b/c", "a/b"));
    EXPECT_TRUE(topic_matches("a//c", "a//c"));
    EXPECT_TRUE(topic_matches("a/+/c", "a//c"));
}

TEST(topic_matches, dollar_topics) {
    // §4.7.2: wildcard-first filters do not match $ topics.
    EXPECT_FALSE(topic_matches("#", "$SYS/broker"));
    EXPECT_FALSE(topic_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    EXPECT_TRUE(topic_matches("$SYS/#", "$SYS/monitor/Clients"));
    EXPECT_TRUE(topic_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
}

TEST(topic_matches, shared_filters_match_as_inner_filter) {
    EXPECT_TRUE(topic_matches("$share/g/devices/+/telemetry", "devices/7/telemetry"));
    EXPECT_FALSE(topic_matches("$share/g/devices/+/telemetry", "devices/7/status"));
}

}  // namespace
}  // namespace sluice::mqtt
