// SPDX-License-Identifier: Apache-2.0
//
// One simulated MQTT client of the load engine: a publishing device (its queue of
// finished payloads, its inflight window, its edge batch) or a subscriber (its receive
// ledger). Plain state, owned and changed by one worker thread only (worker.h).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "accounting.h"
#include "mqtt/codec.h"
#include "sluice_edge.h"
#include "transport.h"

namespace sluice::loadgen {

// A payload waiting to be sent, or sent and not yet acknowledged.
struct pending {
    uint32_t device = 0;
    uint64_t seq = 0;
    uint32_t readings = 0;
    std::string payload;
    uint16_t packet_id = 0;
    bool released = false;  // QoS 2: PUBREC seen, PUBREL sent
    bool ever_sent = false;
    int64_t sent_mono = 0;
};

class worker;

// handshake: TCP is up, the link's TLS handshake or WebSocket upgrade is under way.
enum class conn_state : uint8_t { idle, connecting, handshake, wait_connack, wait_suback, ready };

struct connection {
    worker* owner = nullptr;
    bool subscriber = false;
    uint32_t index = 0;  // device index, or subscriber index
    uint32_t slot = 0;   // position in the worker's vector
    int fd = -1;
    conn_state state = conn_state::idle;
    bool want_write = false;   // EPOLLOUT armed
    bool in_dirty = false;     // listed for flush_dirty()
    bool had_session = false;  // a CONNECT with clean start false has succeeded before
    uint32_t failures = 0;     // consecutive connection failures, for the backoff
    std::string client_id;
    std::string topic;
    std::optional<mqtt::stream_decoder> decoder;
    std::string out;  // MQTT bytes to send
    size_t out_off = 0;
    // --transport tls | ws | wss: the link, and `out` in its wire form, waiting for the socket
    std::unique_ptr<client_link> link;
    std::string wire;
    size_t wire_off = 0;
    int64_t connect_started = 0;  // mono ns of the socket(), for the connect latency
    uint16_t next_pid = 1;
    uint32_t max_inflight = 1;
    std::deque<pending> queue;
    std::vector<pending> inflight;
    // publishing device
    std::vector<uint8_t> batch_buf;
    std::optional<sluice_edge::batch_encoder> encoder;
    std::string json_batch;
    uint32_t json_count = 0;
    int64_t json_first_ms = 0;
    uint64_t next_seq = 0;
    uint64_t reading_no = 0;
    int64_t next_reading = 0;  // mono ns
    // subscriber
    std::unique_ptr<receive_ledger> ledger;
    bool slow = false;
    int64_t read_budget = 0;
    bool reading_paused = false;
    std::vector<uint16_t> qos2_received;  // subscriber QoS 2: ids awaiting PUBREL
};

}  // namespace sluice::loadgen
