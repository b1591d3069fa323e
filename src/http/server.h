// SPDX-License-Identifier: Apache-2.0
//
// A small HTTP/1.1 server for the human-speed side of Sluice: Prometheus /metrics,
// /health, the query API and the dashboard's files. It runs on its own event loop
// thread so a slow scrape never delays MQTT traffic. Requests are GET/HEAD/POST with
// bodies up to 1 MiB; connections are kept alive; handlers run on the server thread
// and must not block for long. Routes are registered before start(); docs/http-api.md
// lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"

namespace sluice::net {
class event_loop;
class tls_config;
}  // namespace sluice::net

namespace sluice::http {

struct request {
    std::string method;
    std::string peer;                            // the client's address, without port
    std::string path;                            // without the query string
    std::map<std::string, std::string> query;    // decoded ?a=b&c=d
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
};

struct response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

using handler = std::function<response(const request&)>;

class server {
public:
    server();
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Exact-path route ("/metrics"), or a prefix route when `path` ends with '*' ("/static/*").
    void route(std::string method, std::string path, handler h);

    // Runs before every route: a response it returns is sent instead (access control,
    // issue 12). REQUIRES: set before start().
    void set_guard(std::function<std::optional<response>(const request&)> g);

    // Serves HTTPS instead of HTTP (issue 12), with `tls`'s certificate. REQUIRES: loaded,
    // set before start().
    void set_tls(std::shared_ptr<net::tls_config> tls);

    // Binds and starts the server thread. Returns the bound port (useful with port 0).
    result<uint16_t> start(const std::string& bind_address, uint16_t port);
    void stop();

    struct impl;  // public name so the connection class in server.cc can refer to it

private:
    std::unique_ptr<impl> impl_;
};

// Percent-decodes a URL component ('+' is a space in query strings).
std::string url_decode(std::string_view s, bool plus_is_space);

}  // namespace sluice::http
