// SPDX-License-Identifier: Apache-2.0
#include "cluster/relay_record.h"

#include <set>

#include <gtest/gtest.h>

#include "broker/persist/errc.h"

namespace sluice::cluster {
namespace {

TEST(relay_record, round_trips_with_its_node_and_properties) {
    relayed_message m;
    m.node = 0x0102030405060708ull;
    m.message.topic = "plant/1/temp";
    m.message.payload = std::string("\0bin\xff", 5);
    m.message.qos = 2;
    m.message.retain = true;
    m.message.props.content_type = "application/json";
    m.message.props.user_properties = {{"a", "1"}, {"a", "2"}};
    m.message.expires_at_ms = 1'800'000'000'000;
    auto d = decode_relayed(encode(m));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->node, m.node);
    EXPECT_EQ(d->message, m.message);
}

TEST(relay_record, damaged_or_newer_records_are_refused) {
    relayed_message m;
    m.message.topic = "t";
    const std::string bytes = encode(m);
    for (size_t n = 0; n < bytes.size(); ++n)
        EXPECT_FALSE(decode_relayed(bytes.substr(0, n))) << n;
    std::string newer = bytes;
    newer[0] = 2;
    EXPECT_EQ(decode_relayed(newer).error(), broker::persist::errc::unsupported_version);
}

TEST(relay_record, a_cluster_session_round_trips_and_damage_is_refused) {
    cluster_session s;
    s.owner = 7;
    s.epoch = 3;
    s.written_at_ms = 1'800'000'000'000;
    s.positions = {0, 12, -1001, 5};
    s.session.client_id = "dev-1";
    s.session.expiry_interval = 3600;
    s.session.subscriptions.push_back({"a/#", 1, false, false, 0, 9});
    const std::string bytes = encode(s);
    auto d = decode_cluster_session(bytes);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->owner, 7u);
    EXPECT_EQ(d->epoch, 3u);
    EXPECT_EQ(d->written_at_ms, s.written_at_ms);
    EXPECT_FALSE(d->ended);
    EXPECT_EQ(d->positions, s.positions);
    EXPECT_EQ(d->session, s.session);
    for (size_t n = 0; n < bytes.size(); ++n)
        EXPECT_FALSE(decode_cluster_session(bytes.substr(0, n))) << n;
    cluster_session ended;
    ended.ended = true;
    ended.epoch = 4;
    auto e = decode_cluster_session(encode(ended));
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->ended);
    EXPECT_EQ(e->epoch, 4u);
    EXPECT_FALSE(decode_cluster_session(encode(ended) + "x"));
}

TEST(relay_record, a_topic_has_one_partition_everywhere) {
    EXPECT_EQ(partition_of("a/b", 8), partition_of("a/b", 8));
    EXPECT_LT(partition_of("a/b", 8), 8u);
    EXPECT_EQ(partition_of("anything", 0), 0u);
    std::set<uint32_t> used;
    for (int i = 0; i < 100; ++i)
        used.insert(partition_of("devices/" + std::to_string(i), 4));
    EXPECT_EQ(used.size(), 4u) << "topics spread over the partitions";
}

}  // namespace
}  // namespace sluice::cluster
