// SPDX-License-Identifier: Apache-2.0
#include "base/result.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace sluice {
namespace {

result<int> parse_positive(int v) {
    if (v <= 0) return std::make_error_code(std::errc::invalid_argument);
    return v;
}

TEST(result, carries_value) {
    auto r = parse_positive(7);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 7);
    EXPECT_FALSE(r.error());
}

TEST(result, carries_error) {
    auto r = parse_positive(-1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::invalid_argument);
}

TEST(result, void_result) {
    result<void> good = ok();
    result<void> bad = std::make_error_code(std::errc::io_error);
    EXPECT_TRUE(good);
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error(), std::errc::io_error);
}

TEST(result, move_only_value) {
    result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("x");
    ASSERT_TRUE(r);
    auto p = std::move(r).value();
    EXPECT_EQ(*p, "x");
}

TEST(result_death, value_on_error_aborts) {
    auto r = parse_positive(0);
    EXPECT_DEATH((void)r.value(), "invariant violated");
}

}  // namespace
}  // namespace sluice
