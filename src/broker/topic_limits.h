// SPDX-License-Identifier: Apache-2.0
//
// Bounds on the cost of one topic or topic filter (issue 10: a ~1 MB SUBSCRIBE of 15 deep
// filters took ~10 s of CPU and hundreds of MB, because every level is a node of the
// subscription index on every shard). With at most mqtt.max_topic_levels levels and
// mqtt.max_topic_length bytes, what a packet costs the index, the journal and matching is
// bounded and linear in what was sent. A filter past a limit gets SUBACK 0x8F (Topic
// Filter invalid); a PUBLISH topic past one closes the connection with 0x90 (Topic Name
// invalid). Policy and metrics: docs/operations.md.
#pragma once

#include <algorithm>
#include <string_view>

#include "broker/options.h"

namespace sluice::broker {

// True when `topic` (a topic name or a filter, shared prefix included) is within the limits.
inline bool within_topic_limits(const broker_options& o, std::string_view topic) {
    if (o.max_topic_length != 0 && topic.size() > o.max_topic_length) return false;
    if (o.max_topic_levels != 0 &&
        static_cast<size_t>(std::count(topic.begin(), topic.end(), '/')) >= o.max_topic_levels)
        return false;
    return true;
}

}  // namespace sluice::broker
