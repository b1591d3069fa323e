// SPDX-License-Identifier: Apache-2.0
#include "auth/acl.h"

#include <gtest/gtest.h>

namespace sluice::auth {
namespace {

// A file in the shape of mosquitto's aclfile.example, unchanged.
constexpr const char* k_file = R"(# anonymous clients
topic read public/#

user admin
topic readwrite #
topic deny secret/#

user sensor1
topic write devices/sensor1/telemetry
topic read devices/sensor1/commands
topic devices/sensor1/state

# every client
pattern write devices/%u/telemetry
pattern read devices/%u/commands/#
pattern readwrite clients/%c/#
)";

class acl_test : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(a.parse(k_file, "acl"), ""); }
    bool can(const char* user, const char* client, const char* topic, operation op) {
        return a.allowed(user ? user : "", user != nullptr, client, topic, op);
    }
    acl a;
};

TEST_F(acl_test, anonymous_clients_get_the_rules_before_any_user_line) {
    EXPECT_TRUE(can(nullptr, "c", "public/news", operation::receive));
    EXPECT_TRUE(can(nullptr, "c", "public/#", operation::subscribe));
    EXPECT_FALSE(can(nullptr, "c", "public/news", operation::publish));
    EXPECT_FALSE(can(nullptr, "c", "#", operation::subscribe));
    // %c patterns apply to anonymous clients; %u ones do not.
    EXPECT_TRUE(can(nullptr, "c7", "clients/c7/x", operation::publish));
    EXPECT_FALSE(can(nullptr, "c7", "devices//telemetry", operation::publish));
}

TEST_F(acl_test, user_rules_and_patterns) {
    EXPECT_TRUE(can("sensor1", "s1", "devices/sensor1/telemetry", operation::publish));
    EXPECT_FALSE(can("sensor1", "s1", "devices/sensor1/telemetry", operation::receive));
    EXPECT_TRUE(can("sensor1", "s1", "devices/sensor1/state", operation::publish));  // no access word: readwrite
    EXPECT_TRUE(can("sensor1", "s1", "devices/sensor1/state", operation::receive));
    EXPECT_FALSE(can("sensor1", "s1", "devices/sensor2/telemetry", operation::publish));
    EXPECT_FALSE(can("sensor1", "s1", "public/news", operation::receive));  // anonymous rules are not for users
    // A user without a block still gets the patterns.
    EXPECT_TRUE(can("sensor9", "s9", "devices/sensor9/telemetry", operation::publish));
    EXPECT_FALSE(can("sensor9", "s9", "devices/sensor1/telemetry", operation::publish));
    EXPECT_TRUE(can("sensor9", "s9", "devices/sensor9/commands/reboot", operation::receive));
    EXPECT_TRUE(can("sensor9", "s9", "devices/sensor9/commands/+", operation::subscribe));
    EXPECT_FALSE(can("sensor9", "s9", "devices/+/commands/#", operation::subscribe));
    EXPECT_FALSE(can("sensor9", "s9", "#", operation::subscribe));
}

TEST_F(acl_test, substituted_values_cannot_widen_a_pattern) {
    EXPECT_FALSE(can("a/b", "c", "devices/a/b/telemetry", operation::publish));
    EXPECT_FALSE(can("+", "c", "devices/x/telemetry", operation::publish));
    EXPECT_FALSE(can("x", "#", "clients/anything/y", operation::publish));
}

TEST_F(acl_test, deny_wins_over_readwrite) {
    EXPECT_TRUE(can("admin", "a", "anything/at/all", operation::publish));
    EXPECT_TRUE(can("admin", "a", "#", operation::subscribe));
    EXPECT_FALSE(can("admin", "a", "secret/plans", operation::publish));
    EXPECT_FALSE(can("admin", "a", "secret/plans", operation::receive));
    EXPECT_FALSE(can("admin", "a", "secret/#", operation::subscribe));
    // "#" is allowed (a broader subscription); each secret message is then denied on delivery.
}

TEST_F(acl_test, dollar_topics_need_dollar_rules) {
    EXPECT_FALSE(can("admin", "a", "$SYS/broker/load", operation::receive));
    EXPECT_FALSE(can("admin", "a", "$SYS/#", operation::subscribe));
}

TEST_F(acl_test, shared_subscriptions_are_checked_by_their_filter) {
    EXPECT_TRUE(can("sensor9", "s9", "$share/g/devices/sensor9/commands/#", operation::subscribe));
    EXPECT_FALSE(can("sensor9", "s9", "$share/g/devices/#", operation::subscribe));
}

TEST(acl, rejects_malformed_files) {
    acl a;
    EXPECT_NE(a.parse("topic\n", "f"), "");
    EXPECT_NE(a.parse("frobnicate x\n", "f"), "");
    EXPECT_NE(a.parse("topic read a/#/b\n", "f"), "");
    EXPECT_NE(a.parse("user\n", "f"), "");
    EXPECT_EQ(a.parse("", "f"), "");
    EXPECT_FALSE(a.allowed("", false, "c", "x", operation::receive));  // an empty file denies everything
}

TEST(filter_within, covers) {
    EXPECT_TRUE(filter_within("a/b", "a/#"));
    EXPECT_TRUE(filter_within("a/+", "a/#"));
    EXPECT_TRUE(filter_within("a", "a/#"));
    EXPECT_TRUE(filter_within("a/+/c", "a/+/c"));
    EXPECT_FALSE(filter_within("a/#", "a/+"));
    EXPECT_FALSE(filter_within("a/+", "a/b"));
    EXPECT_FALSE(filter_within("a/b/c", "a/+"));
    EXPECT_TRUE(filter_within("#", "#"));
}

}  // namespace
}  // namespace sluice::auth
