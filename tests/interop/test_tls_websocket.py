# SPDX-License-Identifier: Apache-2.0
#
# MQTT over TLS, WebSocket and WebSocket over TLS (issue 12, docs/security.md) with clients
# nobody here wrote: mosquitto_pub/mosquitto_sub with --cafile/--cert/--key, MQTT.js over
# mqtts, ws and wss, Paho Python over WebSocket, and raw sockets for the refusals. Client
# certificates name the client (CN = username, checked by the ACL); a client that cannot
# complete the handshake is counted and disturbs no one; SIGHUP swaps the certificate
# for new connections while the old ones stay up.

import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

import broker as broker_mod
import certs
from mqtt_raw import gen_connect, V5

pytestmark = pytest.mark.skipif(broker_mod.is_mosquitto(), reason="Sluice's own listeners")

HERE = os.path.dirname(os.path.abspath(__file__))
MQTTJS = os.path.join(HERE, "mqttjs", "interop.js")
TIMEOUT = 15


@pytest.fixture
def pki():
    d = tempfile.mkdtemp(prefix="sluice-tls-")
    ca = certs.Authority(d)
    server = ca.issue("localhost", "server", server=True)
    yield d, ca, server
    shutil.rmtree(d, ignore_errors=True)


def start(pki, extra_tls="", extra="", threads=2):
    d, ca, (cert, key) = pki
    cfg = ("[server]\nthreads = %d\nmqtts_port = 0\nws_port = 0\nwss_port = 0\n%s"
           "[tls]\ncert_file = \"%s\"\nkey_file = \"%s\"\n%s" % (threads, extra, cert, key, extra_tls))
    b = broker_mod.Broker(config_text=cfg)
    b.start()
    b.ports = {}
    for name in ("mqtts", "ws", "wss", "http"):
        with open(os.path.join(b.data_dir, name + ".port")) as f:
            b.ports[name] = int(f.read())
    return b


def stop(b):
    try:
        assert b.alive(), b.log_tail()
        assert b.stop() == 0, b.log_tail()
    finally:
        b.cleanup()


def tls_args(port, ca, cert=None):
    args = ["-h", "localhost", "-p", str(port), "--cafile", ca.cert]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    return args


class Sub:
    """mosquitto_sub in the background; ready() once its SUBACK arrived (-d prints it)."""

    def __init__(self, args, topic, count):
        self.proc = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", *args, "-t", topic, "-q", "1",
                                      "-C", str(count), "-W", str(TIMEOUT), "-d", "-F", "%t %p"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._suback = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._suback.wait(TIMEOUT), "mosquitto_sub got no SUBACK:\n" + "\n".join(self.lines)

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if "SUBACK" in line:
                self._suback.set()

    def messages(self):
        self.proc.wait(TIMEOUT + 5)
        self._reader.join(5)
        return [l for l in self.lines if l.strip() and not l.startswith(("Client ", "Subscribed "))]


def pub(args, topic, message):
    return subprocess.run(["mosquitto_pub", *args, "-t", topic, "-m", message, "-q", "1"],
                          capture_output=True, text=True, timeout=TIMEOUT)


def metric(b, name, labels):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.ports["http"], timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and labels in line:
            return float(line.split()[-1])
    raise AssertionError("%s{%s} not in /metrics" % (name, labels))


def test_mosquitto_clients_over_tls_and_across_listeners(pki, uid):
    _, ca, _ = pki
    b = start(pki)
    try:
        topic = "tls/%s" % uid
        sub = Sub(tls_args(b.ports["mqtts"], ca), topic, 2)
        r = pub(tls_args(b.ports["mqtts"], ca), topic, "over-tls")
        assert r.returncode == 0, r.stderr
        r = pub(["-h", "127.0.0.1", "-p", str(b.port)], topic, "over-tcp")
        assert r.returncode == 0, r.stderr
        assert sub.messages() == ["%s over-tls" % topic, "%s over-tcp" % topic]
        assert metric(b, "sluice_tls_handshakes_total", 'result="ok"') >= 2
    finally:
        stop(b)


@pytest.mark.parametrize("transport", ["mqtts", "ws", "wss"])
@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
def test_mqttjs_over(pki, transport, version):
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed (scripts/bootstrap installs nodejs)"
    _, ca, _ = pki
    b = start(pki)
    try:
        r = subprocess.run([node, MQTTJS, str(b.ports[transport]), str(version), transport, ca.cert],
                           capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, "MQTT.js over %s failed:\n%s\n%s" % (transport, r.stdout, r.stderr)
        assert r.stdout.count("ok ") == 4, r.stdout
    finally:
        stop(b)


def test_paho_python_over_websocket(pki, uid):
    import paho.mqtt.client as paho

    _, ca, _ = pki
    b = start(pki)
    try:
        for transport_port, use_tls in ((b.ports["ws"], False), (b.ports["wss"], True)):
            got = []
            done = threading.Event()
            c = paho.Client(client_id="%s-%d" % (uid, transport_port), transport="websockets",
                            protocol=paho.MQTTv311)
            c.ws_set_options(path="/mqtt")
            if use_tls:
                c.tls_set(ca_certs=ca.cert)
            c.on_message = lambda _c, _u, m: (got.append(m.payload.decode()), done.set())
            c.connect("localhost", transport_port, keepalive=30)
            c.loop_start()
            try:
                topic = "paho-ws/%s/%d" % (uid, transport_port)
                result, mid = c.subscribe(topic, qos=1)
                assert result == 0
                time.sleep(0.3)
                info = c.publish(topic, "hello", qos=1)
                info.wait_for_publish(TIMEOUT)
                assert done.wait(TIMEOUT), "no message back over %s" % ("wss" if use_tls else "ws")
                assert got == ["hello"]
            finally:
                c.disconnect()
                c.loop_stop()
    finally:
        stop(b)


def test_client_certificate_is_the_username_for_the_acl(pki, uid):
    d, ca, _ = pki
    device = ca.issue("device-1", "device-1")
    observer = ca.issue("observer", "observer")
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("user device-1\ntopic readwrite devices/device-1/#\n\nuser observer\ntopic read devices/#\n")
    b = broker_mod.Broker(config_text=(
        "[server]\nmqtts_port = 0\n[auth]\nacl_file = \"%s\"\n[tls]\ncert_file = \"%s\"\n"
        "key_file = \"%s\"\nca_file = \"%s\"\nrequire_certificate = true\n" % (acl, *pki[2], ca.cert)))
    b.start()
    b.ports = {n: int(open(os.path.join(b.data_dir, n + ".port")).read()) for n in ("mqtts", "http")}
    try:
        port = b.ports["mqtts"]
        sub = Sub(tls_args(port, ca, observer) + ["-i", "observer-" + uid], "devices/#", 1)
        # device-1 may publish under its own topic only; the CN, not a password, says who it
        # is. The forged message comes first: had it been delivered, it would be the one seen.
        pub(tls_args(port, ca, device) + ["-V", "mqttv5"], "devices/device-2/telemetry", "forged")
        ok = pub(tls_args(port, ca, device), "devices/device-1/telemetry", "mine")
        assert ok.returncode == 0, ok.stderr
        assert sub.messages() == ["devices/device-1/telemetry mine"]
        assert metric(b, "sluice_acl_denied_total", 'operation="publish"') >= 1
        # No certificate: the handshake fails, counted; the observer above was not disturbed.
        r = pub(tls_args(port, ca), "devices/device-1/telemetry", "anonymous")
        assert r.returncode != 0
        assert metric(b, "sluice_tls_handshakes_total", 'result="failed"') >= 1
    finally:
        stop(b)


def test_bad_handshakes_are_counted_and_disturb_no_one(pki, uid):
    d, ca, _ = pki
    stranger = certs.Authority(d, "stranger")
    b = start(pki)
    try:
        port = b.ports["mqtts"]
        topic = "steady/%s" % uid
        sub = Sub(tls_args(port, ca), topic, 1)
        # A client that does not trust our certificate, one that speaks plain MQTT to the TLS
        # port, one that speaks TLS and stops half-way.
        assert pub(tls_args(port, stranger), topic, "x").returncode != 0
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(gen_connect("plain-" + uid, proto_ver=V5))
            s.settimeout(TIMEOUT)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            assert not data.startswith(b"\x20"), "a CONNACK in clear on the TLS port"
        half = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        half.sendall(b"\x16\x03\x01\x00\x50")  # a ClientHello record header, and nothing more
        r = pub(tls_args(port, ca), topic, "still-here")
        assert r.returncode == 0, r.stderr
        assert sub.messages() == ["%s still-here" % topic]
        half.close()
        assert metric(b, "sluice_tls_handshakes_total", 'result="failed"') >= 2
    finally:
        stop(b)


def test_sighup_swaps_the_certificate_for_new_connections(pki, uid):
    d, ca, (cert, key) = pki
    b = start(pki)
    try:
        port = b.ports["mqtts"]
        topic = "reload/%s" % uid
        sub = Sub(tls_args(port, ca), topic, 1)  # connected with the old certificate
        ca2 = certs.Authority(d, "ca2")
        new_cert, new_key = ca2.issue("localhost", "server2", server=True)
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if pub(tls_args(port, ca2), topic, "after-reload").returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the new certificate was not served after SIGHUP:\n" + b.log_tail())
        assert pub(tls_args(port, ca), topic, "x").returncode != 0, "the old certificate is still served"
        assert sub.messages() == ["%s after-reload" % topic], "the connection made before SIGHUP dropped"
        assert metric(b, "sluice_tls_reloads_total", 'result="ok"') == 1
        # A broken certificate file: the reload fails, the current certificate stays.
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert pub(tls_args(port, ca2), topic, "y").returncode == 0
        assert metric(b, "sluice_tls_reloads_total", 'result="failed"') == 1
    finally:
        stop(b)


# ---- WebSocket framing with a raw socket ----------------------------------------------

def ws_upgrade(port, protocol="mqtt"):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    req = ("GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    if protocol:
        req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    s.sendall((req + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
            out += chunk
        return out
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0F, exact(n)


def test_websocket_frames_split_and_joined(pki, uid):
    b = start(pki)
    try:
        s, head = ws_upgrade(b.ports["ws"])
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"Sec-WebSocket-Protocol: mqtt\r\n" in head
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        # A CONNECT split over a fragmented message, with a ping in between.
        connect = gen_connect("ws-" + uid, proto_ver=V5)
        s.sendall(frame(0x2, connect[:5], fin=False) + frame(0x9, b"are you there")
                  + frame(0x0, connect[5:]))
        got = [read_frame(s), read_frame(s)]
        assert (0xA, b"are you there") in got, got
        (opcode, connack), = [g for g in got if g[0] != 0xA]
        assert opcode == 0x2 and connack[0] == 0x20 and connack[3] == 0, connack
        # PINGREQ twice in one frame: two PINGRESPs.
        s.sendall(frame(0x2, b"\xc0\x00\xc0\x00"))
        body = b""
        while len(body) < 4:
            op, data = read_frame(s)
            assert op == 0x2
            body += data
        assert body == b"\xd0\x00\xd0\x00"
        # A text frame is not MQTT: closed with 1003 (MQTT-6.0.0-1).
        s.sendall(frame(0x1, b"{}"))
        op, data = read_frame(s)
        assert (op, data[:2]) == (0x8, struct.pack("!H", 1003))
        s.close()
    finally:
        stop(b)


def test_websocket_refusals(pki):
    b = start(pki)
    try:
        s, head = ws_upgrade(b.ports["ws"], protocol="chat")
        assert head.startswith(b"HTTP/1.1 400"), head
        s.close()
        s = socket.create_connection(("127.0.0.1", b.ports["ws"]), timeout=TIMEOUT)
        s.sendall(gen_connect("raw-mqtt-on-ws", proto_ver=V5))  # MQTT without the upgrade
        data = s.recv(100)
        assert data.startswith(b"HTTP/1.1 400"), data
        s.close()
    finally:
        stop(b)


def test_http_port_over_tls(pki):
    """--http-tls: the API, dashboard and metrics over HTTPS with the listeners' certificate."""
    _, ca, (cert, key) = pki
    b = broker_mod.Broker(config_text=(
        "[server]\nhttp_tls = true\n[tls]\ncert_file = \"%s\"\nkey_file = \"%s\"\n" % (cert, key)))
    b.start()
    try:
        port = int(open(os.path.join(b.data_dir, "http.port")).read())
        context = ssl.create_default_context(cafile=ca.cert)
        with urllib.request.urlopen("https://localhost:%d/health" % port, context=context, timeout=10) as r:
            assert r.status == 200 and b'"ok"' in r.read()
        with urllib.request.urlopen("https://localhost:%d/metrics" % port, context=context, timeout=10) as r:
            assert b"sluice_" in r.read()
        # Plain HTTP to the HTTPS port gets no answer in clear.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            assert not data.startswith(b"HTTP/"), data
    finally:
        stop(b)
