// SPDX-License-Identifier: Apache-2.0
//
// A worker of the load engine: one thread running a level-triggered epoll loop with a
// timer heap over its share of the connections. The main thread only adds connections
// before start(), moves the phase (shared_state) and reads `stats`; `conns` (with their
// ledgers) is read by the main thread only after join().
//
// The class is defined across files by concern:
//   worker.cc          thread, event loop, phase changes, timers, pacing, keep-alive
//   worker_sockets.cc  non-blocking sockets: connect, backoff, read, write batching, and
//                      the TLS / WebSocket link between them and the MQTT bytes
//   client_protocol.cc the MQTT client state machine: CONNECT..DISCONNECT, QoS 1/2 flows
//   device_producer.cc readings, edge batching and the per-device send queue
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "connection.h"
#include "shared_state.h"

namespace sluice::loadgen {

// A wake-up of the worker's loop for one connection.
struct timer {
    int64_t when;
    uint32_t slot;
    uint8_t kind;  // 0 reading, 1 connect
    bool operator>(const timer& o) const { return when > o.when; }
};

class worker {
public:
    worker(shared_state& s, uint32_t id) : s_(s), id_(id) {}
    worker_stats stats;
    std::vector<std::unique_ptr<connection>> conns;

    // REQUIRES: before start().
    void add_publisher(uint32_t device);
    void add_subscriber(uint32_t index, bool slow);

    void start() {
        thread_ = std::thread([this] { loop(); });
    }
    void join() {
        if (thread_.joinable()) thread_.join();
    }

private:
    // worker.cc
    void add(std::unique_ptr<connection> c);
    void loop();
    void on_phase(phase from, phase to);
    void run_timers(int64_t now, phase p);
    void pump();
    void housekeeping(int64_t now);

    // worker_sockets.cc
    void open_conn(connection& c);
    int64_t backoff_ns(connection& c);
    uint32_t source_addrs() const;
    void close_conn(connection& c, bool is_error);
    void on_events(connection& c, uint32_t ev);
    void read_conn(connection& c);
    void pause_reading(connection& c, bool pause);
    void update_interest(connection& c);
    void mark_dirty(connection& c);
    void flush_dirty();
    bool write_link(connection& c);
    bool link_input(connection& c, std::string_view data);
    void link_failed(connection& c);
    void report_link_error(const connection& c, const std::string& why);
    void goodbye(connection& c);

    // client_protocol.cc
    void send_connect(connection& c);
    void on_packet(connection& c, mqtt::packet& pkt);
    void on_connack(connection& c, const mqtt::connack& a);
    void on_suback(connection& c, const mqtt::suback& a);
    void on_publish(connection& c, const mqtt::publish& p);
    void on_pubrec(connection& c, const mqtt::pubrec& a);
    void on_ack(connection& c, uint16_t id, bool success);
    bool room(const connection& c) const;
    void send_queued(connection& c);
    void write_publish(connection& c, pending& m, bool dup);
    void churn(connection& c);

    // device_producer.cc
    void enqueue(connection& c, pending m);
    void flush_batch(connection& c);
    bool batch_due(const connection& c, int64_t now_ms) const;
    void produce(connection& c);

    shared_state& s_;
    uint32_t id_;
    int epfd_ = -1;
    std::thread thread_;
    std::priority_queue<timer, std::vector<timer>, std::greater<>> timers_;
    std::vector<uint32_t> dirty_;
    bool pumping_ = false;
    std::mt19937_64 jitter_{0x5eed};
    int64_t next_housekeeping_ = 0;
    int64_t next_ping_ = 0;
    bool next_ping_done_ = false;
    std::string link_app_;  // MQTT bytes a link just decoded
};

}  // namespace sluice::loadgen
