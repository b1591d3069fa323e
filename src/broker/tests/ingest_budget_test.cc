// SPDX-License-Identifier: Apache-2.0
//
// The ingest byte budget (issue 11): per-connection and total bounds, the bus's quota
// headroom, and a lone message that is larger than the per-connection bound.
#include "broker/ingest_budget.h"

#include <gtest/gtest.h>

namespace sluice::broker {
namespace {

TEST(ingest_budget, bounds_bytes_per_connection_and_in_total) {
    ingest_budget b(1000, 400);
    ingest_budget::connection_share c1, c2, c3;
    EXPECT_TRUE(b.try_reserve(c1, 300, UINT64_MAX));
    EXPECT_FALSE(b.try_reserve(c1, 200, UINT64_MAX));  // 500 > 400 for this connection
    EXPECT_TRUE(b.try_reserve(c2, 400, UINT64_MAX));
    EXPECT_TRUE(b.try_reserve(c3, 300, UINT64_MAX));
    EXPECT_FALSE(b.try_reserve(c3, 50, UINT64_MAX));  // 1050 > 1000 in total
    EXPECT_EQ(b.in_flight(), 1000u);
    b.release(c1, 300);
    EXPECT_EQ(c1.in_flight.load(), 0u);
    EXPECT_TRUE(b.try_reserve(c3, 50, UINT64_MAX));
    EXPECT_EQ(b.in_flight(), 750u);
}

TEST(ingest_budget, everything_in_flight_must_fit_the_quota_headroom) {
    ingest_budget b(1 << 20, 1 << 20);
    ingest_budget::connection_share c1, c2;
    EXPECT_TRUE(b.try_reserve(c1, 600, 1000));
    EXPECT_FALSE(b.try_reserve(c2, 500, 1000));  // 1100 would not fit below the hard limit
    EXPECT_TRUE(b.try_reserve(c2, 400, 1000));
    EXPECT_FALSE(b.try_reserve(c2, 1, 1000));
    ingest_budget::connection_share c3;
    EXPECT_FALSE(b.try_reserve(c3, 10, 0));  // no headroom: nothing, not even a first message
}

TEST(ingest_budget, a_lone_message_may_exceed_the_connection_and_total_bounds) {
    ingest_budget b(100, 50);
    ingest_budget::connection_share c1, c2;
    EXPECT_TRUE(b.try_reserve(c1, 500, UINT64_MAX));  // nothing in flight: allowed alone
    EXPECT_FALSE(b.try_reserve(c2, 10, UINT64_MAX));  // the total is spent
    b.release(c1, 500);
    EXPECT_EQ(b.in_flight(), 0u);
    EXPECT_FALSE(b.try_reserve(c1, 500, 400));  // alone, but never past the headroom
    EXPECT_TRUE(b.try_reserve(c2, 10, UINT64_MAX));
}

}  // namespace
}  // namespace sluice::broker
