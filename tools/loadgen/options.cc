// SPDX-License-Identifier: Apache-2.0
//
// What sluice-loadgen's options mean beyond their values: each scenario's presets and the
// settings derived from other flags. The flags themselves are declared in command_line.cc.
#include "options.h"

namespace sluice::loadgen {

const char* to_string(scenario s) {
    switch (s) {
        case scenario::steady:
            return "steady";
        case scenario::ramp:
            return "ramp";
        case scenario::storm:
            return "storm";
        case scenario::fanout:
            return "fanout";
        case scenario::slow_subscriber:
            return "slow-subscriber";
        case scenario::fanin:
            return "fanin";
        case scenario::churn:
            return "churn";
    }
    return "?";
}

const char* to_string(transport_kind t) {
    switch (t) {
        case transport_kind::tcp:
            return "tcp";
        case transport_kind::tls:
            return "tls";
        case transport_kind::ws:
            return "ws";
        case transport_kind::wss:
            return "wss";
    }
    return "?";
}

void apply_preset(options& o, scenario s) {
    o.kind = s;
    switch (s) {
        case scenario::steady:
        case scenario::ramp:
            break;
        case scenario::storm:
            o.persistent = true;
            break;
        case scenario::fanin:
            o.devices = 8;
            o.rate = 0;
            o.format = payload_kind::raw;
            o.topic = "bench/fanin/{device}";
            o.subscribe = true;
            o.subscribers = 1;
            break;
        case scenario::churn:
            o.devices = 50;
            o.rate = 0;
            o.format = payload_kind::raw;
            o.subscribe = false;
            break;
        case scenario::fanout:
        case scenario::slow_subscriber:
            o.devices = 1;
            o.rate = 1000;
            o.format = payload_kind::raw;
            o.topic = "bench/fanout/{device}";
            o.subscribe = true;
            o.subscribers = 10;
            break;
    }
}

std::optional<std::string> finish_options(options& o) {
    if (o.sub_qos < 0) o.sub_qos = o.qos;
    if (o.flush_bytes > o.batch_capacity) o.flush_bytes = o.batch_capacity;
    if (o.format == payload_kind::raw && o.payload_size < raw_header_size) o.payload_size = raw_header_size;
    if (o.kind == scenario::slow_subscriber && o.subscribers < 2) o.subscribers = 2;
    if (o.kind == scenario::storm && !o.persistent) return "the storm scenario needs persistent sessions";
    if (!o.cafile.empty() && o.transport != transport_kind::tls && o.transport != transport_kind::wss) {
        return "--cafile needs --transport tls or wss";
    }
    return std::nullopt;
}

}  // namespace sluice::loadgen
