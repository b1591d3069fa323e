// SPDX-License-Identifier: Apache-2.0
//
// The edge encoder (edge/sluice_edge.h) against the pipeline's binary decoder: every
// value round-trips exactly (lossless add) or within the chosen precision (add_rounded),
// and the batching rules (flush threshold, capacity, 255 readings, time order, sequence
// numbers) hold at their boundaries. Also measures readings per 140-byte payload.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "pipeline/binary_format.h"
#include "pipeline/decoder.h"
#include "sluice_edge.h"

namespace sluice::pipeline {
namespace {

static_assert(sluice_edge::magic_v1 == binary::magic_v1);
static_assert(sluice_edge::flag_seq_restart == binary::flag_seq_restart);
static_assert(sluice_edge::flags_known == binary::flags_known);
static_assert(sluice_edge::max_scale == binary::max_scale);
static_assert(sluice_edge::max_time_ms == binary::max_time_ms);
static_assert(static_cast<int>(sluice_edge::kind_float64) == static_cast<int>(binary::kind_float64));

using sluice_edge::add_status;

struct sent {
    uint32_t id;
    uint64_t time;
    double value;
};

class edge_roundtrip : public ::testing::Test {
protected:
    const decoded_payload& decode(sluice_edge::payload p) {
        const std::string_view bytes(reinterpret_cast<const char*>(p.data), p.size);
        auto r = dec_.decode(bytes, payload_format::auto_detect, 0, out_);
        EXPECT_TRUE(r.has_value()) << dec_.reason();
        return out_;
    }
    payload_decoder dec_;
    decoded_payload out_;
};

bool same(double a, double b) {
    if (std::isnan(a)) return std::isnan(b);
    return a == b;
}

TEST_F(edge_roundtrip, documented_example_bytes) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf, 140, 42);
    const uint64_t t = 1732212345123;
    EXPECT_EQ(enc.add(3, t, 71.5), add_status::added);
    EXPECT_EQ(enc.add(4, t, 40.2), add_status::added);
    EXPECT_EQ(enc.add(3, t + 100, 71.6), add_status::added);
    const auto p = enc.finish();
    const std::vector<uint8_t> expected = {0xA1, 0x01, 0x2A, 0x23, 0xC9, 0xE6, 0x4F, 0x93, 0x01, 0x03, 0x00, 0x03, 0x11,
                                           0xCB, 0x02, 0x00, 0x04, 0x11, 0x92, 0x01, 0x64, 0x03, 0x11, 0xCC, 0x02};
    EXPECT_EQ(std::vector<uint8_t>(p.data, p.data + p.size), expected);
    EXPECT_EQ(enc.next_seq(), 43u);
}

TEST_F(edge_roundtrip, lossless_values_round_trip_exactly) {
    const double values[] = {0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             127,
                             -128,
                             128,
                             32767,
                             -32768,
                             40000,
                             71.5,
                             40.2,
                             23.456,
                             -12.3456,
                             0.1,
                             1e-7,
                             3.14159265358979,
                             1e15,
                             -2147483647.0,
                             4294967296.0,
                             1e300,
                             std::numeric_limits<double>::min(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN(),
                             static_cast<double>(0.3f)};
    uint8_t buf[1024];
    sluice_edge::batch_encoder enc(buf, sizeof buf, sizeof buf);
    uint64_t t = 1000;
    for (const double v : values)
        ASSERT_EQ(enc.add(7, t++, v), add_status::added) << v;
    const auto& p = decode(enc.finish());
    ASSERT_EQ(p.readings.size(), std::size(values));
    for (std::size_t i = 0; i < std::size(values); ++i) {
        EXPECT_TRUE(same(p.readings[i].value, values[i])) << i << ": " << values[i] << " vs " << p.readings[i].value;
        EXPECT_EQ(p.readings[i].time_ms, static_cast<int64_t>(1000 + i));
        EXPECT_EQ(p.readings[i].metric_id, 7u);
    }
}

TEST_F(edge_roundtrip, typical_values_take_two_or_three_bytes) {
    uint8_t tmp[9];
    EXPECT_EQ(sluice_edge::put_value(tmp, 21.5), 3u);     // int16 215, scale 1
    EXPECT_EQ(sluice_edge::put_value(tmp, 1.0), 2u);      // int8
    EXPECT_EQ(sluice_edge::put_value(tmp, 99.99), 3u);    // int16 9999, scale 2
    EXPECT_EQ(sluice_edge::put_value(tmp, 1013.25), 5u);  // int32 101325, scale 2
    EXPECT_EQ(sluice_edge::put_value_rounded(tmp, 21.3749, 2), 3u);
    EXPECT_EQ(sluice_edge::put_value(tmp, 0.1 + 0.2), 9u);  // not a short decimal: float64
}

TEST_F(edge_roundtrip, rounded_values_stay_within_precision) {
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> dist(-500.0, 500.0);
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    for (unsigned decimals = 0; decimals <= 4; ++decimals) {
        std::vector<double> vals;
        uint64_t t = 5000;
        while (true) {
            const double v = dist(rng);
            const auto s = enc.add_rounded(1, t, v, decimals);
            if (s == add_status::full) break;
            vals.push_back(v);
            t += 10;
            if (s == add_status::added_flush) break;
        }
        const auto& p = decode(enc.finish());
        ASSERT_EQ(p.readings.size(), vals.size());
        const double tolerance = 0.5 / std::pow(10.0, decimals) * (1 + 1e-9);
        for (std::size_t i = 0; i < vals.size(); ++i)
            EXPECT_NEAR(p.readings[i].value, vals[i], tolerance);
    }
}

TEST_F(edge_roundtrip, random_lossless_round_trip) {
    std::mt19937_64 rng(7);
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    std::vector<sent> batch;
    uint64_t t = 1732212345123;
    std::size_t payloads = 0;
    for (int i = 0; i < 20000; ++i) {
        double v;
        switch (rng() % 4) {
            case 0:
                v = static_cast<double>(static_cast<int64_t>(rng() % 200001) - 100000) / 100.0;
                break;
            case 1:
                v = static_cast<double>(static_cast<int32_t>(rng()));
                break;
            case 2: {
                uint64_t bits = rng();
                std::memcpy(&v, &bits, sizeof v);
                break;
            }
            default:
                v = static_cast<double>(static_cast<float>(rng() % 1000) / 7.0f);
                break;
        }
        const auto id = static_cast<uint32_t>(rng() % 5000);
        t += rng() % 3 == 0 ? rng() % 100000 : 0;
        auto s = enc.add(id, t, v);
        if (s == add_status::full) {
            const auto& p = decode(enc.finish());
            ASSERT_EQ(p.readings.size(), batch.size());
            for (std::size_t k = 0; k < batch.size(); ++k) {
                ASSERT_EQ(p.readings[k].metric_id, batch[k].id);
                ASSERT_EQ(p.readings[k].time_ms, static_cast<int64_t>(batch[k].time));
                ASSERT_TRUE(same(p.readings[k].value, batch[k].value)) << batch[k].value;
            }
            ++payloads;
            batch.clear();
            s = enc.add(id, t, v);
        }
        ASSERT_NE(s, add_status::full);
        ASSERT_NE(s, add_status::bad_time);
        batch.push_back({id, t, v});
    }
    EXPECT_GT(payloads, 100u);
}

TEST_F(edge_roundtrip, flush_threshold_and_capacity) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);  // flush threshold 140
    uint64_t t = 1000;
    std::size_t n = 0;
    add_status s;
    while ((s = enc.add(1, t, 1234.5)) == add_status::added)
        ++n;
    ASSERT_EQ(s, add_status::added_flush);
    EXPECT_GE(enc.size(), 140u);
    EXPECT_LT(enc.size() - 140, sluice_edge::max_reading_size);
    // Ignoring the flush advice still never exceeds the capacity.
    while ((s = enc.add(1, t, 1234.5)) == add_status::added_flush) {
    }
    ASSERT_EQ(s, add_status::full);
    const auto p = enc.finish();
    EXPECT_LE(p.size, 280u);
    EXPECT_GT(p.size, 280u - 8u);
    EXPECT_EQ(decode(p).readings.size(), (p.size - 10) / 5);
}

TEST_F(edge_roundtrip, at_most_255_readings) {
    std::vector<uint8_t> buf(4096);
    sluice_edge::batch_encoder enc(buf.data(), buf.size(), buf.size());
    for (int i = 0; i < 255; ++i)
        ASSERT_EQ(enc.add(1, 1, 1.0), add_status::added);
    EXPECT_EQ(enc.add(1, 1, 1.0), add_status::full);
    EXPECT_EQ(decode(enc.finish()).readings.size(), 255u);
}

TEST_F(edge_roundtrip, time_order_and_range) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    EXPECT_EQ(enc.add(1, sluice_edge::max_time_ms + 1, 1.0), add_status::bad_time);
    EXPECT_TRUE(enc.empty());
    EXPECT_EQ(enc.add(1, 2000, 1.0), add_status::added);
    EXPECT_EQ(enc.add(1, 2000, 2.0), add_status::added);
    EXPECT_EQ(enc.add(1, 1999, 3.0), add_status::bad_time);
    EXPECT_EQ(enc.count(), 2u);
    const auto& p = decode(enc.finish());
    ASSERT_EQ(p.readings.size(), 2u);
    EXPECT_EQ(enc.add(1, 1999, 3.0), add_status::added);  // a new batch may start earlier
    EXPECT_EQ(decode(enc.finish()).readings[0].time_ms, 1999);
}

TEST_F(edge_roundtrip, sequence_numbers_and_restart_flag) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf, 140, 1000);
    EXPECT_EQ(enc.finish().size, 0u);  // empty: nothing to send, seq not consumed
    EXPECT_EQ(enc.next_seq(), 1000u);
    for (uint64_t i = 0; i < 3; ++i) {
        ASSERT_EQ(enc.add(9, 10 * i, 1.0), add_status::added);
        const auto& p = decode(enc.finish());
        EXPECT_EQ(*p.seq, 1000 + i);
        EXPECT_EQ(p.seq_restart, i == 0);
    }
}

TEST_F(edge_roundtrip, age_based_flush) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    EXPECT_FALSE(enc.should_flush(5000));
    ASSERT_EQ(enc.add(1, 5000, 1.0), add_status::added);
    EXPECT_FALSE(enc.should_flush(5999));
    EXPECT_TRUE(enc.should_flush(6000));
    EXPECT_TRUE(enc.should_flush(5100, 100));
}

// A typical device: 8 metrics sampled at 10 Hz (two decimals of precision), metric ids
// 1..8 from the dictionary. Prints readings per 140-byte flush for the report.
TEST_F(edge_roundtrip, readings_per_140_bytes_for_a_typical_device) {
    uint8_t buf[280];
    sluice_edge::batch_encoder enc(buf, sizeof buf);
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0.0, 0.5);
    const double base[8] = {21.5, 45.0, 1013.25, 3.3, 230.0, 50.0, 0.0, 1200.0};
    std::size_t total = 0, flushes = 0;
    std::size_t bytes = 0;
    for (uint64_t t = 1732212345000; flushes < 50; t += 100) {
        for (uint32_t m = 0; m < 8; ++m) {
            const auto s = enc.add_rounded(m + 1, t, base[m] + noise(rng), 2);
            ASSERT_TRUE(s == add_status::added || s == add_status::added_flush);
            if (s == add_status::added_flush) {
                const auto p = enc.finish();
                bytes += p.size;
                total += decode(p).readings.size();
                ++flushes;
            }
        }
    }
    const double per_payload = static_cast<double>(total) / static_cast<double>(flushes);
    const double per_reading = static_cast<double>(bytes) / static_cast<double>(total);
    std::printf(
        "typical device (8 metrics @ 10 Hz, 2 decimals): %.1f readings per ~140-byte payload, "
        "%.2f bytes/reading\n",
        per_payload, per_reading);
    EXPECT_GE(per_payload, 24.0);
}

}  // namespace
}  // namespace sluice::pipeline
