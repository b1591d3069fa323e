// SPDX-License-Identifier: Apache-2.0
//
// Sluice's configuration: defaults, then config/sluice.toml-style file, then command-line
// flags, in that order of precedence. config/sluice.toml documents every key; keep the
// two in step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/listeners.h"
#include "app/security.h"
#include "broker/options.h"
#include "bus/kafka/kafka.h"
#include "bus/wal/wal.h"

namespace sluice::app {

struct config {
    // [server]
    std::string bind_address = "0.0.0.0";
    uint16_t mqtt_port = 1883;
    uint16_t http_port = 8080;
    unsigned threads = 0;           // 0: one event loop per core
    std::vector<int> cpu_affinity;  // CPUs to pin event-loop threads to, in order
    std::string data_dir = "var/data";
    std::string log_level = "info";
    // [mqtt]
    broker::broker_options mqtt;
    // [bus] backend = "wal" (embedded log, the default) or "kafka"
    std::string bus_backend = "wal";
    // [wal]
    bus::wal_options wal;
    // [kafka], [kafka.properties]
    bus::kafka_options kafka;
    std::string kafka_group = "sluice-pipeline";  // consumer group of the pipeline workers
    // MQTT across the broker nodes (docs/cluster.md): on unless relay = false; the topics
    // default to <topic>-mqtt and <topic>-retained.
    bool kafka_relay = true;
    std::string kafka_mqtt_topic;
    std::string kafka_retained_topic;
    std::string kafka_sessions_topic;  // default <topic>-sessions
    // Shared subscriptions balanced across the nodes through Kafka consumer groups (true), or
    // among each node's own members (false).
    bool kafka_shared_across_nodes = true;
    // [ingest]
    struct ingest_rule {
        std::string pattern;
        std::string format = "auto";  // "auto", "json" or "binary"
    };
    std::vector<ingest_rule> ingest_rules{{"devices/{device}/telemetry", "auto"}};
    bool register_unknown_devices = true;  // [ingest] unknown_devices = "register" | "reject"
    // [pipeline] anomaly detection
    double zscore_threshold = 4.0;
    uint32_t zscore_window = 100;
    uint32_t zscore_min_samples = 30;
    int64_t future_tolerance_ms = 60'000;
    // [pipeline] cardinality guard: new metric names per device and interval (issue 11)
    uint32_t max_new_metrics_per_device = 1000;
    uint32_t new_metrics_interval_s = 60;
    // [auth] (docs/security.md)
    auth_settings auth;
    // server.mqtts_port, ws_port, wss_port and [tls] (docs/security.md)
    listener_settings listeners;
    // [database]
    std::string telemetry_db_url;
    std::string app_db_url;
    // [store]
    std::string store_layout = "auto";  // "auto" | "native" | "timescale" (store::layout_choice)
    uint32_t store_retention_days = 0;  // raw readings older than this many days are dropped; 0 = keep
};

// Reads a TOML file into `cfg` (keys absent from the file keep their values).
// Returns an empty string on success, else a message naming the file, key and problem.
std::string load_config_file(const std::string& path, config& cfg);

// Parses "0,2-3" into {0,2,3}. Returns false on bad syntax.
bool parse_cpu_list(const std::string& text, std::vector<int>& out);

}  // namespace sluice::app
