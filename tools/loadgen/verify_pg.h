// SPDX-License-Identifier: Apache-2.0
//
// --verify-pg: instead of (or besides) subscribing, check what actually landed in
// PostgreSQL. Counts the rows of the `telemetry` relation per device (devices.key =
// "<device-prefix><index>") with time >= the run's start and compares them with the
// readings the broker acknowledged, waiting while the pipeline catches up. Uses libpq
// directly so the tool does not depend on the store's writer; the schema it reads is
// src/store/schema.cc's (sluice_telemetry.telemetry, sluice_app.devices).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace sluice::loadgen {

struct pg_expectation {
    std::vector<uint64_t> readings_acked;  // per device index
    std::string device_prefix = "lg-";
    int64_t since_us = 0;  // Unix us: rows older than this are not ours
};

struct pg_verdict {
    uint64_t expected = 0;       // readings acknowledged
    uint64_t stored = 0;         // rows found for our devices
    uint64_t missing = 0;        // sum over devices of max(0, expected - stored): must be 0
    uint64_t extra = 0;          // sum over devices of max(0, stored - expected): duplicates
    uint32_t devices_short = 0;  // devices with missing rows
    uint32_t devices_over = 0;   // devices with extra rows
    double waited_s = 0;         // time spent waiting for the pipeline
};

// Polls every 500 ms until every device has at least its expected rows, or the counts
// stop changing for `settle`, or `timeout` passes; then returns the verdict. Errors:
// connection or query failures as std::errc::connection_refused / io_error (the libpq
// message goes to stderr).
result<pg_verdict> verify_pg(const std::string& url, const pg_expectation& expect, std::chrono::milliseconds timeout,
                             std::chrono::milliseconds settle);

}  // namespace sluice::loadgen
