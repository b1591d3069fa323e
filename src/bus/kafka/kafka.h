// SPDX-License-Identifier: Apache-2.0
//
// The Kafka bus: the second backend behind bus/bus.h, on librdkafka. Bus partitions are
// the topic's partitions and bus offsets are Kafka offsets. Used by `sluice serve --bus
// kafka`, `sluice broker` (produces) and `sluice pipeline` (consumes in a group);
// docs/cluster.md describes the topology and every setting.
//
// Durability contract: append()'s callback reports success only from Kafka's delivery
// report for that record, with the idempotent producer and acks=all: the record is then
// in every in-sync replica. A record Kafka did not take (timeout, fatal producer error,
// stop) completes with errc::io_error or errc::closed, never with an offset. Records carry
// the device (MQTT client id) as their key, the payload as their value, the receive time
// as their timestamp and the MQTT topic and QoS in headers.
//
// Back-pressure: over_quota() is true while the records (or bytes) awaiting a delivery
// report reach max_in_flight (max_in_flight_bytes): Kafka unreachable or slow fills this
// window and the broker stops reading publishers, as with the WAL's quota.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/result.h"
#include "bus/bus.h"

namespace sluice::bus {

struct kafka_options {
    std::string brokers;  // bootstrap servers, HOST:PORT,...
    std::string topic = "sluice-telemetry";
    std::string client_id = "sluice";
    // Any librdkafka setting (security.protocol, sasl.*, ssl.*, ...), applied after
    // Sluice's own defaults; acks and enable.idempotence cannot be weakened here.
    std::map<std::string, std::string> properties;
    size_t max_in_flight = 50'000;                       // records awaiting a delivery report
    size_t max_in_flight_bytes = 64u << 20;              // their payload bytes
    std::chrono::milliseconds delivery_timeout{30'000};  // message.timeout.ms: then the append fails
    std::chrono::milliseconds metadata_timeout{10'000};  // open_kafka() waits this long for the topic
};

// Connects, waits for the topic's metadata (its partition count), starts the delivery
// thread. Returns errc::invalid_argument for a bad setting (message names it in the log),
// errc::not_found when the topic has no partitions within metadata_timeout, errc::io_error.
result<std::unique_ptr<bus>> open_kafka(const kafka_options& options);

}  // namespace sluice::bus
