// SPDX-License-Identifier: Apache-2.0
//
// Drives broker::connection with no sockets: a recording transport captures what the
// broker sends, and cross-thread posts (from the real WAL's writer thread) are queued and
// run by the test on "the loop", as net/ would.
#include "broker/connection.h"

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "broker/broker.h"
#include "broker/persist/records.h"
#include "broker/persist/state_store.h"
#include "broker/session_spool.h"
#include "broker/shard.h"
#include "bus/wal/wal.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace sluice::broker {
namespace {

using namespace std::chrono_literals;

class recording_transport final : public transport {
public:
    void send(std::string bytes) override {
        if (holding) held += bytes.size();
        decoder.feed(bytes);
    }
    void send_publish(std::string header, message_ptr msg) override {
        if (holding) held += header.size() + msg->payload.size();
        decoder.feed(header);
        decoder.feed(msg->payload);
    }
    void close() override { closed = true; }
    void set_reading(bool enabled) override { reading = enabled; }
    size_t pending_output_bytes() const override { return held; }
    void discard_unsent() override {}  // output is decoded as it is sent: nothing waits
    const std::string& peer() const override { return name; }

    // Everything sent since the last call, decoded.
    std::vector<mqtt::packet> take() {
        std::vector<mqtt::packet> out;
        for (;;) {
            auto p = decoder.next();
            EXPECT_TRUE(p) << p.error().message();
            if (!p || !p->has_value()) break;
            out.push_back(std::move(**p));
        }
        return out;
    }

    mqtt::stream_decoder decoder{mqtt::version::v5};
    // While holding, what is sent counts as unsent output (a peer that does not read)
    // until the test sets held back to 0.
    bool holding = false;
    size_t held = 0;
    bool closed = false;
    bool reading = true;
    std::string name = "test-peer";
};

// A broker with one shard whose loop is the test thread.
class broker_fixture : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ =
            std::filesystem::temp_directory_path() / ("sluice-conn-test-" + std::to_string(::getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        bus::wal_options wo;
        wo.dir = dir_.string();
        wo.group_commit_max_delay = 200us;
        auto w = bus::open_wal(wo);
        ASSERT_TRUE(w) << w.error().message();
        wal_ = std::move(*w);
        now_ = 1'000'000;
        make_broker();
    }
    // A broker (again: a restart keeps the WAL) whose ingest topics are devices/+/telemetry.
    void make_broker() {
        conns_.clear();
        brk_.reset();
        ingest_hook hook;
        hook.log = wal_.get();
        hook.matches = [](std::string_view t) { return mqtt::topic_matches("devices/+/telemetry", t); };
        brk_ = std::make_unique<broker>(
            options_, 1,
            [this](unsigned, std::function<void()> fn) {
                std::lock_guard<std::mutex> lock(mu_);
                posted_.push_back(std::move(fn));
                cv_.notify_all();
            },
            std::move(hook));
        shard_().set_now(now_);
    }
    void TearDown() override {
        conns_.clear();
        brk_.reset();
        if (store_) {
            ASSERT_TRUE(store_->close());
        }
        wal_->stop();
        std::filesystem::remove_all(dir_);
    }
    // Starts over on an empty WAL opened with `wo` (its dir is the fixture's); the broker
    // is gone until the caller makes one.
    void reopen_wal(bus::wal_options wo) {
        conns_.clear();
        brk_.reset();
        wal_->stop();
        std::filesystem::remove_all(dir_);
        wo.dir = dir_.string();
        auto w = bus::open_wal(wo);
        ASSERT_TRUE(w) << w.error().message();
        wal_ = std::move(*w);
    }
    // The session state store under dir_/state, with the sessions' spool files under
    // dir_/spool, opened (again) and restored into brk_.
    void open_store() {
        if (store_) {
            ASSERT_TRUE(store_->close());
        }
        auto sp = spool_directory::open((dir_ / "spool").string());
        ASSERT_TRUE(sp) << sp.error().message();
        spool_ = std::move(*sp);
        persist::options o;
        o.before_sync = [spool = spool_.get()] { return spool->sync_written(); };
        auto st = persist::state_store::open((dir_ / "state").string(), std::move(o));
        ASSERT_TRUE(st) << st.error().message();
        store_ = std::move(*st);
        brk_->restore_from(*store_, spool_.get());
    }

    shard& shard_() { return brk_->get_shard(0); }

    struct client {
        std::unique_ptr<recording_transport> t;
        std::unique_ptr<connection> c;
        std::vector<mqtt::packet> after_connack;  // sent right after the CONNACK (resumed session)
    };

    client& open() {
        auto t = std::make_unique<recording_transport>();
        auto c = std::make_unique<connection>(shard_(), *t);
        conns_.push_back(client{std::move(t), std::move(c), {}});
        return conns_.back();
    }

    static std::string bytes(const mqtt::packet& p, mqtt::version v = mqtt::version::v5) {
        std::string out;
        mqtt::encode(p, v, out);
        return out;
    }

    client& connect(const std::string& id, bool clean = true, uint32_t expiry = 0,
                    std::optional<mqtt::will> will = std::nullopt, uint16_t receive_maximum = 0) {
        client& cl = open();
        mqtt::connect c;
        c.client_id = id;
        c.clean_start = clean;
        c.keep_alive = 60;
        if (expiry) c.props.session_expiry_interval = expiry;
        if (receive_maximum) c.props.receive_maximum = receive_maximum;
        c.will_message = std::move(will);
        cl.c->on_data(bytes(c));
        auto got = cl.t->take();
        EXPECT_GE(got.size(), 1u);
        EXPECT_TRUE(std::holds_alternative<mqtt::connack>(got.at(0)));
        cl.after_connack.assign(std::make_move_iterator(got.begin() + 1), std::make_move_iterator(got.end()));
        return cl;
    }

    // Runs posted functions (WAL completions) until `pred` holds or 5 s pass.
    bool run_until(const std::function<bool()>& pred) {
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!pred()) {
            std::deque<std::function<void()>> batch;
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + 50ms),
                               [this] { return !posted_.empty(); });
                batch.swap(posted_);
            }
            for (auto& fn : batch)
                fn();
            shard_().flush_outbox();
            if (std::chrono::steady_clock::now() > deadline) return pred();
        }
        return true;
    }

    void advance(int64_t ms) {
        now_ += ms;
        shard_().tick(now_);
    }

    std::filesystem::path dir_;
    std::unique_ptr<bus::bus> wal_;
    broker_options options_;                  // for make_broker()
    std::unique_ptr<spool_directory> spool_;  // outlives store_, whose writer syncs it
    std::unique_ptr<persist::state_store> store_;
    std::unique_ptr<broker> brk_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> posted_;
    std::deque<client> conns_;
    int64_t now_ = 0;
};

mqtt::publish make_publish(std::string topic, std::string payload, uint8_t qos, uint16_t id) {
    mqtt::publish p;
    p.topic = std::move(topic);
    p.payload = std::move(payload);
    p.qos = qos;
    p.packet_id = id;
    return p;
}

TEST_F(broker_fixture, ingest_puback_waits_for_wal_durability_and_keeps_order) {
    auto& pub = connect("pub");
    // Ingest, then plain topic: the plain PUBACK must not overtake the ingest one.
    pub.c->on_data(bytes(make_publish("devices/d1/telemetry", "{\"t\":1}", 1, 10)) +
                   bytes(make_publish("plain/topic", "x", 1, 11)));
    EXPECT_TRUE(pub.t->take().empty()) << "acknowledged before the WAL said durable";
    std::vector<mqtt::packet> acks;
    ASSERT_TRUE(run_until([&] {
        for (auto& p : pub.t->take())
            acks.push_back(std::move(p));
        return acks.size() == 2;
    }));
    EXPECT_EQ(std::get<mqtt::puback>(acks[0]).packet_id, 10);
    EXPECT_EQ(std::get<mqtt::puback>(acks[1]).packet_id, 11);
    EXPECT_EQ(wal_->get_stats(0).durable_end, 1u);
}

TEST_F(broker_fixture, qos2_inbound_duplicate_is_not_routed_twice) {
    auto& sub = connect("sub");
    mqtt::subscribe s;
    s.packet_id = 1;
    s.entries.push_back(mqtt::subscription{"q2/#", 2, false, false, 0});
    sub.c->on_data(bytes(s));
    ASSERT_EQ(sub.t->take().size(), 1u);  // SUBACK

    auto& pub = connect("pub");
    auto p = make_publish("q2/a", "once", 2, 7);
    pub.c->on_data(bytes(p));
    p.dup = true;
    pub.c->on_data(bytes(p));  // retransmission before PUBREL
    auto acks = pub.t->take();
    ASSERT_EQ(acks.size(), 2u);
    EXPECT_EQ(std::get<mqtt::pubrec>(acks[0]).packet_id, 7);
    EXPECT_EQ(std::get<mqtt::pubrec>(acks[1]).packet_id, 7);
    mqtt::pubrel rel;
    rel.packet_id = 7;
    pub.c->on_data(bytes(rel));
    auto comp = pub.t->take();
    ASSERT_EQ(comp.size(), 1u);
    EXPECT_EQ(std::get<mqtt::pubcomp>(comp[0]).code, mqtt::reason_code::success);

    auto got = sub.t->take();
    ASSERT_EQ(got.size(), 1u) << "QoS 2 message delivered more than once";
    EXPECT_EQ(std::get<mqtt::publish>(got[0]).payload, "once");
}

TEST_F(broker_fixture, unacknowledged_qos1_is_retransmitted_with_dup_after_reconnect) {
    auto& sub = connect("sub", false, 600);
    mqtt::subscribe s;
    s.packet_id = 1;
    s.entries.push_back(mqtt::subscription{"r/#", 1, false, false, 0});
    sub.c->on_data(bytes(s));
    sub.t->take();
    auto& pub = connect("pub");
    pub.c->on_data(bytes(make_publish("r/1", "a", 1, 1)));
    auto first = sub.t->take();
    ASSERT_EQ(first.size(), 1u);
    uint16_t id = std::get<mqtt::publish>(first[0]).packet_id;
    sub.c->on_transport_closed();  // gone without PUBACK

    // While offline, one more is queued.
    pub.c->on_data(bytes(make_publish("r/2", "b", 1, 2)));

    auto& again = connect("sub", false, 600);
    auto got = std::move(again.after_connack);
    ASSERT_EQ(got.size(), 2u);
    auto& re = std::get<mqtt::publish>(got[0]);
    EXPECT_TRUE(re.dup);
    EXPECT_EQ(re.packet_id, id);
    EXPECT_EQ(re.payload, "a");
    EXPECT_EQ(std::get<mqtt::publish>(got[1]).payload, "b");
    EXPECT_FALSE(std::get<mqtt::publish>(got[1]).dup);
}

TEST_F(broker_fixture, takeover_disconnects_old_connection_with_0x8e) {
    auto& first = connect("same");
    auto& second = connect("same");
    auto got = first.t->take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(std::get<mqtt::disconnect>(got[0]).code, mqtt::reason_code::session_taken_over);
    EXPECT_TRUE(first.t->closed);
    EXPECT_FALSE(second.t->closed);
}

TEST_F(broker_fixture, will_waits_for_its_delay_and_is_cancelled_by_resumption) {
    auto& watcher = connect("watcher");
    mqtt::subscribe s;
    s.packet_id = 1;
    s.entries.push_back(mqtt::subscription{"wills/#", 0, false, false, 0});
    watcher.c->on_data(bytes(s));
    watcher.t->take();

    mqtt::will w;
    w.topic = "wills/a";
    w.payload = "gone";
    w.props.will_delay_interval = 5;
    auto& a = connect("a", false, 600, w);
    a.c->on_transport_closed();
    advance(4000);
    EXPECT_TRUE(watcher.t->take().empty()) << "will sent before its delay";
    advance(1500);
    auto got = watcher.t->take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(std::get<mqtt::publish>(got[0]).payload, "gone");

    auto& b = connect("b", false, 600, w);
    b.c->on_transport_closed();
    advance(2000);
    connect("b", false, 600);  // resumed within the delay: no will
    advance(10000);
    EXPECT_TRUE(watcher.t->take().empty());
}

TEST_F(broker_fixture, session_expires_after_its_interval) {
    auto& s = connect("exp", false, 2);
    s.c->on_transport_closed();
    advance(1000);
    EXPECT_EQ(brk_->get_totals().sessions_current, 1u) << "session kept during its expiry interval";
    advance(1500);
    EXPECT_EQ(brk_->get_totals().sessions_current, 0u);
    EXPECT_EQ(brk_->get_totals().sessions_expired, 1u);
}

TEST_F(broker_fixture, first_packet_must_be_connect) {
    auto& cl = open();
    mqtt::pingreq ping;
    cl.c->on_data(bytes(ping));
    EXPECT_TRUE(cl.t->closed);
    EXPECT_TRUE(cl.t->take().empty());
}

TEST_F(broker_fixture, malformed_packet_gets_disconnect_0x81) {
    auto& cl = connect("bad");
    // PUBLISH QoS 1 whose remaining length says 3 but the topic length says 200.
    cl.c->on_data(std::string("\x32\x03\x00\xc8\x61", 5));
    auto got = cl.t->take();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(std::get<mqtt::disconnect>(got[0]).code, mqtt::reason_code::malformed_packet);
    EXPECT_TRUE(cl.t->closed);
}

TEST_F(broker_fixture, pause_policy_holds_publish_while_over_quota) {
    // Re-open the WAL with a tiny quota that one record already exceeds.
    bus::wal_options wo;
    wo.quota_bytes = 1;
    reopen_wal(wo);
    ingest_hook hook;
    hook.log = wal_.get();
    hook.matches = [](std::string_view) { return true; };
    brk_ = std::make_unique<broker>(
        broker_options{}, 1,
        [this](unsigned, std::function<void()> fn) {
            std::lock_guard<std::mutex> lock(mu_);
            posted_.push_back(std::move(fn));
        },
        std::move(hook));
    shard_().set_now(now_);
    ASSERT_TRUE(wal_->over_quota());
    auto& pub = connect("pub");
    pub.c->on_data(bytes(make_publish("any", "x", 1, 3)));
    EXPECT_FALSE(pub.t->reading);
    EXPECT_TRUE(pub.t->take().empty());
    EXPECT_FALSE(pub.t->closed);
    EXPECT_EQ(brk_->get_totals().ingest_paused, 1u);

    // Held for longer than 1.5 x its keep-alive (60 s): the broker stopped reading, so the
    // client's PINGREQs are unread, not missing; it must not be cut for a keep-alive timeout.
    advance(200'000);
    EXPECT_FALSE(pub.t->closed);
    EXPECT_EQ(brk_->get_totals().keep_alive_timeouts, 0u);
}

// Issue 10: the backlog a session carries into a new connection does not count against
// that connection's online queue bound, also when the new connection takes over a live
// one (it used to keep the old connection's allowance, so a takeover could be
// disconnected for a backlog it never had the chance to read).
TEST_F(broker_fixture, takeover_carries_the_backlog_outside_the_online_bound) {
    options_.subscriber_queue_messages = 10;
    make_broker();
    // One in flight: the rest queues.
    auto subscriber = [&]() -> client& { return connect("slow", false, 600, std::nullopt, 1); };
    auto& first = subscriber();
    mqtt::subscribe s;
    s.packet_id = 1;
    s.entries.push_back(mqtt::subscription{"b/#", 1, false, false, 0});
    first.c->on_data(bytes(s));
    first.t->take();
    auto& pub = connect("pub");
    for (uint16_t i = 1; i <= 9; ++i)  // 1 in flight, 8 queued: under the bound of 10
        pub.c->on_data(bytes(make_publish("b/x", "m" + std::to_string(i), 1, i)));
    shard_().flush_outbox();
    ASSERT_FALSE(first.t->closed);

    auto& second = subscriber();  // takes over: the 8 queued are its carried backlog
    EXPECT_TRUE(first.t->closed);
    for (uint16_t i = 10; i <= 14; ++i)  // 5 more on top of the carried 8: under the bound
        pub.c->on_data(bytes(make_publish("b/x", "m" + std::to_string(i), 1, i)));
    shard_().flush_outbox();
    EXPECT_FALSE(second.t->closed) << "disconnected for the backlog it took over";
    EXPECT_EQ(brk_->get_totals().slow_subscriber_disconnects, 0u);
}

// Issue 10: a subscriber whose session ends with its connection has nothing a disconnect
// would keep, so past its bound it stays connected and the excess is dropped, counted
// (mqtt.clean_subscriber_overflow = drop); `disconnect` closes it with 0x97 instead.
class clean_subscriber_overflow : public broker_fixture {
protected:
    // A clean subscriber to "c/#" with one message in flight at most, then `n` QoS 1
    // messages to it; returns its client.
    client& overflow(uint16_t n) {
        options_.subscriber_queue_messages = 10;
        make_broker();
        client& sub = connect("clean-sub", true, 0, std::nullopt, 1);
        mqtt::subscribe s;
        s.packet_id = 1;
        s.entries.push_back(mqtt::subscription{"c/#", 1, false, false, 0});
        sub.c->on_data(bytes(s));
        sub.t->take();
        auto& pub = connect("pub");
        for (uint16_t i = 1; i <= n; ++i)
            pub.c->on_data(bytes(make_publish("c/x", "m" + std::to_string(i), 1, i)));
        shard_().flush_outbox();
        return sub;
    }
};

TEST_F(clean_subscriber_overflow, past_its_bound_drops_and_stays) {
    client& sub = overflow(20);  // 1 in flight, 10 queued, 9 past the bound
    EXPECT_FALSE(sub.t->closed);
    EXPECT_EQ(brk_->get_totals().dropped_subscriber_queue, 9u);
    EXPECT_EQ(brk_->get_totals().slow_subscriber_disconnects, 0u);
}

TEST_F(clean_subscriber_overflow, is_disconnected_when_configured) {
    options_.clean_subscriber_overflow = broker_options::clean_overflow_policy::disconnect;
    client& sub = overflow(20);
    EXPECT_TRUE(sub.t->closed);
    EXPECT_EQ(brk_->get_totals().dropped_subscriber_queue, 0u);
    EXPECT_EQ(brk_->get_totals().slow_subscriber_disconnects, 1u);
}

// Issue 10: retained messages matched by a SUBSCRIBE are sent a bounded amount per loop
// iteration and only while the subscriber's unsent output stays low, so that a filter
// matching many retained messages, to a subscriber that does not read, neither pins them
// all in its output nor holds the loop (retained_backlog.h).
class retained_backlog_test : public broker_fixture {
protected:
    // `n` retained messages r/0 .. r/<n-1> with `size`-byte payloads at QoS `qos`.
    void retain(int n, size_t size, uint8_t qos = 0) {
        auto& pub = connect("retainer");
        for (int i = 0; i < n; ++i) {
            auto p = make_publish("r/" + std::to_string(i), std::string(size, 'p'), qos,
                                  static_cast<uint16_t>(qos ? i % 60000 + 1 : 0));
            p.retain = true;
            pub.c->on_data(bytes(p));
        }
        pub.t->take();
        ASSERT_EQ(brk_->retained_count(), static_cast<size_t>(n));
    }
    static void subscribe(client& cl, const std::string& filter, uint8_t qos = 0) {
        mqtt::subscribe s;
        s.packet_id = 1;
        s.entries.push_back(mqtt::subscription{filter, qos, false, false, 0});
        cl.c->on_data(bytes(s));
    }
    // The topics of the retained PUBLISHes among `got` (RETAIN set).
    static std::vector<std::string> retained_topics(const std::vector<mqtt::packet>& got) {
        std::vector<std::string> topics;
        for (const auto& p : got) {
            if (const auto* pub = std::get_if<mqtt::publish>(&p); pub != nullptr && pub->retain)
                topics.push_back(pub->topic);
        }
        return topics;
    }
};

TEST_F(retained_backlog_test, a_subscriber_that_does_not_read_holds_only_the_watermark) {
    retain(3000, 400);  // the watermark is reached before the per-iteration count
    auto& sub = connect("sub");
    sub.t->holding = true;
    subscribe(sub, "r/#");
    shard_().flush_outbox();  // the end of the loop iteration
    size_t first = retained_topics(sub.t->take()).size();
    EXPECT_GT(first, 0u);
    EXPECT_LT(first, 3000u) << "every retained message went into the output of a peer that does not read";
    EXPECT_LE(sub.t->held, k_retained_output_watermark + 1024);
    shard_().flush_outbox();
    EXPECT_TRUE(retained_topics(sub.t->take()).empty()) << "more while its output is still full";

    std::set<std::string> topics;
    size_t total = first;
    for (int round = 0; round < 100 && total < 3000; ++round) {  // the peer reads
        sub.t->held = 0;
        shard_().flush_outbox();
        for (auto& t : retained_topics(sub.t->take())) {
            topics.insert(t);
            ++total;
        }
    }
    EXPECT_EQ(total, 3000u);
    EXPECT_EQ(topics.size() + first, 3000u) << "each retained message once";
}

TEST_F(retained_backlog_test, one_loop_iteration_sends_a_bounded_number) {
    retain(3000, 10);
    auto& sub = connect("sub");
    subscribe(sub, "r/#");
    shard_().flush_outbox();
    EXPECT_EQ(retained_topics(sub.t->take()).size(), k_retained_per_iteration);
    size_t total = k_retained_per_iteration;
    while (total < 3000) {
        shard_().flush_outbox();
        size_t n = retained_topics(sub.t->take()).size();
        ASSERT_GT(n, 0u);
        total += n;
    }
    EXPECT_EQ(total, 3000u);
}

TEST_F(retained_backlog_test, a_message_replaced_meanwhile_is_not_sent_stale) {
    retain(10, 5);
    auto& sub = connect("sub");
    sub.t->holding = true;
    sub.t->held = k_retained_output_watermark;  // nothing goes out yet
    subscribe(sub, "r/#");
    shard_().flush_outbox();
    auto& pub = connect("pub");
    auto p = make_publish("r/5", "new", 0, 0);
    p.retain = true;
    pub.c->on_data(bytes(p));  // delivered live
    sub.t->held = 0;
    shard_().flush_outbox();
    std::vector<std::string> r5;
    size_t retained = 0;
    for (const auto& pkt : sub.t->take()) {
        const auto* m = std::get_if<mqtt::publish>(&pkt);
        if (m == nullptr) continue;
        if (m->retain) ++retained;
        if (m->topic == "r/5") r5.push_back(m->payload);
    }
    EXPECT_EQ(r5, std::vector<std::string>{"new"}) << "the old r/5 arrived after the new one";
    EXPECT_EQ(retained, 9u);
}

TEST_F(retained_backlog_test, a_persistent_session_keeps_what_it_was_not_sent) {
    retain(50, 5, 1);
    client& sub = connect("keeper", false, 600, std::nullopt, 1);  // one in flight: the rest waits
    subscribe(sub, "r/#", 1);
    shard_().flush_outbox();
    EXPECT_EQ(retained_topics(sub.t->take()).size(), 1u);
    sub.c->on_transport_closed();

    auto& back = connect("keeper", false, 600);
    std::set<std::string> topics;
    for (auto& t : retained_topics(back.after_connack))
        topics.insert(t);
    EXPECT_EQ(topics.size(), 50u) << "the resumed session got what it was owed";
}

// Issue 10: an MQTT 3.1.1 clean-session=0 session has no expiry of its own; it is kept
// mqtt.v3_session_expiry seconds after disconnect (7 days by default), not forever.
TEST_F(broker_fixture, v3_persistent_session_expires_after_v3_session_expiry) {
    options_.v3_session_expiry = 3;
    make_broker();
    client& cl = open();
    cl.t->decoder = mqtt::stream_decoder{mqtt::version::v3_1_1};
    mqtt::connect c;
    c.protocol = mqtt::version::v3_1_1;
    c.client_id = "old-device";
    c.clean_start = false;
    c.keep_alive = 60;
    cl.c->on_data(bytes(c, mqtt::version::v3_1_1));
    ASSERT_FALSE(cl.t->take().empty());
    cl.c->on_transport_closed();
    advance(2000);
    EXPECT_EQ(brk_->get_totals().sessions_current, 1u) << "kept during mqtt.v3_session_expiry";
    advance(1500);
    EXPECT_EQ(brk_->get_totals().sessions_current, 0u);
    EXPECT_EQ(brk_->get_totals().sessions_expired, 1u);
}

// Issue 10: offline backlogs together are bounded by mqtt.max_queued_bytes_total; past
// it new QoS 1 messages for offline sessions are dropped and counted, the gauge follows
// what is queued, and an ended session returns its bytes.
TEST_F(broker_fixture, offline_queues_share_a_global_quota) {
    options_.max_queued_bytes_total = 1000;
    make_broker();
    for (const char* id : {"off-1", "off-2"}) {
        auto& sub = connect(id, false, 600);
        mqtt::subscribe s;
        s.packet_id = 1;
        s.entries.push_back(mqtt::subscription{"g/#", 1, false, false, 0});
        sub.c->on_data(bytes(s));
        sub.t->take();
        sub.c->on_transport_closed();
    }
    auto& pub = connect("pub");
    const std::string payload(97, 'x');  // + "g/t": 100 bytes queued per session and message
    for (uint16_t i = 1; i <= 8; ++i)
        pub.c->on_data(bytes(make_publish("g/t", payload, 1, i)));
    // 10 fit (1000 bytes over both sessions), the other 6 deliveries are dropped.
    EXPECT_EQ(brk_->get_totals().queued_bytes, 1000u);
    EXPECT_EQ(brk_->get_totals().dropped_global_quota, 6u);
    EXPECT_EQ(brk_->get_totals().dropped_queue_full, 0u);

    auto& back = connect("off-1", true);  // clean start ends the old session and its backlog
    (void)back;
    EXPECT_LE(brk_->get_totals().queued_bytes, 500u);
    pub.c->on_data(bytes(make_publish("g/t", payload, 1, 9)));
    EXPECT_EQ(brk_->get_totals().dropped_global_quota, 6u) << "room again after the session ended";
}

// The resend rule (resend_window.h, docs/delivery.md "Resends after a restart").
class resend_rule : public broker_fixture {
protected:
    // Publishes on the ingest topic and waits for the PUBACK.
    void publish_acked(client& c, const std::string& payload, uint16_t id, bool dup = false) {
        auto p = make_publish("devices/d1/telemetry", payload, 1, id);
        p.dup = dup;
        c.c->on_data(bytes(p));
        std::vector<mqtt::packet> got;
        ASSERT_TRUE(run_until([&] {
            for (auto& x : c.t->take())
                got.push_back(std::move(x));
            return !got.empty();
        }));
        ASSERT_EQ(got.size(), 1u);
        EXPECT_EQ(std::get<mqtt::puback>(got[0]).packet_id, id);
        EXPECT_EQ(std::get<mqtt::puback>(got[0]).code, mqtt::reason_code::success);
    }
    client& reconnect(client& c, const std::string& id) {
        c.c->on_transport_closed();
        return connect(id, false, 600);
    }
    uint64_t logged() { return wal_->get_stats(0).durable_end; }
};

TEST_F(resend_rule, persistent_session_resend_is_acknowledged_and_not_logged_again) {
    auto* pub = &connect("dev", false, 600);
    publish_acked(*pub, "{\"v\":1}", 5);
    ASSERT_EQ(logged(), 1u);
    pub = &reconnect(*pub, "dev");  // as if the PUBACK was lost with the connection
    publish_acked(*pub, "{\"v\":1}", 5, true);
    EXPECT_EQ(logged(), 1u) << "a resend of a logged message was logged again";
    EXPECT_EQ(brk_->get_totals().resends_acknowledged, 1u);

    // The packet id reused (DUP=0) is a new message; so is a DUP=1 of other content.
    publish_acked(*pub, "{\"v\":1}", 5);
    EXPECT_EQ(logged(), 2u);
    publish_acked(*pub, "{\"v\":2}", 6, true);
    EXPECT_EQ(logged(), 3u);
    EXPECT_EQ(brk_->get_totals().resends_acknowledged, 1u);
}

TEST_F(resend_rule, clean_session_resend_is_logged_again) {
    auto* pub = &connect("dev");
    publish_acked(*pub, "{\"v\":1}", 5);
    pub->c->on_transport_closed();
    pub = &connect("dev");
    publish_acked(*pub, "{\"v\":1}", 5, true);
    EXPECT_EQ(logged(), 2u) << "the rule only holds for persistent sessions";
}

TEST_F(resend_rule, resend_before_the_first_append_is_durable_waits_for_it) {
    // A group commit that waits 100 ms for company: with the fixture's 200 us, a loaded
    // machine could make the first append durable before the resend arrives (seen under TSan).
    bus::wal_options slow;
    slow.group_commit_max_delay = 100ms;
    reopen_wal(slow);
    make_broker();
    auto& pub = connect("dev", false, 600);
    auto p = make_publish("devices/d1/telemetry", "{\"v\":1}", 1, 9);
    pub.c->on_data(bytes(p));
    p.dup = true;
    pub.c->on_data(bytes(p));
    EXPECT_TRUE(pub.t->take().empty()) << "acknowledged before the log said durable";
    std::vector<mqtt::packet> acks;
    ASSERT_TRUE(run_until([&] {
        for (auto& x : pub.t->take())
            acks.push_back(std::move(x));
        return acks.size() == 2;
    }));
    EXPECT_EQ(logged(), 1u);
}

TEST_F(resend_rule, window_survives_a_restart_from_the_store) {
    open_store();
    auto& pub = connect("dev", false, 600);
    publish_acked(pub, "{\"v\":1}", 7);
    make_broker();  // restart: the store is closed and opened again
    open_store();
    auto& again = connect("dev", false, 600);
    publish_acked(again, "{\"v\":1}", 7, true);
    EXPECT_EQ(logged(), 1u);
    EXPECT_EQ(brk_->get_totals().resends_acknowledged, 1u);
}

TEST_F(resend_rule, window_is_rebuilt_from_the_log_when_the_store_missed_the_entry) {
    open_store();
    auto& pub = connect("dev", false, 600);
    publish_acked(pub, "{\"v\":1}", 7);
    publish_acked(pub, "{\"v\":2}", 8);
    // A crash after the log's fsync and before the store's: the entries and the newer
    // checkpoint never reached the store, the log has the records (with packet ids).
    store_->erase(persist::kind::resend_entry, persist::resend_entry_key("dev", 7));
    store_->erase(persist::kind::resend_entry, persist::resend_entry_key("dev", 8));
    store_->put(persist::kind::resend_checkpoint, persist::resend_checkpoint_key(0),
                persist::encode(persist::resend_checkpoint_record{0}));
    make_broker();
    open_store();
    auto& again = connect("dev", false, 600);
    publish_acked(again, "{\"v\":2}", 8, true);
    publish_acked(again, "{\"v\":1}", 7, true);
    EXPECT_EQ(logged(), 2u) << "a resend was logged twice after the restart";
    EXPECT_EQ(brk_->get_totals().resends_acknowledged, 2u);
    // A different message under a replayed packet id is new.
    publish_acked(again, "{\"v\":3}", 7, true);
    EXPECT_EQ(logged(), 3u);
}

// At shutdown the state store closes while the bus still completes appends: their
// completions must not write resend entries into the closed store (that aborted sluice on
// SIGTERM in CI). The records carry their packet ids, so the next start replays them.
TEST_F(resend_rule, appends_completing_after_the_store_closed_leave_it_alone) {
    bus::wal_options wo;
    wo.group_commit_max_delay = 300ms;  // the append is still pending when the store closes
    reopen_wal(wo);
    make_broker();
    open_store();
    auto& pub = connect("dev", false, 600);
    pub.c->on_data(bytes(make_publish("devices/d1/telemetry", "{\"v\":1}", 1, 3)));
    pub.c->on_transport_closed();  // as at shutdown: connections end before the store closes
    brk_->detach_resend_store();
    ASSERT_TRUE(store_->close());
    wal_->stop();  // completes the pending append (and runs its completion) after the close
    EXPECT_EQ(logged(), 1u);
}

// Issue 10: what a persistent session queues is in its spool file (session_spool.h), not
// in memory or in the state journal, and a restart reads neither.
class session_spool_test : public broker_fixture {
protected:
    static constexpr int k_messages = 200;
    const std::string payload_ = std::string(1000, 'p');

    // A persistent subscriber "s" to q/# (QoS 1) that goes offline, then k_messages QoS 1
    // messages for it, durable when this returns.
    void queue_offline() {
        open_store();
        auto& sub = connect("s", false, 600);
        mqtt::subscribe s;
        s.packet_id = 1;
        s.entries.push_back(mqtt::subscription{"q/#", 1, false, false, 0});
        sub.c->on_data(bytes(s));
        sub.t->take();
        sub.c->on_transport_closed();
        auto& pub = connect("pub");
        for (int i = 1; i <= k_messages; ++i) {
            std::string body = std::to_string(i) + ":" + payload_;
            pub.c->on_data(bytes(make_publish("q/t", body, 1, static_cast<uint16_t>(i))));
        }
        ASSERT_TRUE(store_->flush());
    }
    uint64_t spool_bytes_on_disk() const {
        uint64_t total = 0;
        for (const auto& e : std::filesystem::directory_iterator(dir_ / "spool"))
            total += e.file_size();
        return total;
    }
    static int sequence_of(const mqtt::publish& p) {
        return std::stoi(std::string(p.payload.substr(0, p.payload.find(':'))));
    }
    // Connects "s" again and takes everything it is owed, acknowledging as it goes;
    // returns the sequence numbers in the order received (DUP retransmissions included).
    std::vector<int> drain(bool* dup_seen = nullptr) {
        auto& c = connect("s", false, 600, std::nullopt, 16);
        std::vector<mqtt::packet> got = std::move(c.after_connack);
        std::vector<int> seqs;
        for (int rounds = 0; rounds < 10 * k_messages && !got.empty(); ++rounds) {
            std::vector<mqtt::packet> next;
            for (auto& p : got) {
                auto* pub = std::get_if<mqtt::publish>(&p);
                if (pub == nullptr) continue;
                seqs.push_back(sequence_of(*pub));
                if (pub->dup && dup_seen) *dup_seen = true;
                c.c->on_data(bytes(mqtt::puback{pub->packet_id, mqtt::reason_code::success, {}}));
                for (auto& x : c.t->take())
                    next.push_back(std::move(x));
            }
            got = std::move(next);
        }
        return seqs;
    }
};

TEST_F(session_spool_test, an_offline_queue_is_on_disk_not_in_memory_or_the_journal) {
    queue_offline();
    session* s = shard_().find_session("s");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->queue.size(), 0u) << "held in memory";
    EXPECT_EQ(s->backlog_messages(), static_cast<size_t>(k_messages));
    EXPECT_GT(spool_bytes_on_disk(), k_messages * payload_.size());
    EXPECT_LT(store_->get_stats().live_bytes, 4096u) << "the journal holds the payloads";
    EXPECT_EQ(brk_->get_totals().queued_bytes, s->backlog_bytes());
    EXPECT_EQ(s->spool.file, nullptr) << "an offline session keeps its spool file open";
}

TEST_F(session_spool_test, a_restart_does_not_read_the_queue_and_delivers_it_in_order) {
    queue_offline();
    const uint64_t queued = brk_->get_totals().queued_bytes;
    make_broker();  // restart on the same state and spool
    open_store();
    session* s = shard_().find_session("s");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->queue.size(), 0u) << "read at start";
    EXPECT_EQ(s->backlog_messages(), static_cast<size_t>(k_messages));
    EXPECT_EQ(brk_->get_totals().queued_bytes, queued);

    std::vector<int> seqs = drain();
    std::vector<int> expected(k_messages);
    std::iota(expected.begin(), expected.end(), 1);
    EXPECT_EQ(seqs, expected);
    EXPECT_EQ(brk_->get_totals().queued_bytes, 0u);
    EXPECT_EQ(s->backlog_messages(), 0u);
}

TEST_F(session_spool_test, a_crash_before_the_spool_advance_was_durable_sends_nothing_twice) {
    queue_offline();
    // The spool's range as it was before the client took anything.
    std::string stale;
    store_->load([&](persist::kind k, std::string_view key, std::string_view value) {
        if (k == persist::kind::spool && key == "s") stale = value;
    });
    ASSERT_FALSE(stale.empty());
    // The client takes a window (16 in flight) without acknowledging, then goes.
    {
        auto& c = connect("s", false, 600, std::nullopt, 16);
        EXPECT_EQ(c.after_connack.size(), 16u);
        c.c->on_transport_closed();
    }
    // As if the crash lost the advance but kept the inflight records before it.
    store_->put(persist::kind::spool, "s", stale);
    ASSERT_TRUE(store_->flush());
    make_broker();
    open_store();
    bool dup_seen = false;
    std::vector<int> seqs = drain(&dup_seen);
    std::vector<int> expected(k_messages);
    std::iota(expected.begin(), expected.end(), 1);
    EXPECT_EQ(seqs, expected) << "the 16 retransmitted once (DUP), then the rest";
    EXPECT_TRUE(dup_seen);
}

TEST_F(session_spool_test, the_quota_of_a_session_counts_its_spool) {
    options_.max_queued_messages = 50;
    make_broker();
    queue_offline();
    EXPECT_EQ(shard_().find_session("s")->backlog_messages(), 50u);
    EXPECT_EQ(brk_->get_totals().dropped_queue_full, static_cast<uint64_t>(k_messages - 50));
}

TEST_F(session_spool_test, an_ended_session_leaves_no_spool_file) {
    queue_offline();
    ASSERT_GT(spool_bytes_on_disk(), 0u);
    connect("s", true);  // clean start: the old session and its queue end
    ASSERT_TRUE(store_->flush());
    // The file goes on the store's writer thread once the session's end is durable.
    for (int i = 0; i < 200 && spool_bytes_on_disk() > 0; ++i)
        std::this_thread::sleep_for(10ms);
    EXPECT_EQ(spool_bytes_on_disk(), 0u);
    EXPECT_EQ(brk_->get_totals().queued_bytes, 0u);
    make_broker();  // and a restart finds nothing of it
    open_store();
    EXPECT_EQ(shard_().find_session("s"), nullptr);
}

}  // namespace
}  // namespace sluice::broker
