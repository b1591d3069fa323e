// SPDX-License-Identifier: Apache-2.0
//
// The MQTT listeners besides plain TCP (issue 12): MQTT over TLS (--mqtts-port), over
// WebSocket (--ws-port) and over WebSocket in TLS (--wss-port), with the TLS settings they
// share: the [tls] section of the config file and the flags of the same names.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "net/tls.h"

namespace sluice::net {
class tcp_server;
}
namespace sluice::http {
class metrics_snapshot;
}

namespace sluice::app {

struct listener_settings {
    std::optional<uint16_t> mqtts_port;  // unset: no listener; 0: the kernel picks one
    std::optional<uint16_t> ws_port;
    std::optional<uint16_t> wss_port;
    bool http_tls = false;  // the HTTP port speaks HTTPS (same certificate, no client certificates)
    net::tls_options tls;

    bool wants_tls() const { return mqtts_port.has_value() || wss_port.has_value(); }
};

// The TLS configuration of the HTTP port when http_tls is set: the listeners' certificate,
// key, ciphers and minimum version, without client certificates (browsers and Prometheus
// do not present one). Returns nullptr with `err` set when it does not load.
std::shared_ptr<net::tls_config> http_tls_config(const listener_settings& s, std::string& err);

// The extra listeners, opened on `server` after the plain one; each port is also written
// to DATA_DIR/<name>.port. Returns "" or what went wrong. `tls` is set when a TLS listener
// was opened (for SIGHUP and metrics).
std::string open_extra_listeners(net::tcp_server& server, const listener_settings& s, const std::string& bind_address,
                                 const std::string& data_dir, std::shared_ptr<net::tls_config>& tls);

void write_tls_metrics(net::tls_config& tls, http::metrics_snapshot& w);
void write_connection_limit_metrics(net::tcp_server& server, http::metrics_snapshot& w);

}  // namespace sluice::app
