// SPDX-License-Identifier: Apache-2.0
//
// The load phase of each scenario (docs/loadgen.md, "Scenarios"): what the main thread
// does between "every connection is up" and the drain. steady, fanin, fanout and
// slow-subscriber hold the load for --duration; ramp raises the rate step by step until
// a step fails; storm takes every device offline and measures the reconnect.
#pragma once

#include <memory>
#include <vector>

#include "engine.h"
#include "fleet_view.h"
#include "shared_state.h"
#include "worker.h"

namespace sluice::loadgen {

// REQUIRES: the phase is `running`. Leaves the phase at `running` or, for storm,
// `reconnecting`; fills the scenario's part of `r` (ramp steps, storm timings).
void run_load_phase(shared_state& s, const std::vector<std::unique_ptr<worker>>& ws, progress& prog, results& r);

}  // namespace sluice::loadgen
