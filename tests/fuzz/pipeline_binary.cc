// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the compact binary decoder, and the edge encoder against it: arbitrary bytes
// must decode or fail with a reason; whatever decodes must re-encode (through
// edge/sluice_edge.h, values losslessly) and decode again to the same readings. The
// same bytes also go through the processor (rules, transforms, sequence tracking).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/assert.h"
#include "pipeline/decoder.h"
#include "pipeline/processor.h"
#include "sluice_edge.h"

namespace {

// A processor with metrics 0..15 (ranges, thresholds, a unit conversion) on the default rule.
sluice::pipeline::processor& fuzz_processor() {
    using namespace sluice::pipeline;
    static const rule_set rules = rule_set::defaults();
    static metric_dictionary dict = [] {
        metric_dictionary d;
        std::string reason;
        for (uint32_t id = 0; id < 16; ++id) {
            metric_def def;
            def.id = id;
            def.name = "m" + std::to_string(id);
            def.unit = "degC";
            if (id % 2) def.input_unit = "degF";
            if (id % 3) def.valid_min = -40.0, def.valid_max = 125.0;
            if (id % 5) def.warn_high = 90.0;
            SLUICE_CHECK(d.add(def, reason), "%s", reason.c_str());
        }
        return d;
    }();
    static anomaly_config cfg = [] {
        anomaly_config c;
        c.min_samples = 3;
        return c;
    }();
    static processor p(
        rules, dict, [](std::string_view, const topic_match&) -> std::optional<uint32_t> { return 1; }, cfg);
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace sluice::pipeline;
    static payload_decoder decoder, redecoder;
    static decoded_payload out, again;
    const std::string_view payload(reinterpret_cast<const char*>(data), size);
    {
        static std::vector<telemetry_row> rows;
        static std::vector<rejected_reading> rejected;
        rows.clear();
        rejected.clear();
        auto& proc = fuzz_processor();
        const std::string_view device = size > 0 && data[0] % 2 ? "devices/a/telemetry" : "devices/b/telemetry";
        auto pr = proc.process({device, "c", payload, 1'700'000'000'000}, 1'700'000'000'000, rows, rejected);
        SLUICE_CHECK(pr.has_value() || !proc.reason().empty(), "processor failure without a reason");
        for (const auto& row : rows)
            SLUICE_CHECK(std::isfinite(row.value), "non-finite value stored");
    }
    auto r = decoder.decode(payload, payload_format::binary, 0, out);
    if (!r) {
        SLUICE_CHECK(!decoder.reason().empty(), "failure without a reason");
        return 0;
    }
    SLUICE_CHECK(out.readings.size() <= 255, "more readings than the count byte allows");
    if (out.readings.empty()) return 0;
    // Re-encode into a buffer big enough for 255 float64 readings.
    static uint8_t buf[sluice_edge::max_header_size + 255 * sluice_edge::max_reading_size];
    sluice_edge::batch_encoder enc(buf, sizeof buf, sizeof buf, out.seq.value());
    for (const auto& rd : out.readings) {
        const auto s = enc.add(rd.metric_id, static_cast<uint64_t>(rd.time_ms), rd.value);
        if (s == sluice_edge::add_status::bad_time) return 0;  // sum of deltas beyond 2^48: not re-encodable
        SLUICE_CHECK(s != sluice_edge::add_status::full, "re-encoding did not fit");
    }
    const auto p = enc.finish();
    auto r2 = redecoder.decode(std::string_view(reinterpret_cast<const char*>(p.data), p.size),
                               payload_format::auto_detect, 0, again);
    SLUICE_CHECK(r2.has_value(), "re-encoded payload does not decode: %s", std::string(redecoder.reason()).c_str());
    SLUICE_CHECK(again.readings.size() == out.readings.size(), "reading count changed");
    for (std::size_t i = 0; i < out.readings.size(); ++i) {
        const auto& a = out.readings[i];
        const auto& b = again.readings[i];
        SLUICE_CHECK(a.time_ms == b.time_ms && a.metric_id == b.metric_id, "reading %zu changed", i);
        SLUICE_CHECK((std::isnan(a.value) && std::isnan(b.value)) || a.value == b.value, "value %zu changed", i);
    }
    return 0;
}
