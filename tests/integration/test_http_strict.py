# SPDX-License-Identifier: Apache-2.0
#
# The HTTP port refuses what two HTTP parsers could read differently (issue 12, RFC 9112),
# over a real socket against the real binary: each request the review found accepted now
# gets its status, the connection is closed after it, and the server keeps serving.

import os
import socket

import pytest

import broker as broker_mod

pytestmark = pytest.mark.skipif(broker_mod.is_mosquitto(), reason="Sluice's HTTP port")


def http_port(b):
    with open(os.path.join(b.data_dir, "http.port")) as f:
        return int(f.read())


def exchange(port, raw, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished sending: the answer is still readable
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


CASES = [
    ("te_and_cl", b"POST /api/devices HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("duplicate_cl", b"POST /api/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("bare_lf", b"GET /health HTTP/1.1\nHost: x\n\n", 400),
    ("long_header_line", b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * (1 << 20) + b"\r\n\r\n", 431),
    ("ten_thousand_headers", b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(10000)) + b"\r\n", 431),
    ("http_9_9", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    ("no_host", b"GET /health HTTP/1.1\r\n\r\n", 400),
    ("chunked_body", b"POST /api/devices HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
]


@pytest.mark.parametrize("raw,status", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_ambiguous_requests_are_refused_and_the_server_goes_on(broker, raw, status):
    port = http_port(broker)
    reply = exchange(port, raw)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"Connection: close" in reply
    ok = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 "), ok[:200]
