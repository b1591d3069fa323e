// SPDX-License-Identifier: Apache-2.0
//
// One HTTP exchange over a loopback socket, and an API server to have it with, for the
// tests that drive a real server.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "http/api.h"
#include "http/server.h"
#include "store/query.h"

namespace sluice::http::loopback {

// Sends `raw` to 127.0.0.1:port and returns everything the server sends until it closes
// (or 10 s pass without a byte).
inline std::string exchange(uint16_t port, const std::string& raw) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::write(fd, raw.data(), raw.size()), static_cast<ssize_t>(raw.size()));
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

// The whole response to GET target (Connection: close).
inline std::string http_get(uint16_t port, const std::string& target) {
    return loopback::exchange(port, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

// Status code and body of GET target.
inline std::pair<int, std::string> get_status_body(uint16_t port, const std::string& target) {
    std::string raw = http_get(port, target);
    int status = raw.size() > 12 ? static_cast<int>(std::strtol(raw.c_str() + 9, nullptr, 10)) : 0;
    size_t body = raw.find("\r\n\r\n");
    return {status, body == std::string::npos ? std::string() : raw.substr(body + 4)};
}

// Registers the API routes, answering from `query`, on `s` and starts it on a loopback
// port. Returns the port (0, after a test failure, when the server cannot start).
inline uint16_t start_api(server& s, std::unique_ptr<store::telemetry_query> query) {
    api_config cfg;
    cfg.query = std::move(query);
    register_api(s, std::move(cfg));
    auto port = s.start("127.0.0.1", 0);
    EXPECT_TRUE(port) << port.error().message();
    return port ? *port : 0;
}

}  // namespace sluice::http::loopback
