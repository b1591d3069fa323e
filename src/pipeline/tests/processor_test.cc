// SPDX-License-Identifier: Apache-2.0
//
// One message through the whole pure pipeline (rule, decode, device, transforms), with
// the dead-letter reasons of every message-level refusal.
#include "pipeline/processor.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "sluice_edge.h"

namespace sluice::pipeline {
namespace {

class processor_test : public ::testing::Test {
protected:
    void SetUp() override {
        std::string reason;
        ASSERT_TRUE(rules_.add("factory/{site}/{line}/{device}/telemetry", payload_format::json, reason));
        ASSERT_TRUE(rules_.add("devices/{device}/telemetry", payload_format::auto_detect, reason));
        ASSERT_TRUE(rules_.add("legacy/+/data", payload_format::json, reason));
        ASSERT_TRUE(dict_.add({.id = 3, .name = "temperature", .unit = "degC", .input_unit = "degF"}, reason));
        ASSERT_TRUE(dict_.add({.id = 4, .name = "humidity", .unit = "percent"}, reason));
    }

    processor make() {
        return processor(rules_, dict_, [this](std::string_view key, const topic_match& m) -> std::optional<uint32_t> {
            if (key == "banned") return std::nullopt;
            seen_site_ = std::string(m.get("site").value_or(""));
            auto [it, inserted] = ids_.emplace(std::string(key), static_cast<uint32_t>(ids_.size() + 1));
            return it->second;
        });
    }

    rule_set rules_;
    metric_dictionary dict_;
    std::map<std::string, uint32_t> ids_;
    std::string seen_site_;
    std::vector<telemetry_row> rows_;
    std::vector<rejected_reading> rejected_;
};

TEST_F(processor_test, json_message_becomes_rows) {
    auto p = make();
    const message_view m{"factory/lyon/l2/press-7/telemetry", "client-1",
                         R"({"ts": 1000, "temperature": 212, "humidity": 40, "rain": 1})", 5000};
    ASSERT_TRUE(p.process(m, 5000, rows_, rejected_).has_value()) << p.reason();
    EXPECT_EQ(seen_site_, "lyon");
    ASSERT_EQ(rows_.size(), 2u);
    EXPECT_EQ(rows_[0].device_id, ids_.at("press-7"));
    EXPECT_NEAR(rows_[0].value, 100.0, 1e-12);
    EXPECT_EQ(rows_[0].time_ms, 1000);
    ASSERT_EQ(rejected_.size(), 1u);
    EXPECT_EQ(rejected_[0].reason, "unknown metric 'rain'");
    EXPECT_EQ(p.totals().rows, 2u);
    EXPECT_EQ(p.totals().rejected_readings, 1u);
}

TEST_F(processor_test, binary_message_on_the_default_rule) {
    auto p = make();
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    ASSERT_EQ(enc.add(3, 2000, 32.0), sluice_edge::add_status::added);
    ASSERT_EQ(enc.add(4, 2100, 55.5), sluice_edge::add_status::added);
    const auto bytes = enc.finish();
    const message_view m{"devices/dev-9/telemetry", "c",
                         std::string_view(reinterpret_cast<const char*>(bytes.data), bytes.size), 5000};
    ASSERT_TRUE(p.process(m, 5000, rows_, rejected_).has_value()) << p.reason();
    ASSERT_EQ(rows_.size(), 2u);
    EXPECT_NEAR(rows_[0].value, 0.0, 1e-12);
    EXPECT_EQ(rows_[1].value, 55.5);
    EXPECT_EQ(rows_[1].time_ms, 2100);
    EXPECT_EQ(p.transforms().sequences().totals().devices, 1u);
}

TEST_F(processor_test, client_id_is_the_device_when_the_rule_has_none) {
    auto p = make();
    ASSERT_TRUE(p.process({"legacy/x/data", "plc-4", R"({"humidity": 1})", 7}, 7, rows_, rejected_).has_value());
    ASSERT_EQ(rows_.size(), 1u);
    EXPECT_EQ(rows_[0].device_id, ids_.at("plc-4"));
    EXPECT_EQ(rows_[0].time_ms, 7);  // receive time
}

TEST_F(processor_test, message_level_refusals) {
    auto p = make();
    auto refuse = [&](const message_view& m, errc code, std::string_view reason) {
        auto r = p.process(m, 0, rows_, rejected_);
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error(), make_error_code(code));
        EXPECT_EQ(p.reason(), reason);
    };
    refuse({"home/light", "c", "{}", 0}, errc::no_matching_rule, "topic 'home/light' matches no ingest rule");
    refuse({"devices/d/telemetry", "c", "oops", 0}, errc::unknown_format,
           "unrecognized payload: first byte 0x6f is neither JSON ('{' or '[') nor a compact binary magic byte (0xA1)");
    refuse({"devices/d/telemetry", "c", R"({"a": "b"})", 0}, errc::non_numeric_metric,
           "metric 'a' is not a number (string)");
    refuse({"devices/banned/telemetry", "c", R"({"a": 1})", 0}, errc::unknown_device, "unknown device 'banned'");
    refuse({"devices/d1/telemetry", "c", R"({"device": "d2", "a": 1})", 0}, errc::device_mismatch,
           "payload device 'd2' differs from device 'd1'");
    refuse({"legacy/x/data", "", R"({"a": 1})", 0}, errc::unknown_device,
           "no device key: the rule has no {device} and the client id is empty");
    EXPECT_EQ(p.totals().messages, 6u);
    EXPECT_EQ(p.totals().dead_letters, 6u);
    EXPECT_TRUE(rows_.empty());
}

}  // namespace
}  // namespace sluice::pipeline
