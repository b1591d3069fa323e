// SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the JSON path of the payload decoder (what every JSON ingest message meets):
// any bytes must decode or fail with a reason, never crash, leak or read out of bounds.
// On success every reading must carry a timestamp and a non-empty metric name.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/assert.h"
#include "pipeline/decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    static sluice::pipeline::payload_decoder decoder;
    static sluice::pipeline::decoded_payload out;
    const std::string_view payload(reinterpret_cast<const char*>(data), size);
    for (auto f : {sluice::pipeline::payload_format::json, sluice::pipeline::payload_format::auto_detect}) {
        auto r = decoder.decode(payload, f, 1'700'000'000'000, out);
        if (r) {
            SLUICE_CHECK(decoder.reason().empty(), "success with a reason");
            for (const auto& rd : out.readings) {
                SLUICE_CHECK(rd.time_ms != INT64_MIN, "reading without a time");
                SLUICE_CHECK(!rd.metric_name.empty() || f == sluice::pipeline::payload_format::auto_detect,
                             "JSON reading without a name");
            }
        } else {
            SLUICE_CHECK(!decoder.reason().empty(), "failure without a reason");
        }
    }
    return 0;
}
