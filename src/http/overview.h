// SPDX-License-Identifier: Apache-2.0
//
// The /api/overview body: a digest of the metrics snapshot that the dashboard polls
// every second, with no database behind it (docs/http-api.md lists its fields).
#pragma once

#include <cstdint>
#include <string>

#include "http/metrics_snapshot.h"

namespace sluice::http {

// Counters and per-partition gauges are summed over label sets, bus_lag_seconds is the
// maximum, database_up and pipeline_running are true only when every partition says 1,
// wal_over_quota when any does; a metric absent from the snapshot is null. `now_ms` is
// written as time_ms.
std::string overview_json(const metrics_snapshot& metrics, int64_t now_ms);

}  // namespace sluice::http
