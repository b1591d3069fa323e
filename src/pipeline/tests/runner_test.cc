// SPDX-License-Identifier: Apache-2.0
//
// The pipeline runner's failure paths (runner.h), driven through in-memory doubles of the
// bus, the telemetry store and the registry (tests/support/memory_*.h): resuming from the
// stored offset, retrying while the database is down, a batch fenced by an offset another
// writer stored first, the fallback that writes a refused batch message by message, dead
// letters, and resuming past records that retention deleted. Each test checks exactly
// which readings landed, so "exactly once" is what is asserted, not just "something".
#include "pipeline/runner.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "store/errc.h"
#include "tests/support/memory_bus.h"
#include "tests/support/memory_registry.h"
#include "tests/support/memory_store.h"

namespace sluice::pipeline {
namespace {

using namespace std::chrono_literals;

const std::string consumer = "sluice-pipeline";

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// One JSON reading of "temperature" whose value identifies the message in the store.
bus::message reading(double value, const std::string& device = "d1") {
    const int64_t t = now_ms();
    return bus::message{t, device, "devices/" + device + "/telemetry",
                        "{\"ts\": " + std::to_string(t) + ", \"temperature\": " + std::to_string(value) + "}", 1};
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (done()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return done();
}

class runner_test : public ::testing::Test {
protected:
    runner_test() : rules_(rule_set::defaults()) {}
    ~runner_test() override { stop(); }

    void start() {
        runner_options o;
        o.consumer = consumer;
        o.max_batch_delay = 20ms;
        runner_ = std::make_unique<runner>(bus_, store_, registry_, rules_, o);
        runner_->start();
        // database_up is set once the runner has read its stored offset and opened the bus.
        ASSERT_TRUE(eventually([&] { return runner_->get_stats().database_up.load(); }));
    }

    void stop() {
        if (runner_) runner_->stop();
    }

    bool stored_offset_reaches(int64_t offset) {
        return eventually([&] { return store_.offset(consumer, 0) == offset; });
    }

    // The values of the stored readings, in storage order.
    std::vector<double> stored_values() const {
        std::vector<double> v;
        for (const auto& r : store_.rows())
            v.push_back(r.value);
        return v;
    }

    doubles::memory_bus bus_;
    doubles::memory_store store_;
    doubles::memory_registry registry_;
    rule_set rules_;
    std::unique_ptr<runner> runner_;
};

TEST_F(runner_test, stores_every_record_once_with_its_offset_and_commits_the_bus_cursor) {
    for (int i = 0; i < 5; ++i)
        bus_.push(0, reading(10 + i));
    start();
    ASSERT_TRUE(stored_offset_reaches(5));
    EXPECT_EQ(stored_values(), (std::vector<double>{10, 11, 12, 13, 14}));
    EXPECT_TRUE(eventually([&] { return bus_.cursor(consumer, 0).value() == std::optional<uint64_t>(5); }));
    EXPECT_EQ(runner_->get_stats().committed_offset.load(), 5u);
    EXPECT_EQ(store_.rows().front().device_id, registry_.device_id("d1"));
}

TEST_F(runner_test, resumes_from_the_offset_stored_in_the_database) {
    for (int i = 0; i < 5; ++i)
        bus_.push(0, reading(10 + i));
    store_.set_offset(consumer, 0, 3);  // a previous run stored offsets 0..2 with their rows
    start();
    ASSERT_TRUE(stored_offset_reaches(5));
    EXPECT_EQ(stored_values(), (std::vector<double>{13, 14}));
}

TEST_F(runner_test, retries_with_backoff_while_the_database_is_down_then_stores_once) {
    store_.fail_next_writes(store::errc::connection_failed, 2);
    for (int i = 0; i < 3; ++i)
        bus_.push(0, reading(10 + i));
    start();
    ASSERT_TRUE(stored_offset_reaches(3));
    EXPECT_EQ(stored_values(), (std::vector<double>{10, 11, 12}));
    EXPECT_GE(runner_->get_stats().retries.load(), 2u);
    EXPECT_EQ(store_.write_calls(), 3);
    EXPECT_TRUE(eventually([&] { return runner_->get_stats().database_up.load(); })) << "up again after the retries";
}

TEST_F(runner_test, a_batch_whose_offset_another_writer_stored_is_skipped_not_duplicated) {
    start();  // no stored offset: the runner starts at offset 0
    // A zombie's view: another writer commits offsets 0..4 before this runner's batch does.
    store_.set_offset(consumer, 0, 5);
    for (int i = 0; i < 5; ++i)
        bus_.push(0, reading(10 + i));
    ASSERT_TRUE(eventually([&] { return runner_->get_stats().committed_offset.load() == 5; }));
    EXPECT_TRUE(store_.rows().empty()) << "the fenced batch must not be written again";
    for (int i = 5; i < 8; ++i)
        bus_.push(0, reading(10 + i));
    ASSERT_TRUE(stored_offset_reaches(8));
    EXPECT_EQ(stored_values(), (std::vector<double>{15, 16, 17}));
}

TEST_F(runner_test, a_refused_batch_is_rewritten_message_by_message_and_the_refused_one_dead_lettered) {
    store_.refuse_rows([](const store::row& r) { return r.value == 666; });
    for (double v : {10.0, 11.0, 666.0, 12.0})
        bus_.push(0, reading(v));
    start();
    ASSERT_TRUE(stored_offset_reaches(4));
    EXPECT_EQ(stored_values(), (std::vector<double>{10, 11, 12}));
    const auto dead = store_.dead_letters();
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_NE(dead[0].reason.find("the store refused this message"), std::string::npos) << dead[0].reason;
    EXPECT_NE(dead[0].payload.find("666"), std::string::npos);
    EXPECT_EQ(dead[0].topic, "devices/d1/telemetry");
}

TEST_F(runner_test, undecodable_payloads_become_dead_letters_with_a_reason_and_the_offset_moves_on) {
    bus_.push(0, reading(10));
    bus_.push(0, bus::message{now_ms(), "d2", "devices/d2/telemetry", "\x01not a payload", 1});
    bus_.push(0, reading(11));
    start();
    ASSERT_TRUE(stored_offset_reaches(3));
    EXPECT_EQ(stored_values(), (std::vector<double>{10, 11}));
    const auto dead = store_.dead_letters();
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].client_id, "d2");
    EXPECT_EQ(dead[0].payload, "\x01not a payload");
    EXPECT_FALSE(dead[0].reason.empty());
    EXPECT_EQ(runner_->get_stats().dead_letters.load(), 1u);
}

TEST_F(runner_test, resumes_at_the_oldest_record_when_the_stored_offset_was_deleted_by_retention) {
    for (int i = 0; i < 8; ++i)
        bus_.push(0, reading(10 + i));
    bus_.drop_before(0, 5);
    store_.set_offset(consumer, 0, 2);
    start();
    ASSERT_TRUE(stored_offset_reaches(8));
    EXPECT_EQ(stored_values(), (std::vector<double>{15, 16, 17}));
}

// Issue 14: a reader that cannot be opened (here the stored offset is ahead of the bus,
// as while a log is being repaired or a Kafka broker catches up) is retried with backoff;
// the runner used to log one error and end for good, stalling its partition.
TEST_F(runner_test, a_reader_that_cannot_open_is_retried_not_given_up) {
    for (int i = 0; i < 5; ++i)
        bus_.push(0, reading(i));
    store_.set_offset(consumer, 0, 7);
    start();
    std::this_thread::sleep_for(300ms);  // at least one failed open
    for (int i = 5; i < 9; ++i)
        bus_.push(0, reading(10 + i));  // the bus reaches the stored offset and beyond
    ASSERT_TRUE(stored_offset_reaches(9));
    EXPECT_EQ(stored_values(), (std::vector<double>{17, 18}));
}

TEST_F(runner_test, a_restarted_runner_goes_on_where_the_stopped_one_left_off) {
    for (int i = 0; i < 3; ++i)
        bus_.push(0, reading(10 + i));
    start();
    ASSERT_TRUE(stored_offset_reaches(3));
    stop();
    for (int i = 3; i < 6; ++i)
        bus_.push(0, reading(10 + i));
    start();
    ASSERT_TRUE(stored_offset_reaches(6));
    EXPECT_EQ(stored_values(), (std::vector<double>{10, 11, 12, 13, 14, 15}));
}

}  // namespace
}  // namespace sluice::pipeline
