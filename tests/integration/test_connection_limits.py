# SPDX-License-Identifier: Apache-2.0
#
# Connection limits (issue 12, docs/operations.md): in all, per source address and per
# second per address. Past one, a new socket is closed as soon as it is accepted (before a
# byte is read), counted by limit; connections already up are not touched, and a slot
# given back is usable again.

import os
import socket
import time
import urllib.request

import pytest

import broker as broker_mod
from mqtt_raw import V5, connected

pytestmark = pytest.mark.skipif(broker_mod.is_mosquitto(), reason="Sluice's own limits")


def start(lines):
    b = broker_mod.Broker(config_text="[mqtt]\n" + "\n".join(lines) + "\n")
    b.start()
    return b


def stop(b):
    try:
        assert b.alive(), b.log_tail()
        assert b.stop() == 0, b.log_tail()
    finally:
        b.cleanup()


def refused_count(b, limit):
    port = int(open(os.path.join(b.data_dir, "http.port")).read())
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("sluice_mqtt_connections_refused_total{") and 'limit="%s"' % limit in line:
            return float(line.split()[-1])
    raise AssertionError("no sluice_mqtt_connections_refused_total{limit=%s}" % limit)


def closed_now(s, wait=1.0):
    """True when the broker has closed socket `s` (an admitted one stays open, silent)."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def closed_at_once(port):
    """True when the broker closes a new socket without waiting for anything."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return closed_now(s)


def test_per_address_limit(uid):
    # The start-up probe of the fixture takes a slot only while it is open.
    b = start(["max_connections_per_address = 3"])
    try:
        clients = [connected(b.port, "%s-%d" % (uid, i), V5).__enter__() for i in range(3)]
        assert closed_at_once(b.port)
        assert refused_count(b, "max_connections_per_address") >= 1
        for c in clients:
            c.ping()  # those admitted are untouched
        clients.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the slot comes back once the broker has seen the close
            try:
                with connected(b.port, uid + "-again", V5) as c:
                    c.ping()
                break
            except Exception:  # noqa: BLE001
                assert time.monotonic() < deadline, "the freed slot was not given back"
                time.sleep(0.1)
        for c in clients:
            c.close()
    finally:
        stop(b)


def test_total_limit(uid):
    b = start(["max_connections = 2"])
    try:
        with connected(b.port, uid + "-a", V5), connected(b.port, uid + "-b", V5) as second:
            assert closed_at_once(b.port)
            second.ping()
        assert refused_count(b, "max_connections") >= 1
    finally:
        stop(b)


def test_rate_limit_per_address(uid):
    b = start(["max_connection_rate_per_address = 5"])
    try:
        time.sleep(1.1)  # the start-up probe's token comes back
        socks = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(20)]
        refused = sum(1 for s in socks if closed_now(s, 0.3))
        for s in socks:
            s.close()
        # A burst of 5 (and a few more refilled while the 20 were opening on a busy box), then refused.
        assert 12 <= refused <= 15, refused
        assert refused_count(b, "max_connection_rate_per_address") == refused
        time.sleep(1.1)
        with connected(b.port, uid, V5) as c:
            c.ping()
    finally:
        stop(b)


def test_publish_rate_throttles_one_client_without_loss(uid):
    """mqtt.max_publish_rate: a client past its rate is slowed (not read), nothing is lost,
    and another client's publishes go through meanwhile."""
    from mqtt_raw import PUBACK, gen_publish
    b = start(["max_publish_rate = 20"])
    try:
        topic = "rate/%s" % uid
        with connected(b.port, uid + "-sub", V5) as sub, connected(b.port, uid + "-fast", V5) as fast, \
                connected(b.port, uid + "-other", V5) as other:
            sub.subscribe(topic + "/#", qos=1)
            started = time.monotonic()
            # 80 QoS 1 PUBLISHes at once: 20 go at once (the burst), the rest at 20/s.
            fast.send(b"".join(gen_publish(topic + "/fast", 1, b"%d" % i, mid=i + 1) for i in range(80)))
            time.sleep(0.5)
            other_started = time.monotonic()
            for i in range(5):
                other.publish(topic + "/other", b"o%d" % i, qos=1)
            other_took = time.monotonic() - other_started
            acks = [fast.expect(PUBACK, timeout=30).mid for _ in range(80)]
            took = time.monotonic() - started
            assert sorted(acks) == list(range(1, 81))
            assert took >= 2.5, "80 publishes at 20/s with a burst of 20 took only %.1f s" % took
            assert other_took < took, "the other client was held too (%.1f s)" % other_took
            got = [sub.receive(timeout=30).payload for _ in range(85)]
            fast_payloads = [p for p in got if not p.startswith(b"o")]
            assert fast_payloads == [b"%d" % i for i in range(80)], "lost or reordered"
        port = int(open(os.path.join(b.data_dir, "http.port")).read())
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
        held = [l for l in text.splitlines() if l.startswith("sluice_mqtt_publish_rate_limited_total ")]
        assert held and float(held[0].split()[-1]) >= 1, held
    finally:
        stop(b)
