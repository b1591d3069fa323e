// SPDX-License-Identifier: Apache-2.0
// Drives the HTTP server over a real loopback socket.
#include "http/server.h"

#include <string>

#include <gtest/gtest.h>

#include "http/tests/loopback_client.h"

namespace sluice::http {
namespace {

using loopback::exchange;

TEST(http_server, routes_queries_and_errors) {
    server s;
    s.route("GET", "/hello", [](const request& r) {
        response res;
        res.body = "hi " + (r.query.count("name") ? r.query.at("name") : std::string("?"));
        return res;
    });
    s.route("POST", "/echo", [](const request& r) { return response{200, "text/plain", r.body, {}}; });
    s.route("GET", "/static/*", [](const request& r) { return response{200, "text/plain", r.path, {}}; });
    auto port = s.start("127.0.0.1", 0);
    ASSERT_TRUE(port);

    auto a = exchange(*port, "GET /hello?name=a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(a.find("HTTP/1.1 200 OK"), std::string::npos) << a;
    EXPECT_NE(a.find("hi a b"), std::string::npos) << a;

    auto b = exchange(*port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde");
    EXPECT_NE(b.find("\r\n\r\nabcde"), std::string::npos) << b;

    auto c = exchange(*port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(c.find("404"), std::string::npos) << c;

    auto d = exchange(*port, "POST /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(d.find("405"), std::string::npos) << d;

    auto e = exchange(*port, "GET /static/app.js HTTP/1.0\r\n\r\n");
    EXPECT_NE(e.find("/static/app.js"), std::string::npos) << e;

    // Two pipelined keep-alive requests on one connection, the second closing it.
    auto f = exchange(
        *port,
        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?name=z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(f.find("hi ?"), std::string::npos) << f;
    EXPECT_NE(f.find("hi z"), std::string::npos) << f;

    auto g = exchange(*port, "garbage\r\n\r\n");
    EXPECT_NE(g.find("400"), std::string::npos) << g;
    s.stop();
}

}  // namespace
}  // namespace sluice::http
