// SPDX-License-Identifier: Apache-2.0
//
// Unit conversion table, metric dictionary, the z-score detector, the sequence-gap
// tracker and the transformer that applies them to decoded payloads.
#include "pipeline/transforms.h"

#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "pipeline/metrics.h"

namespace sluice::pipeline {
namespace {

double convert(std::string_view from, std::string_view to, double x) {
    const auto c = find_unit_conversion(from, to);
    EXPECT_TRUE(c.has_value()) << from << " -> " << to;
    return c ? x * c->scale + c->offset : std::numeric_limits<double>::quiet_NaN();
}

TEST(units, table_driven_conversions) {
    EXPECT_NEAR(convert("degF", "degC", 212), 100, 1e-12);
    EXPECT_NEAR(convert("°F", "°C", 32), 0, 1e-12);
    EXPECT_NEAR(convert("degC", "degF", 100), 212, 1e-12);  // reverse direction is derived
    EXPECT_NEAR(convert("K", "degC", 273.15), 0, 1e-12);
    EXPECT_NEAR(convert("kPa", "bar", 101.325), 1.01325, 1e-12);
    EXPECT_NEAR(convert("mV", "V", 3300), 3.3, 1e-12);
    EXPECT_NEAR(convert("psi", "kPa", 1), 6.894757293168, 1e-9);  // two steps through bar
    EXPECT_NEAR(convert("degF", "K", 32), 273.15, 1e-9);
    EXPECT_EQ(convert("V", "V", 5), 5);
    EXPECT_FALSE(find_unit_conversion("V", "bar").has_value());
    EXPECT_FALSE(find_unit_conversion("furlong", "m").has_value());
}

TEST(metric_dictionary, lookup_by_id_and_name) {
    metric_dictionary dict;
    std::string reason;
    ASSERT_TRUE(dict.add({.id = 3, .name = "temperature", .unit = "degC", .input_unit = "degF"}, reason)) << reason;
    ASSERT_TRUE(dict.add({.id = 4, .name = "humidity", .unit = "percent"}, reason)) << reason;
    EXPECT_EQ(dict.size(), 2u);
    ASSERT_NE(dict.find(3), nullptr);
    EXPECT_EQ(dict.find(3)->name, "temperature");
    EXPECT_NEAR(dict.find("temperature")->scale, 5.0 / 9.0, 1e-15);
    EXPECT_EQ(dict.find("humidity")->id, 4u);
    EXPECT_EQ(dict.find(99), nullptr);
    EXPECT_EQ(dict.find("nope"), nullptr);

    EXPECT_FALSE(dict.add({.id = 5, .name = "temperature", .unit = "degC"}, reason));
    EXPECT_EQ(reason, "metric name 'temperature' is already used by id 3");
    EXPECT_FALSE(dict.add({.id = 6, .name = "x", .unit = "V", .input_unit = "bar"}, reason));
    EXPECT_EQ(reason, "metric 'x': no conversion from 'bar' to 'V'");
    EXPECT_FALSE(dict.add({.id = 7, .name = ""}, reason));
    EXPECT_EQ(reason, "metric 7 has an empty name");

    // Replacing id 3 renames it; the old name no longer resolves.
    ASSERT_TRUE(dict.add({.id = 3, .name = "temp", .unit = "degC"}, reason));
    EXPECT_EQ(dict.find("temperature"), nullptr);
    EXPECT_EQ(dict.find("temp")->id, 3u);
    EXPECT_EQ(dict.size(), 2u);
}

TEST(zscore_detector, flags_spikes_after_min_samples) {
    anomaly_config cfg;
    cfg.min_samples = 30;
    cfg.zscore_threshold = 4;
    zscore_detector z(cfg);
    std::mt19937 rng(1);
    std::normal_distribution<double> noise(20.0, 0.5);
    EXPECT_FALSE(z.observe(1, 1, 1000.0));  // first sample: nothing to compare with
    for (int i = 0; i < 28; ++i)
        EXPECT_FALSE(z.observe(1, 1, noise(rng))) << i;  // still below min_samples
    int flagged = 0;
    for (int i = 0; i < 500; ++i)
        flagged += z.observe(1, 1, noise(rng));
    EXPECT_LT(flagged, 5);  // ~no false positives on clean noise
    EXPECT_TRUE(z.observe(1, 1, 40.0));
    EXPECT_FALSE(z.observe(2, 1, 40.0));  // another device is another series
    EXPECT_EQ(z.series(), 2u);
}

TEST(zscore_detector, flat_series_flags_any_change) {
    anomaly_config cfg;
    cfg.min_samples = 5;
    zscore_detector z(cfg);
    for (int i = 0; i < 10; ++i)
        EXPECT_FALSE(z.observe(1, 1, 1.0));
    EXPECT_TRUE(z.observe(1, 1, 2.0));
}

TEST(sequence_tracker, gaps_reorder_duplicates_restarts) {
    sequence_tracker t;
    EXPECT_EQ(t.observe("a", 10), 0u);  // baseline
    EXPECT_EQ(t.observe("a", 11), 0u);
    EXPECT_EQ(t.observe("a", 15), 3u);  // 12, 13, 14 missing
    EXPECT_EQ(t.observe("a", 13), 0u);  // late
    EXPECT_EQ(t.observe("a", 15), 0u);  // duplicate
    EXPECT_EQ(t.observe("a", 16), 0u);
    EXPECT_EQ(t.observe("a", 0), 0u);  // back to 0 without the flag: a reboot
    EXPECT_EQ(t.observe("b", 5, true), 0u);
    EXPECT_EQ(t.observe("b", 6), 0u);
    EXPECT_EQ(t.observe("b", 0, true), 0u);  // restart flag
    EXPECT_EQ(t.observe("b", 1), 0u);
    EXPECT_EQ(t.observe("b", 5'000'000), 0u);  // absurd jump: resynchronise
    const auto& c = t.totals();
    EXPECT_EQ(c.devices, 2u);
    EXPECT_EQ(c.payloads, 12u);
    EXPECT_EQ(c.gaps, 1u);
    EXPECT_EQ(c.missing, 3u);
    EXPECT_EQ(c.late_or_duplicate, 2u);  // 13 and the second 15
    EXPECT_EQ(c.restarts, 4u);           // a's 0, b's first flag, b's second flag, the jump
    EXPECT_EQ(c.in_order, 4u);
}

TEST(sequence_tracker, far_behind_is_a_restart) {
    sequence_tracker t({.reorder_window = 100, .max_gap = 1000});
    EXPECT_EQ(t.observe("d", 5000), 0u);
    EXPECT_EQ(t.observe("d", 3), 0u);  // 4997 behind > window: restart
    EXPECT_EQ(t.observe("d", 4), 0u);
    EXPECT_EQ(t.observe("d", 7), 2u);
    EXPECT_EQ(t.totals().restarts, 1u);
    EXPECT_EQ(t.totals().late_or_duplicate, 0u);
}

class transformer_test : public ::testing::Test {
protected:
    void SetUp() override {
        std::string reason;
        ASSERT_TRUE(dict_.add({.id = 3,
                               .name = "temperature",
                               .unit = "degC",
                               .input_unit = "degF",
                               .valid_min = -40.0,
                               .valid_max = 125.0,
                               .warn_high = 80.0},
                              reason));
        ASSERT_TRUE(
            dict_.add({.id = 4, .name = "pressure", .unit = "bar", .input_unit = "kPa", .warn_low = 0.5}, reason));
    }
    metric_dictionary dict_;
    std::vector<telemetry_row> rows_;
    std::vector<rejected_reading> rejected_;
};

TEST_F(transformer_test, converts_validates_and_flags) {
    transformer tf(dict_);
    decoded_payload p;
    p.readings = {{1000, "temperature", 0, 212.0},  // 100 degC: above warn_high
                  {1000, "pressure", 0, 101.325},   // 1.01325 bar
                  {1000, "temperature", 0, 300.0},  // 148.9 degC: outside valid range, kept
                  {1000, "rain", 0, 1.0},           // unknown
                  {2000, {}, 4, 20.0},              // by id: 0.2 bar, below warn_low
                  {1000, {}, 9, 1.0},               // unknown id
                  {1000, "pressure", 0, std::numeric_limits<double>::quiet_NaN()},
                  {999'999, "pressure", 0, 100.0},          // far in the future
                  {7'258'118'400'000, "pressure", 0, 1.0},  // 2200-01-01: the store cannot hold it
                  {-1, "pressure", 0, 1.0}};
    tf.apply(7, "dev-7", p, 10'000, rows_, rejected_);
    ASSERT_EQ(rows_.size(), 5u);
    EXPECT_NEAR(rows_[0].value, 100.0, 1e-12);
    EXPECT_EQ(rows_[0].flags, flag::threshold);
    EXPECT_EQ(rows_[0].device_id, 7u);
    EXPECT_EQ(rows_[0].metric_id, 3u);
    EXPECT_NEAR(rows_[1].value, 1.01325, 1e-12);
    EXPECT_EQ(rows_[1].flags, 0);
    EXPECT_EQ(rows_[2].flags, flag::out_of_range | flag::threshold);
    EXPECT_NEAR(rows_[3].value, 0.2, 1e-12);
    EXPECT_EQ(rows_[3].flags, flag::threshold);
    EXPECT_EQ(rows_[3].time_ms, 2000);
    EXPECT_EQ(rows_[4].flags, flag::future_time);
    ASSERT_EQ(rejected_.size(), 5u);
    EXPECT_EQ(rejected_[3].reason, "metric 'pressure': time 7258118400000 ms is outside the storable range");
    EXPECT_EQ(rejected_[4].index, 9u);
    EXPECT_EQ(rejected_[0].index, 3u);
    EXPECT_EQ(rejected_[0].reason, "unknown metric 'rain'");
    EXPECT_EQ(rejected_[1].reason, "unknown metric id 9");
    EXPECT_EQ(rejected_[2].reason, "metric 'pressure': value NaN is not finite");
}

TEST_F(transformer_test, flags_rows_after_a_sequence_gap) {
    transformer tf(dict_);
    decoded_payload p;
    p.readings = {{1000, {}, 3, 50.0}};
    for (uint64_t seq : {1u, 2u, 5u, 6u}) {
        p.seq = seq;
        tf.apply(1, "dev-1", p, 10'000, rows_, rejected_);
    }
    ASSERT_EQ(rows_.size(), 4u);
    EXPECT_EQ(rows_[0].flags, 0);
    EXPECT_EQ(rows_[1].flags, 0);
    EXPECT_EQ(rows_[2].flags, flag::after_gap);
    EXPECT_EQ(rows_[3].flags, 0);
    EXPECT_EQ(tf.sequences().totals().missing, 2u);
    EXPECT_TRUE(rejected_.empty());
}

TEST_F(transformer_test, unknown_metric_names_can_be_registered_on_the_fly) {
    transformer tf(dict_);
    int calls = 0;
    tf.on_unknown_metric([&](std::string_view name) -> const metric_def* {
        ++calls;
        if (name != "rain") return nullptr;
        std::string reason;
        EXPECT_TRUE(dict_.add({.id = 50, .name = "rain", .unit = "mm"}, reason));
        return dict_.find(50);
    });
    decoded_payload p;
    p.readings = {{1000, "rain", 0, 2.5}, {1000, "snow", 0, 1.0}, {1000, {}, 51, 1.0}, {1001, "rain", 0, 3.0}};
    tf.apply(1, "d", p, 10'000, rows_, rejected_);
    ASSERT_EQ(rows_.size(), 2u);
    EXPECT_EQ(rows_[0].metric_id, 50u);
    EXPECT_EQ(rows_[1].value, 3.0);
    EXPECT_EQ(calls, 2);  // "rain" once (then known), "snow" once; never for ids
    ASSERT_EQ(rejected_.size(), 2u);
    EXPECT_EQ(rejected_[0].reason, "unknown metric 'snow'");
    EXPECT_EQ(rejected_[1].reason, "unknown metric id 51");
}

}  // namespace
}  // namespace sluice::pipeline
