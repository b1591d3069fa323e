// SPDX-License-Identifier: Apache-2.0
//
// The truth a subscriber reads back must be the truth the publisher wrote: raw headers
// round-trip, the compact-binary walker agrees with src/pipeline's full decoder on
// payloads made by the edge encoder, and topic templates map devices both ways.
#include "truth.h"

#include <gtest/gtest.h>

#include "pipeline/decoder.h"
#include "sluice_edge.h"

namespace sluice::loadgen {
namespace {

TEST(truth, raw_round_trip_and_size) {
    std::string p;
    encode_raw(truth{42, 123456789012ull, 1732212345123456789}, 100, p);
    EXPECT_EQ(p.size(), 100u);
    const auto t = decode_raw(p);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->device, 42u);
    EXPECT_EQ(t->seq, 123456789012ull);
    EXPECT_EQ(t->time_ns, 1732212345123456789);
    EXPECT_FALSE(decode_raw(p.substr(0, 10)).has_value());
    EXPECT_FALSE(decode_raw(std::string(100, 'x')).has_value());
}

TEST(truth, binary_walker_agrees_with_the_pipeline_decoder) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf, 140, 7);
    pipeline::payload_decoder dec;
    for (int batch = 0; batch < 5; ++batch) {
        uint64_t t = 1732212345000ull + static_cast<uint64_t>(batch) * 1000;
        for (int i = 0; i < 8 + batch; ++i) {
            const double v = i % 3 == 0 ? 21.37 : i % 3 == 1 ? 1e10 / 3 : -5;
            (void)enc.add(static_cast<uint32_t>(i % 4 + 1), t, v);
            t += 13;
        }
        const auto p = enc.finish();
        const std::string_view bytes(reinterpret_cast<const char*>(p.data), p.size);
        const auto mine = decode_binary_truth(bytes);
        ASSERT_TRUE(mine.has_value());
        pipeline::decoded_payload full;
        ASSERT_TRUE(dec.decode(bytes, pipeline::payload_format::binary, 0, full).has_value()) << dec.reason();
        ASSERT_TRUE(full.seq.has_value());
        EXPECT_EQ(mine->seq, *full.seq);
        EXPECT_EQ(mine->seq, 7u + static_cast<uint64_t>(batch));
        EXPECT_EQ(mine->readings, full.readings.size());
        EXPECT_EQ(mine->newest_ms, full.readings.back().time_ms);
        // Truncation is detected, never read past.
        EXPECT_FALSE(decode_binary_truth(bytes.substr(0, bytes.size() - 1)).has_value());
    }
}

TEST(truth, json_batch_truth) {
    const auto t = decode_json_truth(R"({"seq":42,"readings":[{"ts":1000,"m1":1.5},{"ts":1250,"m2":2}]})");
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->seq, 42u);
    EXPECT_EQ(t->newest_ms, 1250);
    EXPECT_EQ(t->readings, 2u);
    EXPECT_FALSE(decode_json_truth(R"({"readings":[]})").has_value());
}

TEST(topic_template, maps_devices_both_ways) {
    topic_template t("devices/{device}/telemetry", "lg-");
    EXPECT_EQ(t.topic_for(17), "devices/lg-17/telemetry");
    EXPECT_EQ(t.device_of("devices/lg-17/telemetry"), std::optional<uint32_t>(17));
    EXPECT_FALSE(t.device_of("devices/lg-17x/telemetry").has_value());
    EXPECT_FALSE(t.device_of("devices/other/telemetry").has_value());
    EXPECT_FALSE(t.device_of("devices/lg-17/status").has_value());
    EXPECT_EQ(t.filter(), "devices/+/telemetry");
    EXPECT_EQ(topic_template("bench/x{device}", "").filter(), "#");
    EXPECT_EQ(topic_template("fixed/topic").filter(), "fixed/topic");
}

}  // namespace
}  // namespace sluice::loadgen
