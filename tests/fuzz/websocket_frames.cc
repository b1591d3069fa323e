// SPDX-License-Identifier: Apache-2.0
//
// The WebSocket layer (net/websocket.h) on arbitrary bytes after a valid upgrade, or as the
// upgrade itself, cut into reads of varying sizes. Invariants: no crash or sanitizer
// report; it never decodes more MQTT bytes than it was given; once it has ended the
// stream it stays ended; the same bytes give the same result however they are split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/websocket.h"

namespace {

const char k_upgrade[] =
    "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

struct outcome {
    bool ok = true;
    std::string app;
    std::string wire;
};

outcome run(std::string_view input, size_t step) {
    sluice::net::websocket_layer ws;
    outcome o;
    for (size_t at = 0; at < input.size(); at += step) {
        bool ok = ws.on_wire(input.substr(at, step), o.app, o.wire);
        if (!o.ok && ok) std::abort();  // ended streams stay ended
        o.ok = o.ok && ok;
    }
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    bool with_upgrade = (data[0] & 0x80) != 0;
    size_t step = (data[0] & 0x7F) + 1U;
    std::string input = with_upgrade ? std::string(k_upgrade) : std::string();
    input.append(reinterpret_cast<const char*>(data + 1), size - 1);
    outcome whole = run(input, input.size() + 1);
    outcome split = run(input, step);
    if (split.app.size() > input.size()) std::abort();
    if (whole.ok != split.ok || whole.app != split.app || whole.wire != split.wire) std::abort();
    return 0;
}
