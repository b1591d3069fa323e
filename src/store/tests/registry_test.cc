// SPDX-License-Identifier: Apache-2.0
//
// The device/metric registry against a private PostgreSQL.
#include "store/registry.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/pg_instance.h"

namespace sluice::store {
namespace {

using test::pg_instance;

class registry_test : public ::testing::Test {
protected:
    void SetUp() override {
        auto inst = pg_instance::start();
        ASSERT_TRUE(inst) << inst.error().message();
        pg_ = std::move(*inst);
        auto db = pg_->create_database("app");
        ASSERT_TRUE(db);
        url_ = *db;
        store_options o;
        o.app_url = url_;
        auto r = open_registry(o);
        ASSERT_TRUE(r) << r.error().message();
        reg_ = std::move(*r);
    }
    std::unique_ptr<pg_instance> pg_;
    std::string url_;
    std::unique_ptr<registry> reg_;
};

// Issue 11: a burst of new metric names is registered in one statement; known names keep
// their ids, quotes and backslashes survive the array literal, duplicates collapse.
TEST_F(registry_test, ensure_metrics_registers_a_burst_at_once) {
    auto known = reg_->ensure_metric("temperature");
    ASSERT_TRUE(known);
    std::vector<std::string> names{"temperature", "a\"quoted\"", "back\\slash", "m1", "m1"};
    for (int i = 0; i < 5000; ++i)
        names.push_back("burst_" + std::to_string(i));
    auto got = reg_->ensure_metrics(names);
    ASSERT_TRUE(got) << got.error().message();
    std::map<std::string, int32_t> ids(got->begin(), got->end());
    EXPECT_EQ(ids.size(), 5004u);
    EXPECT_EQ(ids["temperature"], *known);
    EXPECT_EQ(ids.count("a\"quoted\""), 1u);
    EXPECT_EQ(ids.count("back\\slash"), 1u);
    auto again = reg_->ensure_metric("burst_4999");
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, ids["burst_4999"]);
    auto all = reg_->load_metrics();
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 5004u);
}

TEST_F(registry_test, ensure_device_registers_once_and_fills_unknown_site) {
    auto a = reg_->ensure_device("press-7", "", "");
    ASSERT_TRUE(a);
    EXPECT_GT(a->id, 0);
    EXPECT_EQ(a->key, "press-7");
    EXPECT_EQ(a->name, "press-7");
    EXPECT_EQ(a->metadata_json, "{}");
    auto b = reg_->ensure_device("press-7", "plant-a", "line-2");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->id, a->id);
    EXPECT_EQ(b->site, "plant-a");
    EXPECT_EQ(b->line, "line-2");
    auto c = reg_->ensure_device("press-7", "plant-b", "line-9");  // known values are kept
    ASSERT_TRUE(c);
    EXPECT_EQ(c->site, "plant-a");
    auto other = reg_->ensure_device("press-8", "plant-a", "line-2");
    ASSERT_TRUE(other);
    EXPECT_NE(other->id, a->id);

    auto found = reg_->find_device("press-7");
    ASSERT_TRUE(found);
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->id, a->id);
    auto missing = reg_->find_device("nope");
    ASSERT_TRUE(missing);
    EXPECT_FALSE(missing->has_value());
    auto all = reg_->load_devices();
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[1].key, "press-8");
    EXPECT_EQ(reg_->ensure_device("", "", "").error(), errc::invalid_argument);
}

TEST_F(registry_test, ensure_devices_registers_a_batch_in_one_go) {
    auto existing = reg_->ensure_device("old-1", "s0", "");
    ASSERT_TRUE(existing);
    std::vector<registry::device_request> req = {
        {"old-1", "ignored", ""}, {"new-\"quoted\\", "plant-2", "line-3"}, {"new-2", "", ""}, {"new-2", "", ""}};
    auto got = reg_->ensure_devices(req);
    ASSERT_TRUE(got) << got.error().message();
    std::map<std::string, device> by_key;
    for (auto& d : *got)
        by_key[d.key] = d;
    ASSERT_EQ(by_key.size(), 3u);
    EXPECT_EQ(by_key["old-1"].id, existing->id);
    EXPECT_EQ(by_key["old-1"].site, "s0");
    EXPECT_EQ(by_key["new-\"quoted\\"].site, "plant-2");
    EXPECT_EQ(by_key["new-\"quoted\\"].line, "line-3");
    auto again = reg_->ensure_devices(req);
    ASSERT_TRUE(again);
    for (auto& d : *again)
        EXPECT_EQ(d.id, by_key[d.key].id) << d.key;
    auto all = reg_->load_devices();
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 3u);
}

TEST_F(registry_test, metrics_register_once_and_load_with_conversion_and_ranges) {
    auto t = reg_->ensure_metric("temperature");
    ASSERT_TRUE(t);
    EXPECT_EQ(reg_->ensure_metric("temperature").value(), *t);
    auto h = reg_->ensure_metric("humidity");
    ASSERT_TRUE(h);
    EXPECT_NE(*h, *t);
    ASSERT_TRUE(pg_instance::query(url_,
                                   "UPDATE sluice_app.metrics SET unit = 'degC', scale = 0.5556, \"offset\" = -17.78, "
                                   "valid_min = -50, valid_max = 150, warn_high = 90 WHERE name = 'temperature'"));
    auto ms = reg_->load_metrics();
    ASSERT_TRUE(ms);
    ASSERT_EQ(ms->size(), 2u);
    const metric_row& m = (*ms)[0];
    EXPECT_EQ(m.name, "temperature");
    EXPECT_EQ(m.unit, "degC");
    EXPECT_DOUBLE_EQ(m.scale, 0.5556);
    EXPECT_DOUBLE_EQ(m.offset, -17.78);
    EXPECT_EQ(m.valid_min, std::optional<double>(-50));
    EXPECT_EQ(m.valid_max, std::optional<double>(150));
    EXPECT_EQ(m.warn_low, std::nullopt);
    EXPECT_EQ(m.warn_high, std::optional<double>(90));
    EXPECT_EQ((*ms)[1].scale, 1.0);
    // Re-opening migrates nothing and keeps the data.
    store_options o;
    o.app_url = url_;
    auto again = open_registry(o);
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)->load_metrics().value().size(), 2u);
}

}  // namespace
}  // namespace sluice::store
