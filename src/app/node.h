// SPDX-License-Identifier: Apache-2.0
//
// A running Sluice process: `sluice serve` (broker and pipeline over the embedded WAL or
// Kafka), or one of its halves for a cluster on Kafka (docs/cluster.md).
#pragma once

#include <string>

#include "app/config.h"

namespace sluice::app {

enum class role { serve, broker, pipeline };

// The subcommand's name: "serve", "broker" or "pipeline".
inline const char* role_name(role r) {
    return r == role::serve ? "serve" : r == role::broker ? "broker" : "pipeline";
}

// Starts the parts `node` needs (their order and stop order: node.cc), waits for SIGTERM
// or SIGINT (SIGHUP reloads the access-control files and certificates), then stops them.
// `cfg` is checked already (command_line.h). Returns the exit status.
int run_node(role node, config cfg, const std::string& web_root);

}  // namespace sluice::app
