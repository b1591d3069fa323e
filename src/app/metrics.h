// SPDX-License-Identifier: Apache-2.0
//
// Gathers every part's counters into one metrics snapshot, which GET /metrics renders as
// Prometheus text and /api/overview digests. Names and meanings are listed in
// docs/operations.md; keep them in step.
#pragma once

#include <functional>
#include <vector>

namespace sluice::broker {
class broker;
}
namespace sluice::bus {
class bus;
}
#include "http/metrics_snapshot.h"

namespace sluice::app {

struct metric_sources {
    const broker::broker* brk = nullptr;
    bus::bus* log = nullptr;
    // Optional extra writers (pipeline, store), called in order.
    std::vector<std::function<void(http::metrics_snapshot&)>> extra;
};

http::metrics_snapshot collect_metrics(const metric_sources& sources);

}  // namespace sluice::app
