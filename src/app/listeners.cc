// SPDX-License-Identifier: Apache-2.0
#include "app/listeners.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "base/log.h"
#include "http/metrics_snapshot.h"
#include "net/connection_limits.h"
#include "net/tcp_server.h"

namespace sluice::app {
std::string open_extra_listeners(net::tcp_server& server, const listener_settings& s, const std::string& bind_address,
                                 const std::string& data_dir, std::shared_ptr<net::tls_config>& tls) {
    if (s.wants_tls()) {
        tls = std::make_shared<net::tls_config>(s.tls);
        if (std::string err = tls->load(); !err.empty()) return "TLS: " + err;
    } else if (!s.tls.cert_file.empty() || s.tls.require_certificate) {
        SLUICE_WARN("app", "TLS settings given but no TLS listener (--mqtts-port or --wss-port): they are unused");
    }
    struct wanted {
        const char* name;
        std::optional<uint16_t> port;
        bool tls;
        bool websocket;
    };
    for (const wanted& w : {wanted{"mqtts", s.mqtts_port, true, false}, wanted{"ws", s.ws_port, false, true},
                            wanted{"wss", s.wss_port, true, true}}) {
        if (!w.port) continue;
        net::listener_options o;
        o.bind_address = bind_address;
        o.port = *w.port;
        o.name = w.name;
        o.websocket = w.websocket;
        if (w.tls) o.tls = tls;
        auto port = server.listen(o);
        if (!port) {
            return std::string("cannot listen (") + w.name + ") on " + bind_address + ":" + std::to_string(*w.port) +
                   ": " + port.error().message();
        }
        std::fprintf(stderr, "%s listening on %s:%u\n", w.name, bind_address.c_str(), *port);
        // Atomically (temp + rename), as mqtt.port: scripts wait for these files.
        std::string path = data_dir + "/" + w.name + ".port";
        {
            std::ofstream f(path + ".tmp", std::ios::trunc);
            f << *port << '\n';
        }
        if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0)
            SLUICE_WARN("app", "cannot write %s", path.c_str());
    }
    return {};
}

std::shared_ptr<net::tls_config> http_tls_config(const listener_settings& s, std::string& err) {
    net::tls_options o = s.tls;
    o.ca_file.clear();
    o.require_certificate = false;
    auto tls = std::make_shared<net::tls_config>(o);
    err = tls->load();
    if (!err.empty()) {
        err = "HTTPS: " + err;
        return nullptr;
    }
    return tls;
}

void write_tls_metrics(net::tls_config& tls, http::metrics_snapshot& w) {
    auto& s = tls.stats();
    auto v = [](const std::atomic<uint64_t>& c) { return static_cast<double>(c.load(std::memory_order_relaxed)); };
    const char* help = "TLS handshakes on the MQTT listeners, by result";
    w.counter("tls_handshakes_total", help, v(s.handshakes), {{"result", "ok"}});
    w.counter("tls_handshakes_total", help, v(s.handshake_failures), {{"result", "failed"}});
    const char* reloads = "Reloads of the TLS certificate and key (SIGHUP), by result";
    w.counter("tls_reloads_total", reloads, v(s.reloads), {{"result", "ok"}});
    w.counter("tls_reloads_total", reloads, v(s.reload_failures), {{"result", "failed"}});
}

void write_connection_limit_metrics(net::tcp_server& server, http::metrics_snapshot& w) {
    auto& s = server.limit_stats();
    auto v = [](const std::atomic<uint64_t>& c) { return static_cast<double>(c.load(std::memory_order_relaxed)); };
    const char* help = "New MQTT connections closed at accept by a connection limit, by limit";
    w.counter("mqtt_connections_refused_total", help, v(s.refused_total), {{"limit", "max_connections"}});
    w.counter("mqtt_connections_refused_total", help, v(s.refused_per_address),
              {{"limit", "max_connections_per_address"}});
    w.counter("mqtt_connections_refused_total", help, v(s.refused_rate),
              {{"limit", "max_connection_rate_per_address"}});
    w.gauge("mqtt_sockets_open", "MQTT sockets open on all listeners (before and after CONNECT)", v(s.current));
}

}  // namespace sluice::app
