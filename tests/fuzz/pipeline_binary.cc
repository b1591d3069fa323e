// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the compact binary decoder, and the edge encoder against it: arbitrary bytes
// must decode or fail with a reason; whatever decodes must re-encode (through
// edge/sluice_edge.h, values losslessly) and decode again to the same readings.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "base/assert.h"
#include "pipeline/decoder.h"
#include "sluice_edge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace sluice::pipeline;
    static payload_decoder decoder, redecoder;
    static decoded_payload out, again;
    const std::string_view payload(reinterpret_cast<const char*>(data), size);
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
