# SPDX-License-Identifier: Apache-2.0
#
# Issue 10, "No one client may stall the others": a client that stops reading, or sends
# packets that never finish, costs only its own bounded resources (docs/delivery.md,
# docs/operations.md). Each test here failed before the fix it guards.

import json
import os
import time
import urllib.request

import pytest

from mqtt_raw import (Client, V5, PUBLISH, DISCONNECT, SESSION_EXPIRY_INTERVAL, connected)
from broker import Broker, is_mosquitto
from fixtures import _finish

pytestmark = pytest.mark.skipif(is_mosquitto(), reason="Sluice's slow-consumer policy and metrics")

RC_QUOTA_EXCEEDED = 0x97

# Small bounds so that a few hundred publishes cross them (each publish to a persistent
# subscriber waits for the state journal's fsync, and ingest ones for the WAL's).
WINDOW = 20
SUBSCRIBER_QUEUE = 100
SESSION_QUOTA = 1000
SMALL_BOUNDS = """
[mqtt]
max_inflight_messages = %d
subscriber_queue_messages = %d
max_queued_messages = %d
""" % (WINDOW, SUBSCRIBER_QUEUE, SESSION_QUOTA)


@pytest.fixture
def small(request):
    """A broker whose subscriber queue and session quota are small."""
    b = Broker(config_text=SMALL_BOUNDS)
    try:
        b.start()
    except Exception:
        b.cleanup()
        raise
    yield b
    _finish(b)


def metric(broker, name, labels=""):
    with open(os.path.join(broker.data_dir, "http.port")) as f:
        port = int(f.read().strip())
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("sluice_" + name + labels + " ") or (
                not labels and line.startswith("sluice_" + name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_slow_qos1_subscriber_does_not_stall_publishers(small, uid):
    """A persistent QoS 1 subscriber to `#` that never reads: other clients' QoS 1
    publishes (plain and ingest topics) keep being acknowledged at normal speed; the slow
    one is disconnected with 0x97 and, on reconnect, gets every message its session kept."""
    broker = small
    persistent = {"clean": False, "properties": {SESSION_EXPIRY_INTERVAL: 300}}
    slow = connected(broker.port, uid + "-slow", V5, **persistent)
    slow.subscribe("#", qos=1)  # and never reads again until the end

    n = 600  # well past the inflight window plus the subscriber queue, within the session quota
    payload = b"x" * 1024
    sent = []
    worst = 0.0
    start = time.monotonic()
    with connected(broker.port, uid + "-plain", V5) as plain, \
            connected(broker.port, uid + "-device", V5) as device:
        for i in range(n):
            t0 = time.monotonic()
            if i % 2:
                body = json.dumps({"temperature": i}).encode()
                device.publish("devices/%s/telemetry" % uid, body, qos=1)
                sent.append(body)
            else:
                plain.publish("plain/%s" % uid, payload + b"%d" % i, qos=1)
                sent.append(payload + b"%d" % i)
            worst = max(worst, time.monotonic() - t0)
    elapsed = time.monotonic() - start
    # Before the fix the publishers' sockets stopped being read once the subscriber's
    # queue passed 1/8 of its bound: the PUBACK never came (a 5 s Timeout above).
    assert worst < 2.0, "one publish waited %.2fs for its acknowledgement" % worst
    assert elapsed < 30.0

    # The slow subscriber was told why (after the output that had already started).
    got = slow.expect_closed(timeout=10)
    tail = [p for p in got if p.type != PUBLISH]
    assert tail and tail[-1].type == DISCONNECT and tail[-1].reason == RC_QUOTA_EXCEEDED, tail
    assert metric(broker, "mqtt_slow_subscriber_disconnects_total") >= 1

    # Its persistent session kept the QoS 1 backlog (none of it was acknowledged): every
    # message arrives, in order, after reconnecting.
    again = Client(broker.port, V5)
    ack = again.connect(uid + "-slow", **persistent)
    assert ack.session_present
    received = [again.receive(timeout=10).payload for _ in range(n)]
    assert received == sent
    again.expect_nothing(0.3)
    again.disconnect()


def test_slow_clean_subscriber_is_disconnected_and_forgotten(small, uid):
    """A non-persistent QoS 1 subscriber that stops reading is disconnected (0x97) and its
    session ends with it; publishers are not slowed down."""
    broker = small
    slow = connected(broker.port, uid + "-slow", V5)
    slow.subscribe("clean/%s/#" % uid, qos=1)
    worst = 0.0
    with connected(broker.port, uid + "-p", V5) as pub:
        for i in range(600):
            t0 = time.monotonic()
            pub.publish("clean/%s/t" % uid, b"y" * 512, qos=1)
            worst = max(worst, time.monotonic() - t0)
    assert worst < 2.0
    got = [p for p in slow.expect_closed(timeout=10) if p.type != PUBLISH]
    assert got and got[-1].type == DISCONNECT and got[-1].reason == RC_QUOTA_EXCEEDED, got
    c = Client(broker.port, V5)
    assert not c.connect(uid + "-slow", clean=False).session_present
    c.expect_nothing(0.3)
    c.disconnect()


def test_slow_qos0_subscriber_drops_and_counts(broker, uid):
    """QoS 0 to a subscriber that stops reading is dropped and counted; it is not
    disconnected for it, and publishers are not slowed down."""
    slow = connected(broker.port, uid + "-slow", V5)
    slow.subscribe("q0/%s" % uid, qos=0)
    before = metric(broker, "mqtt_messages_dropped_total", '{reason="qos0_slow_subscriber"}')
    start = time.monotonic()
    with connected(broker.port, uid + "-p", V5) as pub:
        for _ in range(400):
            pub.publish("q0/%s" % uid, b"z" * 65536, qos=1)  # 26 MB, past the 16 MB output bound
    assert time.monotonic() - start < 20.0
    deadline = time.monotonic() + 5
    while metric(broker, "mqtt_messages_dropped_total", '{reason="qos0_slow_subscriber"}') <= before:
        assert time.monotonic() < deadline, "no QoS 0 drop counted"
        time.sleep(0.1)
    slow.ping()  # still connected: QoS 0 costs it messages, not the connection
    slow.close()
