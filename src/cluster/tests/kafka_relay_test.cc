// SPDX-License-Identifier: Apache-2.0
//
// Two broker nodes relaying through librdkafka's mock cluster (rdkafka_mock.h): what one
// node's clients publish reaches the other node, retained messages too (and a node that
// starts later reads them), and nothing comes back to the node that published it.
#include "cluster/kafka_relay.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "broker/broker.h"
#include "broker/shard.h"

namespace sluice::cluster {
namespace {

using namespace std::chrono_literals;

class mock_cluster {
public:
    explicit mock_cluster(int brokers) {
        char err[256];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
        rd_kafka_mock_topic_create(mc_, "m", 4, brokers);
        rd_kafka_mock_topic_create(mc_, "r", 1, brokers);
        rd_kafka_mock_topic_create(mc_, "s", 1, brokers);
    }
    ~mock_cluster() {
        rd_kafka_mock_cluster_destroy(mc_);
        rd_kafka_destroy(rk_);
    }
    std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }

private:
    rd_kafka_t* rk_ = nullptr;
    rd_kafka_mock_cluster_t* mc_ = nullptr;
};

// A one-shard broker whose loop is the test thread: posted work waits in a queue.
struct node {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> posted;
    std::unique_ptr<broker::broker> brk;
    std::unique_ptr<kafka_relay> relay;

    explicit node(const mock_cluster& mc, bool sessions = false) {
        brk = std::make_unique<broker::broker>(broker::broker_options{}, 1, [this](unsigned, std::function<void()> fn) {
            std::lock_guard<std::mutex> lock(mu);
            posted.push_back(std::move(fn));
            cv.notify_all();
        });
        kafka_relay_options o;
        o.kafka.brokers = mc.bootstraps();
        o.kafka.properties["log_level"] = "0";
        o.messages_topic = "m";
        o.retained_topic = "r";
        if (sessions) o.sessions_topic = "s";
        auto r = kafka_relay::start(*brk, o);
        EXPECT_TRUE(r) << r.error().message();
        if (r) relay = std::move(*r);
        brk->set_relay(relay.get());
    }
    ~node() {
        if (relay) relay->stop();
    }
    // Runs posted work until `pred` holds or `limit` passes.
    bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!pred() && std::chrono::steady_clock::now() < deadline) {
            std::deque<std::function<void()>> batch;
            {
                std::unique_lock<std::mutex> lock(mu);
                cv.wait_for(lock, 50ms, [this] { return !posted.empty(); });
                batch.swap(posted);
            }
            for (auto& fn : batch)
                fn();
        }
        return pred();
    }
    void publish(const std::string& topic, const std::string& payload, bool retain) {
        auto m = std::make_shared<broker::message>();
        m->topic = topic;
        m->payload = payload;
        m->qos = 1;
        m->retain = retain;
        brk->get_shard(0).publish(m);
    }
    std::string retained(const std::string& topic) const {
        std::vector<broker::message_ptr> out;
        brk->retained_matching(topic, out);
        return out.empty() ? std::string() : out.front()->payload;
    }
};

TEST(kafka_relay, a_message_published_on_one_node_reaches_the_other_and_does_not_come_back) {
    mock_cluster mc(3);
    node a(mc), b(mc);
    ASSERT_TRUE(a.relay && b.relay);
    EXPECT_NE(a.relay->node_id(), b.relay->node_id());
    a.publish("plant/1", "one", false);
    a.publish("plant/2", "two", false);
    ASSERT_TRUE(b.run_until([&] { return b.relay->get_stats().received == 2; }));
    ASSERT_TRUE(a.run_until([&] { return a.relay->get_stats().forwarded == 2; }));
    a.run_until([] { return false; }, 500ms);  // nothing of its own comes back
    EXPECT_EQ(a.relay->get_stats().received, 0u);
    EXPECT_EQ(b.relay->get_stats().forwarded, 0u) << "relayed messages are not relayed again";
}

TEST(kafka_relay, retained_messages_reach_running_nodes_and_nodes_that_start_later) {
    mock_cluster mc(1);
    node a(mc), b(mc);
    ASSERT_TRUE(a.relay && b.relay);
    a.publish("cfg/x", "v1", true);
    a.publish("cfg/y", "gone soon", true);
    a.publish("cfg/y", "", true);  // cleared
    ASSERT_TRUE(b.run_until([&] { return b.retained("cfg/x") == "v1" && b.relay->get_stats().received == 3; }));
    // `received` counts a message when it is posted to the shard: run what is still queued.
    b.run_until([] { return false; }, 200ms);
    EXPECT_EQ(b.retained("cfg/y"), "");
    ASSERT_TRUE(a.run_until([&] { return a.relay->get_stats().forwarded == 3; }));
    node late(mc);
    ASSERT_TRUE(late.relay);
    EXPECT_EQ(late.relay->get_stats().retained_loaded, 1u);
    EXPECT_EQ(late.retained("cfg/x"), "v1");
    EXPECT_EQ(late.retained("cfg/y"), "");
}

// Shared subscriptions across nodes: the nodes that have members of a group share the
// partitions of the messages topic through a Kafka consumer group, so each message reaches
// exactly one of them (counted by the relays: the members are the broker's business); when
// one node's last member leaves, the other takes every message.
TEST(kafka_relay, a_shared_group_on_two_nodes_gets_each_message_once) {
    mock_cluster mc(1);
    node a(mc), b(mc), publisher(mc);
    ASSERT_TRUE(a.relay && b.relay && publisher.relay);
    EXPECT_TRUE(a.relay->balances_shared_groups());
    const std::string group = "$share/workers/plant/#";
    a.brk->note_shared_member(group, +1);
    b.brk->note_shared_member(group, +1);
    b.brk->note_shared_member(group, +1);  // a second member on b: still one consumer
    auto settled = [&] {
        const auto sa = a.relay->get_stats(), sb = b.relay->get_stats();
        return sa.shared_groups == 1 && sb.shared_groups == 1 && sa.shared_partitions > 0 && sb.shared_partitions > 0 &&
               sa.shared_partitions + sb.shared_partitions == 4;
    };
    ASSERT_TRUE(a.run_until(settled, 30s))
        << "a holds " << a.relay->get_stats().shared_partitions << ", b " << b.relay->get_stats().shared_partitions;
    EXPECT_EQ(publisher.relay->get_stats().shared_groups, 0u);
    constexpr int k_messages = 80;
    for (int i = 0; i < k_messages; ++i)
        publisher.publish("plant/" + std::to_string(i), "m" + std::to_string(i), false);
    publisher.publish("other/1", "not for the group", false);
    auto routed = [&] { return a.relay->get_stats().shared_routed + b.relay->get_stats().shared_routed; };
    ASSERT_TRUE(a.run_until([&] { return routed() == k_messages; }, 20s)) << routed();
    a.run_until([] { return false; }, 500ms);
    EXPECT_EQ(routed(), static_cast<uint64_t>(k_messages)) << "each message once across the nodes";
    EXPECT_GT(a.relay->get_stats().shared_routed, 0u);
    EXPECT_GT(b.relay->get_stats().shared_routed, 0u);

    // b's members leave: its consumer leaves the group and a takes every partition.
    b.brk->note_shared_member(group, -1);
    EXPECT_EQ(b.relay->get_stats().shared_groups, 1u) << "one member is left on b";
    b.brk->note_shared_member(group, -1);
    ASSERT_TRUE(a.run_until(
        [&] { return b.relay->get_stats().shared_groups == 0 && a.relay->get_stats().shared_partitions == 4; }, 30s));
    const uint64_t a_before = a.relay->get_stats().shared_routed;
    const uint64_t b_before = b.relay->get_stats().shared_routed;
    for (int i = 0; i < 20; ++i)
        publisher.publish("plant/late/" + std::to_string(i), "x", false);
    // At least once across a hand-over: a may route again what b routed after its last
    // commit that Kafka took (a commit during a rebalance can be refused).
    ASSERT_TRUE(a.run_until([&] { return a.relay->get_stats().shared_routed >= a_before + 20; }, 20s))
        << a.relay->get_stats().shared_routed - a_before;
    EXPECT_EQ(b.relay->get_stats().shared_routed, b_before);
}

// Sessions across nodes through the sessions topic: a node that starts later knows the
// sessions of the others; claiming one gives its record and takes it from its holder (which
// stops holding it when it reads the claim); an ended or expired session is not claimed.
TEST(kafka_relay, a_session_saved_on_one_node_is_claimed_by_another) {
    mock_cluster mc(1);
    node a(mc, true);
    ASSERT_TRUE(a.relay);
    broker::persist::session_record r;
    r.client_id = "dev-7";
    r.protocol_version = 5;
    r.expiry_interval = 3600;
    r.subscriptions.push_back({"plant/#", 1, false, false, 0, 0});
    a.relay->session_saved(r, true);
    broker::persist::session_record gone = r;
    gone.client_id = "dev-gone";
    a.relay->session_saved(gone, true);
    a.relay->session_ended("dev-gone");
    broker::persist::session_record old = r;
    old.client_id = "dev-old";
    old.expiry_interval = 1;
    old.disconnected_at_ms = 1'000;  // 1970: long expired
    a.relay->session_saved(old, true);
    EXPECT_EQ(a.relay->get_stats().sessions_held, 2u);
    a.run_until([] { return false; }, 500ms);  // let the records reach Kafka

    node b(mc, true);  // reads the topic at start
    ASSERT_TRUE(b.relay);
    EXPECT_EQ(b.relay->get_stats().sessions_known, 2u) << "dev-7 and dev-old (dev-gone ended)";
    EXPECT_FALSE(b.relay->claim_session("dev-gone", 0));
    EXPECT_FALSE(b.relay->claim_session("dev-old", 0)) << "expired";
    EXPECT_FALSE(b.relay->claim_session("nobody", 0));
    auto claimed = b.relay->claim_session("dev-7", 0);
    ASSERT_TRUE(claimed);
    EXPECT_EQ(*claimed, r);
    EXPECT_EQ(b.relay->get_stats().sessions_held, 1u);
    ASSERT_TRUE(a.run_until([&] { return a.relay->get_stats().sessions_held == 1; }, 10s))
        << "a still holds " << a.relay->get_stats().sessions_held;  // dev-old stays a's
    // b's replay ends with replay_done on its shard (no session there: nothing to do).
    b.run_until([] { return false; }, 300ms);
}

}  // namespace
}  // namespace sluice::cluster
