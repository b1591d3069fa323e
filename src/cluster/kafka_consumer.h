// SPDX-License-Identifier: Apache-2.0
//
// librdkafka consumers for the relay (kafka_relay.h) and the shared groups
// (shared_group_consumer.h): our settings first, then the user's pass-through properties
// ([kafka] properties: SASL, TLS, ...) except those that only a producer or a group member
// of another kind may take.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cluster/kafka_relay.h"
#include "cluster/relay_record.h"

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

// Reads every partition of an assigned consumer (enable.partition.eof on) to its end, or
// until `timeout`, handing each keyed record to `fn(key, value)`. Returns how many
// partitions reached their end (fewer: the caller warns).
uint32_t read_to_end(rd_kafka_s* rk, uint32_t partitions, std::chrono::milliseconds timeout,
                     const std::function<void(std::string key, std::string_view value)>& fn);

// A record of the messages topic, decoded (relay_record.h), with where it was read.
struct relayed_record {
    relayed_message relayed;
    int32_t partition = -1;
    int64_t offset = -1;
};
// Polls `rk` once (100 ms): the next record, decoded; std::nullopt for nothing, a transport
// error (librdkafka retries by itself; logged at debug as `what`) or an undecodable record
// (warned). `read`, when given, hears the partition and offset of every record read,
// decodable or not.
std::optional<relayed_record> poll_relayed(rd_kafka_s* rk, const std::string& topic, const char* what,
                                           const std::function<void(int32_t, int64_t)>& read = nullptr);

}  // namespace sluice::cluster
