// SPDX-License-Identifier: Apache-2.0
//
// Each rule of request_parser.h, and each request the issue 12 review found accepted:
// Transfer-Encoding with Content-Length, duplicate Content-Length, bare LF, 1 MB header
// lines, 10,000 headers, HTTP/9.9.
#include "http/request_parser.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

parse_outcome parse(const std::string& raw, request* out = nullptr) {
    request r;
    parse_outcome o = parse_request(raw, r);
    if (out) *out = r;
    return o;
}

int refused_with(const std::string& raw) {
    parse_outcome o = parse(raw);
    EXPECT_EQ(o.what, parse_outcome::state::error) << raw.substr(0, 200);
    return o.status;
}

TEST(request_parser, a_plain_get_with_query_and_headers) {
    request r;
    auto o = parse("GET /api/readings?device=d%201&limit=5 HTTP/1.1\r\nHost: x\r\nAccept:  text/plain \r\n\r\n", &r);
    ASSERT_EQ(o.what, parse_outcome::state::complete);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, "/api/readings");
    EXPECT_EQ(r.query["device"], "d 1");
    EXPECT_EQ(r.query["limit"], "5");
    EXPECT_EQ(r.headers["accept"], "text/plain");
    EXPECT_TRUE(o.keep_alive);
}

TEST(request_parser, body_waits_for_its_length_and_pipelined_requests_split) {
    std::string two = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    EXPECT_EQ(parse(two.substr(0, two.find("abc") + 2)).what, parse_outcome::state::incomplete);
    request r;
    auto o = parse(two, &r);
    ASSERT_EQ(o.what, parse_outcome::state::complete);
    EXPECT_EQ(r.body, "abc");
    EXPECT_EQ(two.substr(o.consumed), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST(request_parser, http10_closes_unless_keep_alive_and_connection_close_is_honoured) {
    EXPECT_FALSE(parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
    EXPECT_TRUE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
}

TEST(request_parser, request_smuggling_shapes_are_refused) {
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"),
              400);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"), 400);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"), 400);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"), 400);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
              501);
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"), 400);
}

TEST(request_parser, line_endings_are_crlf_only) {
    EXPECT_EQ(refused_with("GET / HTTP/1.1\nHost: x\n\n"), 400);
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\nHost: x\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n"), 400);
    // Refused as soon as it arrives, not after waiting for a blank line that never comes.
    EXPECT_EQ(refused_with("GET / HTTP/1.1\nHost"), 400);
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"), 400);  // obs-fold
    EXPECT_EQ(refused_with(std::string("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n")), 400);
    EXPECT_EQ(refused_with(std::string("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 32)), 400);
}

TEST(request_parser, versions_and_request_lines) {
    EXPECT_EQ(refused_with("GET / HTTP/9.9\r\nHost: x\r\n\r\n"), 505);
    EXPECT_EQ(refused_with("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
    EXPECT_EQ(refused_with("GET / HTTP/1.10\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET / FTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET / HTTP/1.1 \r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\n\r\n"), 400);  // no Host
    EXPECT_EQ(parse("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").what, parse_outcome::state::complete);
}

TEST(request_parser, size_limits) {
    EXPECT_EQ(refused_with("GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(1 << 20, 'a') + "\r\n\r\n"), 431);
    std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 10'000; ++i)
        many += "X" + std::to_string(i) + ": y\r\n";
    EXPECT_EQ(refused_with(many + "\r\n"), 431);
    EXPECT_EQ(refused_with(many), 431) << "refused before the head is complete";
    std::string hundred_and_one = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 100; ++i)
        hundred_and_one += "X" + std::to_string(i) + ": y\r\n";
    EXPECT_EQ(refused_with(hundred_and_one + "\r\n"), 431);
    EXPECT_EQ(refused_with("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"), 414);
    EXPECT_EQ(refused_with("GET /" + std::string(9000, 'a')), 414);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"), 413);
    EXPECT_EQ(refused_with("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"), 413);
}

TEST(request_parser, repeated_fields_become_one_list) {
    request r;
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n", &r).what,
              parse_outcome::state::complete);
    EXPECT_EQ(r.headers["accept"], "a, b");
}

}  // namespace
}  // namespace sluice::http
