// SPDX-License-Identifier: Apache-2.0
//
// Topic rules: compilation errors with their reasons, matching with named captures and
// MQTT wildcards, first-match-wins ordering, the default rule, and could_match().
#include "pipeline/topic_rules.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::pipeline {
namespace {

topic_rule compile(std::string_view pattern, payload_format f = payload_format::auto_detect) {
    std::string reason;
    auto r = topic_rule::compile(pattern, f, reason);
    EXPECT_TRUE(r.has_value()) << pattern << ": " << reason;
    return std::move(r).value();
}

std::string compile_error(std::string_view pattern) {
    std::string reason;
    auto r = topic_rule::compile(pattern, payload_format::json, reason);
    EXPECT_FALSE(r.has_value()) << pattern;
    if (!r) {
        EXPECT_EQ(r.error(), make_error_code(errc::bad_topic_pattern));
    }
    return reason;
}

TEST(topic_rules, named_captures) {
    const auto rule = compile("factory/{site}/{line}/{device}/telemetry", payload_format::binary);
    topic_match m;
    ASSERT_TRUE(rule.match("factory/lyon/l3/press-7/telemetry", m));
    EXPECT_EQ(m.device, "press-7");
    EXPECT_EQ(m.format, payload_format::binary);
    ASSERT_EQ(m.capture_count, 3u);
    EXPECT_EQ(m.get("site"), "lyon");
    EXPECT_EQ(m.get("line"), "l3");
    EXPECT_EQ(m.get("nope"), std::nullopt);
    EXPECT_FALSE(rule.matches("factory/lyon/l3/press-7"));
    EXPECT_FALSE(rule.matches("factory/lyon/l3/press-7/telemetry/x"));
    EXPECT_FALSE(rule.matches("factory/lyon//press-7/telemetry"));  // captures are never empty
    EXPECT_FALSE(rule.matches("Factory/lyon/l3/press-7/telemetry"));
}

TEST(topic_rules, mqtt_wildcards) {
    const auto plus = compile("+/{device}/data");
    EXPECT_TRUE(plus.matches("a/d1/data"));
    EXPECT_TRUE(plus.matches("/d1/data"));       // '+' matches an empty level
    EXPECT_FALSE(plus.matches("$SYS/d1/data"));  // wildcards never match $-topics
    const auto hash = compile("site/{device}/#");
    topic_match m;
    ASSERT_TRUE(hash.match("site/d9/a/b/c", m));
    EXPECT_EQ(m.device, "d9");
    EXPECT_TRUE(hash.matches("site/d9"));  // '#' also matches the parent level
    EXPECT_FALSE(hash.matches("site"));
    EXPECT_TRUE(compile("#").matches("any/thing"));
    EXPECT_FALSE(compile("#").matches("$SYS/broker"));
    EXPECT_TRUE(compile("$SYS/{device}").matches("$SYS/x"));
}

TEST(topic_rules, rule_without_device_capture) {
    topic_match m;
    ASSERT_TRUE(compile("telemetry/+").match("telemetry/x", m));
    EXPECT_TRUE(m.device.empty());
    EXPECT_EQ(m.capture_count, 0u);
}

TEST(topic_rules, compile_errors) {
    EXPECT_EQ(compile_error(""), "empty topic pattern");
    EXPECT_EQ(compile_error("a/#/b"), "pattern 'a/#/b': '#' must be the last level");
    EXPECT_EQ(compile_error("a/{dev"), "pattern 'a/{dev': a capture must be a whole level like {name}");
    EXPECT_EQ(compile_error("a/{}"), "pattern 'a/{}': capture name '' must be letters, digits or '_'");
    EXPECT_EQ(compile_error("a/{d-x}"), "pattern 'a/{d-x}': capture name 'd-x' must be letters, digits or '_'");
    EXPECT_EQ(compile_error("{x}/{x}"), "pattern '{x}/{x}': duplicate capture {x}");
    EXPECT_EQ(compile_error("a+/b"), "pattern 'a+/b': '+', '#' and {capture} must each be a whole level");
    EXPECT_EQ(compile_error("a/x{d}"), "pattern 'a/x{d}': '+', '#' and {capture} must each be a whole level");
    EXPECT_EQ(compile_error("{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"),
              "pattern '{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}': more than 8 captures");
}

TEST(rule_set, default_is_devices_device_telemetry_auto) {
    const auto set = rule_set::defaults();
    ASSERT_EQ(set.size(), 1u);
    EXPECT_EQ(set[0].pattern(), "devices/{device}/telemetry");
    EXPECT_EQ(set[0].format(), payload_format::auto_detect);
    const auto m = set.match("devices/sensor-17/telemetry");
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->device, "sensor-17");
    EXPECT_EQ(m->format, payload_format::auto_detect);
    EXPECT_FALSE(set.match("devices/sensor-17/status").has_value());
    EXPECT_TRUE(set.could_match("devices/sensor-17/telemetry"));
    EXPECT_FALSE(set.could_match("devices/sensor-17"));
    EXPECT_FALSE(set.could_match("home/kitchen/light"));
    EXPECT_FALSE(set.could_match(""));
}

TEST(rule_set, first_match_wins) {
    rule_set set;
    std::string reason;
    ASSERT_TRUE(set.add("plant/{site}/special/telemetry", payload_format::binary, reason).has_value());
    ASSERT_TRUE(set.add("plant/{site}/{device}/telemetry", payload_format::json, reason).has_value());
    auto m = set.match("plant/a/special/telemetry");
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->rule_index, 0u);
    EXPECT_EQ(m->format, payload_format::binary);
    EXPECT_TRUE(m->device.empty());
    m = set.match("plant/a/d1/telemetry");
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->rule_index, 1u);
    EXPECT_EQ(m->device, "d1");
    EXPECT_FALSE(set.add("bad/#/x", payload_format::json, reason).has_value());
    EXPECT_EQ(set.size(), 2u);
}

TEST(rule_set, could_match_agrees_with_match) {
    rule_set set;
    std::string reason;
    ASSERT_TRUE(set.add("devices/{device}/telemetry", payload_format::auto_detect, reason).has_value());
    ASSERT_TRUE(set.add("+/{device}/bin", payload_format::binary, reason).has_value());
    ASSERT_TRUE(set.add("/lead/{device}", payload_format::json, reason).has_value());
    const char* topics[] = {"devices/a/telemetry", "x/a/bin", "$SYS/a/bin", "/lead/z", "/lead/",
                            "devices/a",           "a",       "",           "x//bin",  "devices//telemetry",
                            "zzz/a/bin/c"};
    for (const char* t : topics)
        EXPECT_EQ(set.could_match(t), set.match(t).has_value()) << t;
}

// Thousands of distinct topics against a realistic rule set; a correctness check at
// volume (speed is measured in bench/, not asserted here).
TEST(rule_set, many_topics) {
    rule_set set;
    std::string reason;
    ASSERT_TRUE(set.add("factory/{site}/{line}/{device}/telemetry", payload_format::json, reason).has_value());
    ASSERT_TRUE(set.add("devices/{device}/telemetry", payload_format::auto_detect, reason).has_value());
    std::size_t matched = 0;
    for (int i = 0; i < 5000; ++i) {
        const std::string t = i % 3 == 0
                                  ? "factory/s" + std::to_string(i % 7) + "/l1/d" + std::to_string(i) + "/telemetry"
                              : i % 3 == 1 ? "devices/d" + std::to_string(i) + "/telemetry"
                                           : "devices/d" + std::to_string(i) + "/cmd";
        const auto m = set.match(t);
        if (m) {
            ++matched;
            EXPECT_EQ(m->device, "d" + std::to_string(i));
        }
    }
    EXPECT_EQ(matched, 3334u);
}

}  // namespace
}  // namespace sluice::pipeline
