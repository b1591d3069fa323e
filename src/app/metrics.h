// SPDX-License-Identifier: Apache-2.0
//
// Gathers every part's counters into one Prometheus exposition for GET /metrics.
// Names and meanings are listed in docs/operations.md; keep them in step.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace sluice::broker {
class broker;
}
namespace sluice::bus {
class bus;
}
namespace sluice::http {
class prometheus_writer;
}

namespace sluice::app {

struct metric_sources {
    const broker::broker* brk = nullptr;
    bus::bus* log = nullptr;
    // Optional extra writers (pipeline, store), called in order.
    std::vector<std::function<void(http::prometheus_writer&)>> extra;
};

std::string render_metrics(const metric_sources& sources);

}  // namespace sluice::app
