// SPDX-License-Identifier: Apache-2.0
#include "net/connection_limits.h"

#include <vector>

#include <gtest/gtest.h>

namespace sluice::net {
namespace {

TEST(connection_limits, total_limit_refuses_until_a_slot_is_given_back) {
    connection_limits limits({2, 0, 0});
    auto a = limits.admit("10.0.0.1", 0);
    auto b = limits.admit("10.0.0.2", 0);
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(limits.admit("10.0.0.3", 0));
    EXPECT_EQ(limits.stats().refused_total.load(), 1U);
    EXPECT_EQ(limits.stats().current.load(), 2U);
    a.reset();
    EXPECT_TRUE(limits.admit("10.0.0.3", 0));
}

TEST(connection_limits, per_address_limit_leaves_other_addresses_alone) {
    connection_limits limits({0, 2, 0});
    std::vector<std::unique_ptr<connection_limits::admission>> held;
    held.push_back(limits.admit("10.0.0.1", 0));
    held.push_back(limits.admit("10.0.0.1", 0));
    EXPECT_FALSE(limits.admit("10.0.0.1", 0));
    EXPECT_TRUE(limits.admit("10.0.0.2", 0));
    EXPECT_EQ(limits.stats().refused_per_address.load(), 1U);
    held.pop_back();
    EXPECT_TRUE(limits.admit("10.0.0.1", 0));
}

TEST(connection_limits, rate_limit_allows_a_burst_then_the_rate) {
    connection_limits limits({0, 0, 5});
    int admitted = 0;
    for (int i = 0; i < 20; ++i)
        admitted += limits.admit("10.0.0.1", 1000) ? 1 : 0;
    EXPECT_EQ(admitted, 5);  // the burst
    EXPECT_EQ(limits.stats().refused_rate.load(), 15U);
    EXPECT_TRUE(limits.admit("10.0.0.2", 1000)) << "another address has its own bucket";
    EXPECT_TRUE(limits.admit("10.0.0.1", 1200));  // 0.2 s at 5/s = one more
    EXPECT_FALSE(limits.admit("10.0.0.1", 1200));
    admitted = 0;
    for (int i = 0; i < 20; ++i)
        admitted += limits.admit("10.0.0.1", 3000) ? 1 : 0;
    EXPECT_EQ(admitted, 5) << "the bucket refills to its burst, no more";
}

TEST(connection_limits, no_limits_means_no_table) {
    connection_limits limits({0, 0, 0});
    std::vector<std::unique_ptr<connection_limits::admission>> held;
    held.reserve(1000);
    for (int i = 0; i < 1000; ++i)
        held.push_back(limits.admit("10.0.0.1", 0));
    EXPECT_EQ(limits.stats().current.load(), 1000U);
    held.clear();
    EXPECT_EQ(limits.stats().current.load(), 0U);
}

}  // namespace
}  // namespace sluice::net
