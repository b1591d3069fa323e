// SPDX-License-Identifier: Apache-2.0
//
// --verify-pg against a private PostgreSQL with Sluice's real schema: rows written
// through the store for registered devices must be counted per device and compared
// with the acknowledged readings exactly (a missing row, an extra row, a foreign device
// and rows from before the run are each told apart).
#include "verify_pg.h"

#include <chrono>

#include <gtest/gtest.h>

#include "store/registry.h"
#include "store/store.h"
#include "tests/support/pg_instance.h"

namespace sluice::loadgen {
namespace {

using namespace std::chrono_literals;

class verify_pg_test : public ::testing::Test {
protected:
    void SetUp() override {
        auto inst = test::pg_instance::start();
        ASSERT_TRUE(inst) << inst.error().message();
        pg_ = std::move(*inst);
        auto db = pg_->create_database("loadgen");
        ASSERT_TRUE(db);
        url_ = *db;
        store::store_options o;
        o.telemetry_url = url_;
        o.app_url = url_;
        auto s = store::open_postgres(o);
        ASSERT_TRUE(s);
        store_ = std::move(*s);
        ASSERT_TRUE(store_->migrate());
        auto reg = store::open_registry(o);
        ASSERT_TRUE(reg) << reg.error().message();
        registry_ = std::move(*reg);
    }

    int32_t device(const std::string& key) {
        auto d = registry_->ensure_device(key, "", "");
        EXPECT_TRUE(d);
        return d ? d->id : -1;
    }

    void write(int32_t device_id, int n, int64_t start_us) {
        std::vector<store::row> rows;
        for (int i = 0; i < n; ++i)
            rows.push_back({start_us + i * 1000, device_id, 1, 21.5 + i, 0});
        auto w = store_->write_batch(rows, {}, {});
        ASSERT_TRUE(w) << w.error().message();
    }

    std::unique_ptr<test::pg_instance> pg_;
    std::string url_;
    std::unique_ptr<store::telemetry_store> store_;
    std::unique_ptr<store::registry> registry_;
};

TEST_F(verify_pg_test, counts_rows_per_device_against_acknowledged_readings) {
    const int64_t since = 1'732'212'345'000'000;
    const int32_t d0 = device("lg-0"), d1 = device("lg-1"), d2 = device("lg-2"), other = device("sensor-9");
    write(d0, 5, since);
    write(d1, 3, since);
    write(d2, 2, since - 10'000'000);  // before the run: not ours
    write(other, 4, since);            // another fleet
    pg_expectation e;
    e.readings_acked = {5, 4, 0};
    e.since_us = since;
    auto v = verify_pg(url_, e, 1500ms, 600ms);
    ASSERT_TRUE(v) << v.error().message();
    EXPECT_EQ(v->expected, 9u);
    EXPECT_EQ(v->stored, 8u);
    EXPECT_EQ(v->missing, 1u);
    EXPECT_EQ(v->devices_short, 1u);
    EXPECT_EQ(v->extra, 0u);

    // The late row lands, plus a duplicate for device 0: nothing missing, one extra.
    write(d1, 1, since + 50'000);
    write(d0, 1, since);
    v = verify_pg(url_, e, 1500ms, 600ms);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->missing, 0u);
    EXPECT_EQ(v->extra, 1u);
    EXPECT_EQ(v->devices_over, 1u);
    EXPECT_EQ(v->stored, 10u);
}

TEST_F(verify_pg_test, unreachable_database_is_an_error_not_a_verdict) {
    pg_expectation e;
    e.readings_acked = {1};
    auto v = verify_pg("host=/nonexistent-dir port=1 dbname=x connect_timeout=1", e, 1000ms, 500ms);
    EXPECT_FALSE(v);
}

}  // namespace
}  // namespace sluice::loadgen
