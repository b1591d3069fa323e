# SPDX-License-Identifier: Apache-2.0
#
# Authentication and ACLs (issue 12, docs/security.md) against the real binary: password
# files shared with Debian's mosquitto_passwd/mosquitto in both directions, CONNACK codes
# for 3.1.1 and 5.0, the per-address failure limit, slow hashes off the event loop,
# client-id binding against session hijacking, mosquitto acl_file rules for publish,
# subscribe, retained messages and wills, and reload on SIGHUP without dropping clients.

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

import broker as broker_mod
from mqtt_raw import (Client, V311, V5, PUBLISH, SUBACK, CONNACK, gen_connect, gen_publish,
                      ConnectionClosed)

pytestmark = pytest.mark.skipif(broker_mod.is_mosquitto(), reason="Sluice's own configuration")

SLUICE = broker_mod.sluice_binary()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="sluice-auth-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def passwd(*args, check=True):
    return subprocess.run([SLUICE, "passwd", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def start(workdir, auth_lines, threads=None):
    cfg = "[auth]\n" + "\n".join(auth_lines) + "\n"
    if threads:
        cfg = "[server]\nthreads = %d\n" % threads + cfg
    b = broker_mod.Broker(config_text=cfg)
    b.start()
    return b


def stop(b):
    try:
        assert b.alive(), b.log_tail()
        assert b.stop() == 0, b.log_tail()
    finally:
        b.cleanup()


def metrics(b):
    with open(os.path.join(b.data_dir, "http.port")) as f:
        port = int(f.read().strip())
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def metric(b, name, **labels):
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}" if labels else "")
    for line in metrics(b).splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError("metric %s not found" % want)


def login(port, proto, client_id, username=None, password=None):
    with Client(port, proto) as c:
        return c.connect(client_id, expect_reason=None, username=username, password=password).reason


# -- password files ---------------------------------------------------------------------

def test_password_file_round_trips_with_mosquitto_passwd(workdir):
    pw = os.path.join(workdir, "pw")
    passwd("-c", "-b", pw, "alice", "wonderland")
    subprocess.run(["mosquitto_passwd", "-b", pw, "bob", "builder"], check=True, timeout=30)
    passwd("-b", pw, "carol", "c4rol")
    subprocess.run(["mosquitto_passwd", "-D", pw, "carol"], check=True, timeout=30)
    passwd("-b", pw, "dave", "d4ve")
    passwd("-D", pw, "dave")
    assert sorted(l.split(":")[0] for l in open(pw).read().split()) == ["alice", "bob"]
    assert oct(os.stat(pw).st_mode & 0o777) == "0o600"
    assert passwd("-D", pw, "nobody", check=False).returncode != 0

    # Sluice accepts both users (one hashed by us, one by mosquitto_passwd)...
    b = start(workdir, ['password_file = "%s"' % pw])
    try:
        assert login(b.port, V5, "a", "alice", "wonderland") == 0
        assert login(b.port, V311, "b", "bob", "builder") == 0
        assert login(b.port, V5, "c", "carol", "c4rol") == 0x86
    finally:
        stop(b)

    # ...and mosquitto accepts the file sluice wrote, for both users.
    port = broker_mod.free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\npassword_file %s\nallow_anonymous false\n" % (port, pw))
        if os.getuid() == 0:
            f.write("user root\n")  # else mosquitto drops to `mosquitto`, who cannot read our 0600 file
    mosq = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        for user, secret, ok in [("alice", "wonderland", True), ("bob", "builder", True),
                                 ("alice", "wrong", False)]:
            r = subprocess.run(["mosquitto_pub", "-p", str(port), "-u", user, "-P", secret, "-t", "t",
                                "-m", "x", "-q", "1"], capture_output=True, timeout=15)
            assert (r.returncode == 0) == ok, (user, r.stderr)
    finally:
        mosq.terminate()
        mosq.wait(10)


def test_passwd_asks_twice_on_stdin(workdir):
    pw = os.path.join(workdir, "pw")
    r = subprocess.run([SLUICE, "passwd", "-c", pw, "eve"], input="s3cret\ns3cret\n", text=True,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([SLUICE, "passwd", pw, "eve"], input="one\ntwo\n", text=True,
                       capture_output=True, timeout=30)
    assert r.returncode != 0 and "do not match" in r.stderr
    b = start(workdir, ['password_file = "%s"' % pw])
    try:
        assert login(b.port, V5, "e", "eve", "s3cret") == 0
    finally:
        stop(b)


# -- authentication ---------------------------------------------------------------------

@pytest.fixture
def secured(workdir):
    pw = os.path.join(workdir, "pw")
    passwd("-c", "-b", pw, "alice", "wonderland")
    passwd("-b", pw, "bob", "builder")
    b = start(workdir, ['password_file = "%s"' % pw, "max_failures_per_minute = 5",
                        'client_id_pattern = "%u-*"'])
    yield b
    stop(b)


def test_connack_codes_and_counters(secured):
    p = secured.port
    assert login(p, V5, "alice-1", "alice", "wonderland") == 0
    assert login(p, V5, "alice-2", "alice", "wrong") == 0x86
    assert login(p, V5, "mallory-1", "mallory", "x") == 0x86
    assert login(p, V5, "anon") == 0x87  # password file given: no anonymous access
    assert login(p, V311, "alice-3", "alice", "wonderland") == 0
    assert login(p, V311, "alice-4", "alice", "wrong") == 4
    assert login(p, V311, "anon") == 5
    assert metric(secured, "sluice_auth_connects_total", result="accepted") == 2
    assert metric(secured, "sluice_auth_connects_total", result="bad_credentials") == 3
    assert metric(secured, "sluice_auth_connects_total", result="not_authorized") == 2


def test_paho_with_username_and_password(secured):
    import paho.mqtt.client as paho
    results = {}
    for name, secret in [("alice", "wonderland"), ("alice", "nope")]:
        done = threading.Event()
        c = paho.Client(client_id="alice-paho-" + secret, protocol=paho.MQTTv311)
        c.username_pw_set(name, secret)
        c.on_connect = lambda cl, ud, flags, rc, s=secret: (results.__setitem__(s, rc), done.set())
        c.connect("127.0.0.1", secured.port)
        c.loop_start()
        assert done.wait(10)
        c.loop_stop()
        c.disconnect()
    assert results == {"wonderland": 0, "nope": 4}


def test_failed_logins_are_rate_limited_per_address(secured):
    for _ in range(5):
        assert login(secured.port, V5, "bob-x", "bob", "guess") == 0x86
    # Now even the right password from this address is refused, unchecked.
    assert login(secured.port, V5, "bob-x", "bob", "builder") == 0x9F
    assert login(secured.port, V311, "bob-x", "bob", "builder") == 5
    assert metric(secured, "sluice_auth_connects_total", result="rate_limited") == 2


def test_client_id_binding_stops_session_takeover(secured):
    with Client(secured.port, V5) as alice:
        alice.connect("alice-device", username="alice", password="wonderland")
        # Bob may not use alice's client id: refused, and alice keeps her connection.
        assert login(secured.port, V5, "alice-device", "bob", "builder") == 0x87
        assert login(secured.port, V311, "alice-device", "bob", "builder") == 5
        alice.ping()
        assert login(secured.port, V5, "bob-1", "bob", "builder") == 0
    assert metric(secured, "sluice_auth_connects_total", result="client_id_not_allowed") == 2


def test_slow_hashes_do_not_stall_other_clients(workdir):
    # A user whose hash takes ~0.3 s per check; one event loop, so a hash on the loop thread
    # would stall the other client's pings.
    salt = os.urandom(12)
    iterations = 400000
    digest = hashlib.pbkdf2_hmac("sha512", b"slow", salt, iterations, 64)
    pw = os.path.join(workdir, "pw")
    with open(pw, "w") as f:
        f.write("slow:$7$%d$%s$%s\n" % (iterations, base64.b64encode(salt).decode().rstrip("="),
                                         base64.b64encode(digest).decode()))
    b = start(workdir, ['password_file = "%s"' % pw, "max_failures_per_minute = 0"], threads=1)
    try:
        t0 = time.monotonic()
        assert login(b.port, V5, "s0", "slow", "slow") == 0
        one = time.monotonic() - t0
        with Client(b.port, V5) as watcher:
            watcher.connect("s1", username="slow", password="slow")
            socks = []
            for i in range(4):
                c = Client(b.port, V5)
                c.send(gen_connect("slow-%d" % i, username="slow", password="slow"))
                socks.append(c)
            worst = 0.0
            for _ in range(10):
                t = time.monotonic()
                watcher.ping()
                worst = max(worst, time.monotonic() - t)
            for c in socks:
                assert c.expect(CONNACK, timeout=30).reason == 0
                c.close()
        # Four queued hashes take ~4x one; a ping waited for none of them.
        assert worst < one / 2, (worst, one)
    finally:
        stop(b)


def test_packets_pipelined_behind_a_slow_connect_wait_for_the_verdict(workdir):
    # CONNECT, SUBSCRIBE and PUBLISH in one write: the broker must hold SUBSCRIBE and
    # PUBLISH until the (slow) password check accepted the CONNECT, then run them in order.
    salt = os.urandom(12)
    iterations = 200000
    digest = hashlib.pbkdf2_hmac("sha512", b"pw", salt, iterations, 64)
    pw = os.path.join(workdir, "pw")
    with open(pw, "w") as f:
        f.write("u:$7$%d$%s$%s\n" % (iterations, base64.b64encode(salt).decode().rstrip("="),
                                      base64.b64encode(digest).decode()))
    b = start(workdir, ['password_file = "%s"' % pw])
    try:
        from mqtt_raw import gen_subscribe, sub_options
        for proto in (V5, V311):
            with Client(b.port, proto) as c:
                c.send(gen_connect("pipe-%d" % proto, username="u", password="pw", proto_ver=proto) +
                       gen_subscribe(1, [("pipe/t", sub_options(1))], proto) +
                       gen_publish("pipe/t", 1, b"hello", mid=2, proto_ver=proto))
                assert c.expect(CONNACK, timeout=20).reason == 0
                # SUBACK, PUBACK and the delivery, in an order the spec leaves open.
                got = [c.recv_packet(5) for _ in range(3)]
                assert sorted(p.name for p in got) == ["PUBACK", "PUBLISH", "SUBACK"], got
                assert [p.reasons for p in got if p.type == SUBACK] == [[1]]
                assert [p.payload for p in got if p.type == PUBLISH] == [b"hello"]
            # The same pipelining with a wrong password: nothing after CONNECT is acted on.
            with Client(b.port, proto) as c:
                c.send(gen_connect("pipe-bad-%d" % proto, username="u", password="no", proto_ver=proto) +
                       gen_publish("pipe/t", 0, b"sneaky", proto_ver=proto))
                got = c.expect_closed(20)
                assert [p.name for p in got] == ["CONNACK"]
                assert got[0].reason == (0x86 if proto == V5 else 4)
    finally:
        stop(b)


def test_loopback_quick_start_is_anonymous_and_other_binds_are_not(workdir):
    b = broker_mod.Broker()
    b.start()
    try:
        assert login(b.port, V5, "anyone") == 0
    finally:
        stop(b)
    port_dir = os.path.join(workdir, "d")
    os.makedirs(port_dir)
    proc = subprocess.Popen([SLUICE, "serve", "--mqtt-port", "0", "--http-port", "0", "--bind", "0.0.0.0",
                             "--data-dir", port_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pf = os.path.join(port_dir, "mqtt.port")
        deadline = time.monotonic() + 20
        while not (os.path.exists(pf) and open(pf).read().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        port = int(open(pf).read())
        assert login(port, V5, "anyone") == 0x87
        assert login(port, V311, "anyone") == 5
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# -- ACLs ---------------------------------------------------------------------------------

ACL = """# anonymous clients: nothing
user admin
topic readwrite #
topic deny secret/#

user ops
topic read devices/#
topic deny devices/bob/#

pattern write devices/%u/telemetry
pattern read devices/%u/commands
pattern readwrite clients/%c/#
"""


@pytest.fixture
def acl_broker(workdir):
    pw = os.path.join(workdir, "pw")
    for user in ("admin", "ops", "alice", "bob"):
        passwd("-c" if user == "admin" else "-b", *(["-b"] if user == "admin" else []), pw, user, user + "-pw")
    acl = os.path.join(workdir, "acl")
    with open(acl, "w") as f:
        f.write(ACL)
    b = start(workdir, ['password_file = "%s"' % pw, 'acl_file = "%s"' % acl])
    b.acl_path = acl
    b.pw_path = pw
    yield b
    stop(b)


def connect(b, user, proto=V5, client_id=None, **kw):
    c = Client(b.port, proto)
    c.connect(client_id or user + "-c", username=user, password=user + "-pw", **kw)
    return c


def test_denied_publish_is_neither_delivered_nor_acknowledged_as_accepted(acl_broker):
    with connect(acl_broker, "admin") as spy, connect(acl_broker, "alice") as alice, \
            connect(acl_broker, "alice", V311, "alice-311") as alice311:
        assert spy.subscribe("devices/#", qos=1).reasons == [1]
        # 5.0: PUBACK / PUBREC with Not authorized; QoS 0 is dropped.
        assert alice.publish("devices/bob/telemetry", b"forged", qos=1).reason == 0x87
        assert alice.publish("devices/bob/telemetry", b"forged", qos=2).reason == 0x87
        alice.publish("devices/bob/telemetry", b"forged", qos=0)
        # 3.1.1 has no negative ack: acknowledged, dropped.
        alice311.publish("devices/bob/telemetry", b"forged", qos=1)
        alice311.publish("devices/bob/telemetry", b"forged", qos=2)
        # Her own topic goes through.
        assert alice.publish("devices/alice/telemetry", b"ok", qos=1).reason in (None, 0)
        p = spy.receive()
        assert (p.topic, p.payload) == ("devices/alice/telemetry", b"ok")
        spy.expect_nothing(0.5)
    assert metric(acl_broker, "sluice_acl_denied_total", operation="publish") == 5


def test_denied_subscriptions(acl_broker):
    with connect(acl_broker, "alice") as alice, connect(acl_broker, "alice", V311, "a311") as a311:
        ack = alice.subscribe([("#", 1), ("devices/alice/commands", 1), ("devices/bob/commands", 1)])
        assert ack.reasons == [0x87, 1, 0x87]
        assert a311.subscribe("#", qos=1).reasons == [0x80]
    assert metric(acl_broker, "sluice_acl_denied_total", operation="subscribe") == 3


def test_deliveries_retained_and_wills_obey_read_rules(acl_broker):
    with connect(acl_broker, "admin") as admin:
        admin.publish("devices/bob/telemetry", b"bob-retained", qos=1, retain=True)
        admin.publish("devices/carol/telemetry", b"carol-retained", qos=1, retain=True)
        with connect(acl_broker, "ops") as ops:
            assert ops.subscribe("devices/#", qos=1).reasons == [1]
            p = ops.receive()
            assert p.payload == b"carol-retained"
            ops.expect_nothing(0.5)  # bob's retained message is denied on delivery
            admin.publish("devices/bob/x", b"live-bob", qos=1)
            admin.publish("devices/dan/x", b"live-dan", qos=1)
            assert ops.receive().payload == b"live-dan"
            # A will on a topic the client may not write is refused at CONNECT...
            with Client(acl_broker.port, V5) as c:
                ack = c.connect("alice-w", expect_reason=None, username="alice", password="alice-pw",
                                will_topic="devices/bob/telemetry", will_payload=b"x")
                assert ack.reason == 0x87
            # ...one it may write is published, and reaches readers only.
            w = Client(acl_broker.port, V5)
            w.connect("alice-w2", username="alice", password="alice-pw",
                      will_topic="devices/alice/telemetry", will_payload=b"alice-gone")
            w.close()  # abnormal close: will due
            assert ops.receive().payload == b"alice-gone"
        admin.expect_nothing(0.2)


def test_sighup_reloads_without_dropping_connections(acl_broker):
    with connect(acl_broker, "alice") as alice:
        assert alice.publish("public/alice", b"x", qos=1).reason == 0x87
        with open(acl_broker.acl_path, "a") as f:
            f.write("pattern write public/%u\n")
        passwd("-b", acl_broker.pw_path, "zed", "zed-pw")
        acl_broker.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while metric(acl_broker, "sluice_auth_reloads_total", result="ok") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert alice.publish("public/alice", b"x", qos=1).reason in (None, 0)  # same connection
        assert login(acl_broker.port, V5, "zed-c", "zed", "zed-pw") == 0
        # A broken file keeps the previous rules.
        with open(acl_broker.acl_path, "a") as f:
            f.write("bogus line\n")
        acl_broker.proc.send_signal(signal.SIGHUP)
        while metric(acl_broker, "sluice_auth_reloads_total", result="failed") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert alice.publish("public/alice", b"y", qos=1).reason in (None, 0)
        alice.ping()


# -- HTTP API token -----------------------------------------------------------------------

def http_get(b, path, token=None):
    with open(os.path.join(b.data_dir, "http.port")) as f:
        port = int(f.read().strip())
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_api_token_guards_the_query_api_and_metrics(workdir):
    b = start(workdir, ['api_token = "t0ken-123"'])
    try:
        assert http_get(b, "/health")[0] == 200
        assert http_get(b, "/api/overview")[0] == 401
        assert http_get(b, "/api/overview", "wrong")[0] == 401
        assert http_get(b, "/api/overview", "t0ken-12")[0] == 401
        assert http_get(b, "/metrics")[0] == 401
        assert http_get(b, "/api/overview", "t0ken-123")[0] != 401
        status, text = http_get(b, "/metrics", "t0ken-123")
        assert status == 200
        assert "sluice_http_unauthorized_total 4" in text
        assert http_get(b, "/")[0] in (200, 404)  # the dashboard's page itself is public
        assert login(b.port, V5, "anyone") == 0  # MQTT unaffected (loopback, no password file)
    finally:
        stop(b)
