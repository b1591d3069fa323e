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
