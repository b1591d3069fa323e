// SPDX-License-Identifier: Apache-2.0
#include "base/fifo.h"

#include <deque>
#include <memory>
#include <random>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(fifo, behaves_like_a_deque_under_random_operations) {
    fifo<int> f;
    std::deque<int> model;
    std::mt19937 rng(7);
    for (int i = 0; i < 100000; ++i) {
        if (rng() % 3 != 0 || model.empty()) {
            f.push_back(i);
            model.push_back(i);
        } else {
            ASSERT_EQ(f.front(), model.front());
            f.pop_front();
            model.pop_front();
        }
        ASSERT_EQ(f.size(), model.size());
        ASSERT_EQ(f.empty(), model.empty());
    }
    std::deque<int> rest(f.begin(), f.end());
    EXPECT_EQ(rest, model);
}

TEST(fifo, pop_releases_the_element_at_once) {
    fifo<std::shared_ptr<int>> f;
    auto p = std::make_shared<int>(1);
    f.push_back(p);
    f.push_back(std::make_shared<int>(2));
    EXPECT_EQ(p.use_count(), 2);
    f.pop_front();
    EXPECT_EQ(p.use_count(), 1);
}

}  // namespace
}  // namespace sluice
