// SPDX-License-Identifier: Apache-2.0
//
// `sluice status`: asks a running node's GET /api/cluster?format=text (docs/http-api.md)
// and prints the table: the consumer group's members, each partition's owner, end and
// stored offsets and lag, and the partitions without an owner.
#pragma once

#include <string>

namespace sluice::app {

struct status_request {
    std::string url = "http://127.0.0.1:8080";  // the node's HTTP address (plain HTTP)
    std::string token;                          // its --api-token, if set
};

// Returns 0 when the node answered 200, 1 otherwise (the reason on stderr).
int status_command(const status_request& r);

}  // namespace sluice::app
