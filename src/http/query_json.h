// SPDX-License-Identifier: Apache-2.0
//
// The JSON bodies of the database routes, rendered from the store's answers
// (store/query.h). The shapes are the API's contract (docs/http-api.md, the dashboard
// in web/ reads them): keys, their order and null for a missing time do not change.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/query.h"

namespace sluice::http {

// {"devices":[{"id","key","name","site","line","created_at","last_reading"}...]}
std::string devices_json(const std::vector<store::device_info>& devices);

// {"metrics":[{"id","name","unit"}...]}
std::string metrics_json(const std::vector<store::metric_info>& metrics);

// {"device","metric","resolution","from","to","truncated","points":[...]}, the points
// {"time","value","flags"} (raw) or {"bucket","avg","min","max","count"} (rollups).
// `s` is a found series.
std::string series_json(std::string_view device, std::string_view metric, std::string_view resolution,
                        const store::series& s);

// {"dead_letters":[{"received_at","topic","client_id","reason","payload_bytes",
// "payload_truncated","payload_text","payload_base64"}...]}. A payload longer than
// `preview_bytes` is truncated; payload_text is null unless the (kept part of the)
// payload is printable UTF-8.
std::string dead_letters_json(const std::vector<store::dead_letter_info>& letters, int preview_bytes);

}  // namespace sluice::http
