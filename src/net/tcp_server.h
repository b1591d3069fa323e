// SPDX-License-Identifier: Apache-2.0
//
// MQTT over TCP, TLS, WebSocket and WebSocket over TLS: for each listener, one
// SO_REUSEPORT socket per event loop (the kernel spreads new connections across loops),
// and a connection object per socket that feeds bytes to the broker's protocol handler
// and batches its output into one writev per loop iteration. TLS and WebSocket are
// stream layers (stream_layer.h) between the socket and the protocol. After the first
// packet (CONNECT) the socket, with its layers, is handed to the loop whose shard owns
// that client id, so a session is only ever touched by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/event_loop.h"
#include "net/input_budget.h"

namespace sluice::broker {
class broker;
}

namespace sluice::net {

class tls_config;

struct listener_options {
    std::string bind_address = "0.0.0.0";
    uint16_t port = 1883;             // 0: the kernel picks one
    std::string name = "mqtt";        // for the log: mqtt, mqtts, ws, wss
    std::shared_ptr<tls_config> tls;  // set: TLS (REQUIRES: loaded)
    bool websocket = false;           // MQTT inside WebSocket frames (inside TLS when tls is set)
};

class loop_context;
struct listener_spec;
class connection_limits;
struct connection_limit_stats;

class tcp_server {
public:
    // REQUIRES: loops.size() == b.shard_count(); loop i serves shard i.
    tcp_server(broker::broker& b, std::vector<event_loop*> loops);
    ~tcp_server();

    // Binds one socket per loop on the same address and port; may be called once per
    // listener (plain, TLS, WebSocket...). Returns the port. REQUIRES: before start().
    result<uint16_t> listen(const listener_options& opts);
    // The port of the first listener.
    uint16_t port() const { return port_; }

    // Registers listeners and per-loop hooks. REQUIRES: called before the loops run.
    void start();
    // Connections refused by mqtt.max_connections*, and those admitted now (for /metrics).
    connection_limit_stats& limit_stats();

    // Stops accepting and closes every connection (DISCONNECT 0x8B to MQTT 5 clients).
    // Thread-safe: posts to each loop and waits until each has done it.
    void stop();

private:
    broker::broker& broker_;
    std::vector<event_loop*> loops_;
    input_budget input_budget_;                          // shared by every loop's connections
    std::unique_ptr<connection_limits> limits_;          // outlives contexts_ (connections hold admissions)
    std::vector<std::unique_ptr<listener_spec>> specs_;  // outlive contexts_ (their sockets point here)
    std::vector<std::unique_ptr<loop_context>> contexts_;
    uint16_t port_ = 0;
};

}  // namespace sluice::net
