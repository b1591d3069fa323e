// SPDX-License-Identifier: Apache-2.0
//
// The loss-accounting self-test: a controlled history where messages are deliberately
// dropped, duplicated, left unacknowledged or invented, and reconcile() must report
// exactly that. If these numbers are wrong, every "0 lost" the load generator prints
// is worthless.
#include "accounting.h"

#include <gtest/gtest.h>

namespace sluice::loadgen {
namespace {

TEST(seq_set, insert_reports_duplicates_and_tracks_size) {
    seq_set s;
    EXPECT_TRUE(s.insert(0));
    EXPECT_TRUE(s.insert(130));
    EXPECT_FALSE(s.insert(130));
    EXPECT_TRUE(s.contains(0));
    EXPECT_TRUE(s.contains(130));
    EXPECT_FALSE(s.contains(1));
    EXPECT_FALSE(s.contains(1u << 20));
    EXPECT_EQ(s.size(), 2u);
    EXPECT_EQ(s.end(), 131u);
}

TEST(reconcile, perfect_delivery_reports_nothing_lost) {
    send_ledger sent(3);
    receive_ledger got(3);
    for (uint32_t d = 0; d < 3; ++d) {
        for (uint64_t q = 0; q < 100; ++q) {
            sent.on_sent(d, q);
            sent.on_acked(d, q);
            got.on_message(d, q, 1000);
        }
    }
    const reconciliation r = reconcile(sent, got);
    EXPECT_EQ(r.sent, 300u);
    EXPECT_EQ(r.acked, 300u);
    EXPECT_EQ(r.received, 300u);
    EXPECT_EQ(r.unique_received, 300u);
    EXPECT_EQ(r.duplicates, 0u);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(r.gaps, 0u);
    EXPECT_EQ(r.missing_unacked, 0u);
    EXPECT_EQ(got.latency().count(), 300u);
}

TEST(reconcile, one_dropped_and_one_duplicated_message_are_reported_exactly) {
    send_ledger sent(2);
    receive_ledger got(2);
    for (uint32_t d = 0; d < 2; ++d) {
        for (uint64_t q = 0; q < 50; ++q) {
            sent.on_sent(d, q);
            sent.on_acked(d, q);
            if (d == 1 && q == 17) continue;  // dropped by the "broker"
            got.on_message(d, q, 10);
            if (d == 0 && q == 3) got.on_message(d, q, 10);  // delivered twice
        }
    }
    const reconciliation r = reconcile(sent, got);
    EXPECT_EQ(r.acked, 100u);
    EXPECT_EQ(r.received, 100u);  // 99 unique + 1 duplicate
    EXPECT_EQ(r.unique_received, 99u);
    EXPECT_EQ(r.duplicates, 1u);
    EXPECT_EQ(r.lost, 1u);
    EXPECT_EQ(r.gaps, 1u);
    EXPECT_EQ(r.unexpected, 0u);
}

TEST(reconcile, unacknowledged_messages_are_not_counted_as_lost) {
    send_ledger sent(1);
    receive_ledger got(1);
    for (uint64_t q = 0; q < 10; ++q)
        sent.on_sent(0, q);
    for (uint64_t q = 0; q < 8; ++q)
        sent.on_acked(0, q);
    for (uint64_t q = 0; q < 8; ++q)
        got.on_message(0, q, 5);
    // 8 and 9 were in flight when the run stopped; 9 arrived, 8 did not.
    got.on_message(0, 9, 5);
    const reconciliation r = reconcile(sent, got);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(r.missing_unacked, 1u);
    EXPECT_EQ(r.gaps, 1u);  // 8 is a hole below the highest received seq
}

TEST(reconcile, lost_tail_is_lost_but_not_a_gap) {
    send_ledger sent(1);
    receive_ledger got(1);
    for (uint64_t q = 0; q < 10; ++q) {
        sent.on_sent(0, q);
        sent.on_acked(0, q);
    }
    for (uint64_t q = 0; q < 7; ++q)
        got.on_message(0, q, 5);
    const reconciliation r = reconcile(sent, got);
    EXPECT_EQ(r.lost, 3u);
    EXPECT_EQ(r.gaps, 0u);
}

TEST(reconcile, foreign_and_unexpected_messages_are_separated) {
    send_ledger sent(2);
    receive_ledger got(2);
    sent.on_sent(0, 0);
    sent.on_acked(0, 0);
    got.on_message(0, 0, 1);
    got.on_message(1, 5, 1);                // never sent by us
    got.on_message(7, 0, 1);                // unknown device
    got.on_message(0, max_tracked_seq, 1);  // absurd sequence number
    got.on_foreign();                       // unparseable payload
    const reconciliation r = reconcile(sent, got);
    EXPECT_EQ(r.unexpected, 1u);
    EXPECT_EQ(r.foreign, 3u);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(r.received, 2u);
}

TEST(histogram, percentiles_are_within_bucket_resolution) {
    histogram h;
    for (int64_t v = 1; v <= 10000; ++v)
        h.record(v);
    EXPECT_EQ(h.count(), 10000u);
    EXPECT_EQ(h.max(), 10000);
    const double p50 = static_cast<double>(h.percentile(0.5));
    const double p99 = static_cast<double>(h.percentile(0.99));
    EXPECT_GE(p50, 5000.0);
    EXPECT_LE(p50, 5000.0 * 1.04);
    EXPECT_GE(p99, 9900.0);
    EXPECT_LE(p99, 10000.0);
    EXPECT_NEAR(h.mean(), 5000.5, 0.01);
}

TEST(histogram, buckets_are_monotonic_and_cover_their_values) {
    for (uint64_t v : {uint64_t{0}, uint64_t{63}, uint64_t{64}, uint64_t{65}, uint64_t{1000}, uint64_t{123456789},
                       uint64_t{1} << 62}) {
        const size_t b = histogram::bucket_of(v);
        ASSERT_LT(b, histogram::bucket_count);
        EXPECT_GE(histogram::bucket_upper(b), v);
        if (b > 0) {
            EXPECT_LT(histogram::bucket_upper(b - 1), v);
        }
    }
}

TEST(histogram, subtract_gives_the_interval) {
    histogram h;
    for (int i = 0; i < 100; ++i)
        h.record(10);
    const histogram before = h;
    for (int i = 0; i < 100; ++i)
        h.record(5000);
    histogram window = h;
    window.subtract(before);
    EXPECT_EQ(window.count(), 100u);
    EXPECT_GE(window.percentile(0.01), 4900);
}

}  // namespace
}  // namespace sluice::loadgen
