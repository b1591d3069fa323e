// SPDX-License-Identifier: Apache-2.0
//
// Everything sluice-loadgen can be told, with its defaults, in one struct; parsed from the
// command line by command_line.cc and documented in docs/loadgen.md (keep them in sync).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mqtt/types.h"
#include "truth.h"

namespace sluice::loadgen {

enum class scenario : uint8_t { steady, ramp, storm, fanout, slow_subscriber, fanin, churn };

// How connections reach the broker: MQTT on TCP, on TLS, on WebSocket, on WebSocket on TLS.
enum class transport_kind : uint8_t { tcp, tls, ws, wss };

struct options {
    std::string host = "127.0.0.1";
    uint16_t port = 1883;
    transport_kind transport = transport_kind::tcp;
    std::string cafile;             // tls, wss: verify the broker's certificate against these CAs; "" = no verification
    std::string ws_path = "/mqtt";  // ws, wss: the upgrade request's path
    scenario kind = scenario::steady;

    uint32_t devices = 100;  // publishing connections (fanin: publishers; fanout: 1; churn: concurrent clients)
    double rate = 10.0;      // per device: readings/s (binary, json) or messages/s (raw); 0 = as fast as possible
    double duration_s = 10.0;
    uint8_t qos = 1;
    mqtt::version protocol = mqtt::version::v3_1_1;
    bool persistent = false;  // clean session false / session expiry > 0
    std::string topic = "devices/{device}/telemetry";
    std::string device_prefix = "lg-";
    std::string client_prefix = "lg";
    payload_kind format = payload_kind::binary;
    size_t payload_size = 100;    // raw payloads
    size_t batch_capacity = 280;  // edge batching: buffer size ...
    size_t flush_bytes = 140;     // ... flushed when this full ...
    uint32_t flush_ms = 1000;     // ... or this old
    uint32_t metrics = 4;         // metric ids 1..metrics, round robin
    uint32_t max_inflight = 16;   // per connection (QoS 1/2)
    size_t max_queue = 10000;     // per device: finished payloads waiting to be sent
    uint32_t threads = 1;
    bool subscribe = false;  // run the subscriber side in this process
    uint32_t subscribers = 1;
    int sub_qos = -1;              // -1: same as qos
    std::string sub_filter;        // default: derived from the topic template
    uint32_t source_addrs = 0;     // 0: automatic (1 per 20,000 connections, loopback only)
    double connect_rate = 5000.0;  // new connections per second
    uint16_t keep_alive = 60;
    std::string json_file;
    bool quiet = false;
    double drain_timeout_s = 15.0;
    // ramp
    double step_s = 5.0;
    double ramp_factor = 1.5;
    double max_latency_ms = 100.0;
    uint32_t max_steps = 12;
    // storm
    double warmup_s = 3.0;
    double offline_s = 3.0;
    // slow-subscriber
    uint32_t slow_bytes_per_s = 20000;
    // verification against PostgreSQL: libpq URL of the database holding sluice_telemetry
    // and sluice_app (the default single-instance layout)
    std::string verify_pg;
    double verify_timeout_s = 60.0;
};

const char* to_string(scenario s);
const char* to_string(transport_kind t);

// Sets `o.kind` and the defaults that make the scenario meaningful (fanin: 8 raw
// publishers as fast as possible into one subscriber; churn: 50 clients that connect and
// disconnect again and again). Explicit flags are applied after.
void apply_preset(options& o, scenario s);

// Settings derived from others once every flag is known (--sub-qos defaults to --qos,
// --flush-bytes is capped by --batch-bytes, ...). Returns an error message when the
// combination cannot run, std::nullopt when it can.
std::optional<std::string> finish_options(options& o);

}  // namespace sluice::loadgen
