// SPDX-License-Identifier: Apache-2.0
//
// GET /api/cluster (docs/http-api.md): the pipeline's consumer group as the bus describes
// it (members and the partitions each owns) next to each partition's end offset and the
// offset stored in PostgreSQL with the data, hence its lag; partitions nobody owns are
// listed apart. Rendered as JSON (the dashboard's Cluster view) or as the text table
// `sluice status` prints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bus/bus.h"
#include "store/query.h"

namespace sluice::http {

struct cluster_view {
    std::string bus;       // "wal" or "kafka"
    std::string topic;     // Kafka's ingest topic ("" with the WAL)
    std::string group;     // the pipeline's consumer group
    std::string consumer;  // its name in sluice_offsets
    bus::bus::group_description group_state;
    // Stored offsets; nullopt when the database did not answer (or none is configured).
    std::optional<std::vector<store::stored_offset>> stored;
};

std::string cluster_json(const cluster_view& v);
std::string cluster_text(const cluster_view& v);

}  // namespace sluice::http
