// SPDX-License-Identifier: Apache-2.0
//
// The Kafka bus against librdkafka's own mock cluster (rdkafka_mock.h): delivery-report
// acknowledgements, records read back intact and exactly once through retries and leader
// moves, no acknowledgement for what Kafka did not take, back-pressure while Kafka is
// down, and partition ownership in a consumer group.
#include "bus/kafka/kafka.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bus/errc.h"

namespace sluice::bus {
namespace {

using namespace std::chrono_literals;

// A mock cluster owned by the test (its handle only hosts the cluster).
class mock_cluster {
public:
    mock_cluster(int brokers, int partitions, const std::string& topic = "t") {
        char err[256];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
        rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, brokers < 3 ? brokers : 3);
    }
    ~mock_cluster() {
        rd_kafka_mock_cluster_destroy(mc_);
        rd_kafka_destroy(rk_);
    }
    std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
    rd_kafka_mock_cluster_t* get() { return mc_; }

private:
    rd_kafka_t* rk_ = nullptr;
    rd_kafka_mock_cluster_t* mc_ = nullptr;
};

kafka_options options_for(const mock_cluster& mc) {
    kafka_options o;
    o.brokers = mc.bootstraps();
    o.topic = "t";
    o.properties["log_level"] = "0";
    o.properties["reconnect.backoff.max.ms"] = "200";
    return o;
}

// Collects append results.
struct acks {
    std::mutex m;
    std::condition_variable cv;
    std::vector<result<uint64_t>> results;

    append_callback callback() {
        return [this](result<uint64_t> r) {
            std::lock_guard<std::mutex> lock(m);
            results.push_back(r);
            cv.notify_all();
        };
    }
    bool wait_for(size_t n, std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, timeout, [&] { return results.size() >= n; });
    }
    size_t ok() {
        std::lock_guard<std::mutex> lock(m);
        size_t n = 0;
        for (auto& r : results)
            n += r.has_value();
        return n;
    }
};

message msg(int i, const std::string& device = "dev-1") {
    message m;
    m.receive_time_ms = 1'700'000'000'000 + i;
    m.client_id = device;
    m.topic = "devices/" + device + "/telemetry";
    m.payload = "{\"seq\":" + std::to_string(i) + "}";
    m.qos = 1;
    // Some with the publisher's packet id (a persistent session), the rest without.
    if (i % 3 != 0) m.packet_id = static_cast<uint16_t>(65536 - 3 * i);
    return m;
}

std::vector<record> read_all(bus& b, uint32_t partition, uint64_t from, size_t expected) {
    auto r = b.open_reader(partition, from);
    EXPECT_TRUE(r.has_value());
    std::vector<record> out;
    if (!r) return out;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
        auto n = (*r)->poll(out, 1000, 200ms);
        EXPECT_TRUE(n.has_value());
    }
    // Nothing beyond what was expected arrives either.
    auto n = (*r)->poll(out, 1000, 300ms);
    EXPECT_TRUE(n.has_value());
    return out;
}

TEST(kafka_bus, acknowledges_after_delivery_and_reads_back_intact) {
    mock_cluster mc(3, 4);
    auto b = open_kafka(options_for(mc));
    ASSERT_TRUE(b.has_value()) << b.error().message();
    EXPECT_EQ((*b)->partitions(), 4u);
    acks a;
    for (int i = 0; i < 100; ++i)
        (*b)->append(2, msg(i), a.callback());
    ASSERT_TRUE(a.wait_for(100, 20s));
    std::set<uint64_t> offsets;
    for (auto& r : a.results) {
        ASSERT_TRUE(r.has_value()) << r.error().message();
        offsets.insert(*r);
    }
    EXPECT_EQ(offsets.size(), 100u);
    EXPECT_EQ(*offsets.begin(), 0u);
    EXPECT_EQ(*offsets.rbegin(), 99u);
    EXPECT_EQ((*b)->get_stats(2).durable_end, 100u);
    EXPECT_EQ((*b)->get_stats(2).appends, 100u);

    auto recs = read_all(**b, 2, 0, 100);
    ASSERT_EQ(recs.size(), 100u);
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(recs[i].offset, static_cast<uint64_t>(i));
        EXPECT_EQ(recs[i].msg, msg(i));
    }
    // A reader from the middle starts there.
    auto tail = read_all(**b, 2, 90, 10);
    ASSERT_EQ(tail.size(), 10u);
    EXPECT_EQ(tail.front().offset, 90u);
    // Other partitions stayed empty.
    EXPECT_EQ((*b)->get_stats(1).durable_end, 0u);
    (*b)->stop();
}

TEST(kafka_bus, reader_refuses_offsets_outside_the_partition) {
    mock_cluster mc(1, 2);
    auto b = open_kafka(options_for(mc));
    ASSERT_TRUE(b.has_value());
    acks a;
    for (int i = 0; i < 5; ++i)
        (*b)->append(0, msg(i), a.callback());
    ASSERT_TRUE(a.wait_for(5, 20s));
    auto beyond = (*b)->open_reader(0, 6);
    ASSERT_FALSE(beyond.has_value());
    EXPECT_EQ(beyond.error(), errc::invalid_argument);
    auto bad = (*b)->open_reader(7, 0);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), errc::invalid_argument);
    // At the end: waits for new records, then returns them.
    auto at_end = (*b)->open_reader(0, 5);
    ASSERT_TRUE(at_end.has_value());
    std::vector<record> out;
    auto n = (*at_end)->poll(out, 10, 200ms);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 0u);
    (*b)->append(0, msg(5), a.callback());
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (out.empty() && std::chrono::steady_clock::now() < deadline)
        ASSERT_TRUE((*at_end)->poll(out, 10, 200ms));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].offset, 5u);
    EXPECT_EQ(out[0].msg, msg(5));
}

TEST(kafka_bus, retried_produce_errors_and_leader_moves_store_each_record_once) {
    mock_cluster mc(3, 1);
    auto b = open_kafka(options_for(mc));
    ASSERT_TRUE(b.has_value());
    acks a;
    // Produce (API key 0) fails transiently three times: the idempotent producer retries.
    rd_kafka_mock_push_request_errors(mc.get(), 0, 3, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    for (int i = 0; i < 200; ++i) {
        if (i == 100) rd_kafka_mock_partition_set_leader(mc.get(), "t", 0, 2);
        (*b)->append(0, msg(i), a.callback());
        if (i % 20 == 0) std::this_thread::sleep_for(5ms);
    }
    ASSERT_TRUE(a.wait_for(200, 30s));
    EXPECT_EQ(a.ok(), 200u);
    auto recs = read_all(**b, 0, 0, 200);
    ASSERT_EQ(recs.size(), 200u);
    for (int i = 0; i < 200; ++i)
        EXPECT_EQ(recs[i].msg, msg(i)) << i;  // in order, no duplicate
}

TEST(kafka_bus, unreachable_kafka_applies_back_pressure_and_never_acknowledges) {
    mock_cluster mc(1, 1);
    auto o = options_for(mc);
    o.max_in_flight = 10;
    o.delivery_timeout = 1500ms;
    auto b = open_kafka(o);
    ASSERT_TRUE(b.has_value());
    EXPECT_FALSE((*b)->over_quota());
    rd_kafka_mock_broker_set_down(mc.get(), 1);
    acks a;
    for (int i = 0; i < 12; ++i)
        (*b)->append(0, msg(i), a.callback());
    EXPECT_TRUE((*b)->over_quota());  // the broker stops reading publishers
    ASSERT_TRUE(a.wait_for(12, 20s));
    EXPECT_EQ(a.ok(), 0u);  // nothing Kafka did not take is acknowledged
    for (auto& r : a.results)
        EXPECT_EQ(r.error(), errc::io_error);
    EXPECT_FALSE((*b)->over_quota());

    // Kafka back: once the producer has reconnected, appends are acknowledged again.
    rd_kafka_mock_broker_set_up(mc.get(), 1);
    bool acknowledged = false;
    for (int attempt = 0; attempt < 20 && !acknowledged; ++attempt) {
        acks after;
        for (int i = 0; i < 5; ++i)
            (*b)->append(0, msg(100 + i), after.callback());
        ASSERT_TRUE(after.wait_for(5, 30s));
        acknowledged = after.ok() == 5;
    }
    ASSERT_TRUE(acknowledged);
    auto recs = read_all(**b, 0, (*b)->get_stats(0).durable_end - 5, 5);
    ASSERT_EQ(recs.size(), 5u);
    EXPECT_EQ(recs.back().msg, msg(104));
}

TEST(kafka_bus, append_after_stop_fails_closed) {
    mock_cluster mc(1, 1);
    auto b = open_kafka(options_for(mc));
    ASSERT_TRUE(b.has_value());
    (*b)->stop();
    acks a;
    (*b)->append(0, msg(0), a.callback());
    ASSERT_TRUE(a.wait_for(1, 1s));
    EXPECT_EQ(a.results[0].error(), errc::closed);
}

TEST(kafka_bus, open_fails_for_a_missing_topic_or_bad_setting) {
    mock_cluster mc(1, 1);
    auto o = options_for(mc);
    o.properties["no.such.setting"] = "1";
    auto bad = open_kafka(o);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), errc::invalid_argument);
    o = options_for(mc);
    o.brokers = "";
    EXPECT_FALSE(open_kafka(o).has_value());
}

// Ownership of one member, as the group reports it.
struct owner {
    std::mutex m;
    std::set<uint32_t> owned;
    bus::partitions_callback assigned() {
        return [this](const std::vector<uint32_t>& p) {
            std::lock_guard<std::mutex> lock(m);
            owned.insert(p.begin(), p.end());
        };
    }
    bus::partitions_callback revoked() {
        return [this](const std::vector<uint32_t>& p) {
            std::lock_guard<std::mutex> lock(m);
            for (auto x : p)
                owned.erase(x);
        };
    }
    std::set<uint32_t> get() {
        std::lock_guard<std::mutex> lock(m);
        return owned;
    }
};

template <class Pred>
bool eventually(Pred p, std::chrono::seconds timeout = 45s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (p()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return p();
}

TEST(kafka_bus, group_members_split_partitions_and_take_over_on_leave) {
    mock_cluster mc(1, 4);
    auto o = options_for(mc);
    auto b = open_kafka(o);
    ASSERT_TRUE(b.has_value());
    auto b2 = open_kafka(o);
    ASSERT_TRUE(b2.has_value());
    owner first, second;
    auto m1 = (*b)->join_group("g", first.assigned(), first.revoked());
    ASSERT_TRUE(m1.has_value());
    ASSERT_TRUE(eventually([&] { return first.get().size() == 4; })) << first.get().size();
    auto m2 = (*b2)->join_group("g", second.assigned(), second.revoked());
    ASSERT_TRUE(m2.has_value());
    ASSERT_TRUE(eventually([&] {
        auto a = first.get(), c = second.get();
        if (a.empty() || c.empty() || a.size() + c.size() != 4) return false;
        for (auto p : a) {
            if (c.count(p)) return false;
        }
        return true;
    })) << first.get().size()
        << " + " << second.get().size();
    // The second member leaves: the first owns everything again.
    m2->reset();
    EXPECT_TRUE(second.get().empty());
    ASSERT_TRUE(eventually([&] { return first.get().size() == 4; })) << first.get().size();
    m1->reset();
    EXPECT_TRUE(first.get().empty());
}

// Partition -> owners' member ids, from a description.
std::map<uint32_t, std::vector<std::string>> owners(const bus::group_description& d) {
    std::map<uint32_t, std::vector<std::string>> out;
    for (const auto& m : d.members) {
        for (uint32_t p : m.partitions)
            out[p].push_back(m.member_id);
    }
    return out;
}

// The mock cluster cannot describe groups; the owners come from the records each member
// commits with its offset hints, seen from a process that is not in the group.
TEST(kafka_bus, describe_group_names_each_partitions_one_owner_as_members_come_and_go) {
    mock_cluster mc(1, 4);
    auto o = options_for(mc);
    o.properties["session.timeout.ms"] = "3000";
    o.properties["heartbeat.interval.ms"] = "300";
    auto b = open_kafka(o);
    auto b2 = open_kafka(o);
    auto viewer = open_kafka(o);
    ASSERT_TRUE(b.has_value() && b2.has_value() && viewer.has_value());
    auto empty = (*viewer)->describe_group("g");
    ASSERT_TRUE(empty.has_value()) << empty.error().message();
    EXPECT_EQ(empty->source, "offset-metadata");
    EXPECT_TRUE(empty->members.empty());
    EXPECT_EQ(empty->ends.size(), 4u);

    owner first, second;
    auto m1 = (*b)->join_group("g", first.assigned(), first.revoked());
    auto m2 = (*b2)->join_group("g", second.assigned(), second.revoked());
    ASSERT_TRUE(m1.has_value() && m2.has_value());
    auto split = [&](size_t members) {
        auto d = (*viewer)->describe_group("g");
        if (!d || d->members.size() != members) return false;
        auto by_partition = owners(*d);
        if (by_partition.size() != 4) return false;
        for (const auto& [p, ids] : by_partition) {
            if (ids.size() != 1) return false;
        }
        return true;
    };
    ASSERT_TRUE(eventually([&] { return split(2); }, 20s));
    auto d = (*viewer)->describe_group("g");
    ASSERT_TRUE(d.has_value());
    for (const auto& m : d->members) {
        EXPECT_EQ(m.client_id, "sluice");
        EXPECT_FALSE(m.host.empty());
        EXPECT_GT(m.seen_ms, 0);
    }
    // An offset hint carries its owner's record too.
    ASSERT_TRUE((*b)->commit_cursor("c", *first.get().begin(), 0).has_value());
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(split(2));
    // The second member leaves: the first is the only owner.
    m2->reset();
    ASSERT_TRUE(eventually([&] { return split(1); }, 20s));
    m1->reset();
}

}  // namespace
}  // namespace sluice::bus
