// SPDX-License-Identifier: Apache-2.0
//
// librdkafka consumers for the relay (kafka_relay.h) and the shared groups
// (shared_group_consumer.h): our settings first, then the user's pass-through properties
// ([kafka] properties: SASL, TLS, ...) except those that only a producer or a group member
// of another kind may take.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "cluster/kafka_relay.h"

struct rd_kafka_s;
struct rd_kafka_conf_s;

namespace sluice::cluster {

// `settings` are ours (group.id, offsets, ...); a user property never replaces one of
// `protected_keys` nor a producer-only setting. `prepare`, when given, may set callbacks on
// the configuration before the client is made. nullptr (logged) on a bad setting.
rd_kafka_s* make_consumer(const kafka_relay_options& o, std::map<std::string, std::string> settings,
                          void (*prepare)(rd_kafka_conf_s*, void*) = nullptr, void* opaque = nullptr);

// Assigns every partition of `topic`, each at `offset` or, for RD_KAFKA_OFFSET_END, at its
// high watermark now (so nothing produced after this call is missed); `ends`, when given,
// receives the offsets assigned. Blocks on Kafka.
result<void> assign_all(rd_kafka_s* rk, const std::string& topic, uint32_t partitions, int64_t offset,
                        std::vector<int64_t>* ends = nullptr);

}  // namespace sluice::cluster
