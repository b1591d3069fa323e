// SPDX-License-Identifier: Apache-2.0
#include "net/websocket.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::net {
namespace {

const std::string k_upgrade =
    "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n";

// A client frame (always masked, as RFC 6455 requires of clients).
std::string client_frame(uint8_t first_byte, const std::string& payload, uint32_t mask = 0x11223344) {
    std::string f;
    f.push_back(static_cast<char>(first_byte));
    size_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xFFFF) {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xFF));
    } else {
        f.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8)
            f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xFF));
    }
    char key[4] = {static_cast<char>(mask >> 24), static_cast<char>(mask >> 16), static_cast<char>(mask >> 8),
                   static_cast<char>(mask)};
    f.append(key, 4);
    for (size_t i = 0; i < n; ++i)
        f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
    return f;
}

struct session {
    websocket_layer ws;
    std::string app;
    std::string reply;
    bool feed(const std::string& bytes) {
        reply.clear();
        return ws.on_wire(bytes, app, reply);
    }
    void open() {
        ASSERT_TRUE(feed(k_upgrade)) << ws.error();
        ASSERT_EQ(reply.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0U) << reply;
    }
};

TEST(websocket, accept_key_matches_rfc_6455_example) {
    EXPECT_EQ(websocket_layer::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(websocket, upgrade_answers_101_with_accept_and_mqtt_subprotocol) {
    session s;
    s.open();
    EXPECT_NE(s.reply.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
    EXPECT_NE(s.reply.find("Sec-WebSocket-Protocol: mqtt\r\n"), std::string::npos);
    EXPECT_EQ(s.ws.path(), "/mqtt");
    EXPECT_TRUE(s.app.empty());
}

TEST(websocket, upgrade_arriving_byte_by_byte_then_frames_in_the_same_read) {
    session s;
    for (size_t i = 0; i + 1 < k_upgrade.size(); ++i) {
        ASSERT_TRUE(s.feed(k_upgrade.substr(i, 1)));
        ASSERT_TRUE(s.reply.empty());
    }
    // The blank line's last byte and a whole frame together.
    ASSERT_TRUE(s.feed(k_upgrade.substr(k_upgrade.size() - 1) + client_frame(0x82,
                                                                             "\x10\x02"
                                                                             "ab")));
    EXPECT_EQ(s.reply.rfind("HTTP/1.1 101", 0), 0U);
    EXPECT_EQ(s.app,
              "\x10\x02"
              "ab");
}

TEST(websocket, frames_are_unmasked_whatever_how_they_are_split) {
    std::string payload(70'000, '\0');
    for (size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<char>(i * 7);
    std::string wire =
        client_frame(0x82, "x") + client_frame(0x82, std::string(300, 'y')) + client_frame(0x82, payload);
    for (size_t step : {size_t{1}, size_t{3}, size_t{1000}, wire.size()}) {
        session s;
        s.open();
        for (size_t at = 0; at < wire.size(); at += step)
            ASSERT_TRUE(s.feed(wire.substr(at, step))) << s.ws.error();
        EXPECT_EQ(s.app, "x" + std::string(300, 'y') + payload) << "step " << step;
    }
}

TEST(websocket, fragmented_message_and_ping_between_fragments) {
    session s;
    s.open();
    ASSERT_TRUE(s.feed(client_frame(0x02, "ab")));     // binary, not final
    ASSERT_TRUE(s.feed(client_frame(0x89, "hi")));     // ping in between
    EXPECT_EQ(s.reply, std::string("\x8A\x02hi", 4));  // pong, unmasked, same payload
    ASSERT_TRUE(s.feed(client_frame(0x80, "cd")));     // continuation, final
    EXPECT_EQ(s.app, "abcd");
    EXPECT_FALSE(s.feed(client_frame(0x80, "ef")));                       // continuation without a message
    EXPECT_EQ(s.reply.substr(0, 4), std::string("\x88\x02\x03\xEA", 4));  // close 1002
}

TEST(websocket, text_frame_closes_with_1003) {
    session s;
    s.open();
    EXPECT_FALSE(s.feed(client_frame(0x81, "{}")));
    EXPECT_EQ(s.reply, std::string("\x88\x02\x03\xEB", 4));
    EXPECT_NE(s.ws.error().find("text frame"), std::string::npos);
}

TEST(websocket, unmasked_or_extension_frames_close_with_1002) {
    for (const std::string& bad : {std::string("\x82\x01x", 3), client_frame(0xC2, "x")}) {
        session s;
        s.open();
        EXPECT_FALSE(s.feed(bad));
        EXPECT_EQ(s.reply, std::string("\x88\x02\x03\xEA", 4));
    }
}

TEST(websocket, long_or_fragmented_control_frames_are_refused) {
    session s;
    s.open();
    EXPECT_FALSE(s.feed(client_frame(0x89, std::string(126, 'p'))));
    session t;
    t.open();
    EXPECT_FALSE(t.feed(client_frame(0x09, "p")));
}

TEST(websocket, close_is_echoed_and_ends_the_stream) {
    session s;
    s.open();
    EXPECT_FALSE(s.feed(client_frame(0x88, std::string("\x03\xE8", 2))));
    EXPECT_EQ(s.reply, std::string("\x88\x02\x03\xE8", 4));
    std::string out;
    s.ws.on_close(out);
    EXPECT_TRUE(out.empty()) << "a second close frame";
    EXPECT_FALSE(s.feed(client_frame(0x82, "late")));
    EXPECT_TRUE(s.app.empty());
}

TEST(websocket, server_frames_use_the_shortest_length_encoding) {
    session s;
    s.open();
    for (size_t n : {size_t{0}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}}) {
        std::string out;
        s.ws.on_app(std::string(n, 'z'), out);
        if (n == 0) {
            EXPECT_TRUE(out.empty());
            continue;
        }
        size_t header = n < 126 ? 2 : n <= 65535 ? 4 : 10;
        ASSERT_EQ(out.size(), header + n);
        EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x82);
        EXPECT_EQ(static_cast<uint8_t>(out[1]) & 0x80, 0) << "server frames are not masked";
    }
    std::string bye;
    s.ws.on_close(bye);
    EXPECT_EQ(bye, std::string("\x88\x02\x03\xE8", 4));
}

TEST(websocket, bad_upgrades_get_an_http_error) {
    auto refused = [](const std::string& request, const char* status) {
        session s;
        EXPECT_FALSE(s.feed(request)) << request;
        EXPECT_EQ(s.reply.rfind(status, 0), 0U) << s.reply;
    };
    auto without = [](const std::string& header) {
        std::string r = k_upgrade;
        size_t at = r.find(header);
        return r.erase(at, r.find("\r\n", at) + 2 - at);
    };
    refused("POST /mqtt HTTP/1.1\r\n\r\n", "HTTP/1.1 400");
    refused("GET /mqtt HTTP/1.0\r\n\r\n", "HTTP/1.1 400");
    refused(without("Upgrade:"), "HTTP/1.1 400");
    refused(without("Sec-WebSocket-Key:"), "HTTP/1.1 400");
    refused(without("Sec-WebSocket-Version:"), "HTTP/1.1 426");
    std::string other_protocol = k_upgrade;
    other_protocol.replace(other_protocol.find("Protocol: mqtt"), 14, "Protocol: chat");
    refused(other_protocol, "HTTP/1.1 400");
    refused("GET / HTTP/1.1\r\nX: " + std::string(20'000, 'a'), "HTTP/1.1 400");
}

TEST(websocket, older_mqttv31_subprotocol_and_none_at_all_are_served) {
    std::string v31 = k_upgrade;
    v31.replace(v31.find("Protocol: mqtt"), 14, "Protocol: mqttv3.1");
    session a;
    ASSERT_TRUE(a.feed(v31));
    EXPECT_NE(a.reply.find("Sec-WebSocket-Protocol: mqttv3.1\r\n"), std::string::npos);
    std::string none = k_upgrade;
    size_t at = none.find("Sec-WebSocket-Protocol:");
    none.erase(at, none.find("\r\n", at) + 2 - at);
    session b;
    ASSERT_TRUE(b.feed(none));
    EXPECT_EQ(b.reply.find("Sec-WebSocket-Protocol"), std::string::npos);
}

}  // namespace
}  // namespace sluice::net
