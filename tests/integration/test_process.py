# SPDX-License-Identifier: Apache-2.0
#
# The sluice program's process contract, which tools and these tests build on: the
# "mqtt listening on 127.0.0.1:PORT" line on stderr, DIR/mqtt.port, a clean exit 0 on
# SIGTERM even with busy clients connected, and persistent state surviving a crash
# (SIGKILL) as well as a clean restart (DESIGN.md promise 4). Sluice-only: mosquitto has
# a different command line and persists state only at shutdown or on a timer.

import os
import re
import time

import pytest

from broker import is_mosquitto
from mqtt_raw import (Client, V311, V5, PUBLISH, SESSION_EXPIRY_INTERVAL, gen_publish,
                      connected)

pytestmark = pytest.mark.skipif(is_mosquitto(), reason="Sluice's own process contract")


def test_listening_line_and_port_file(broker):
    with open(os.path.join(broker.data_dir, "mqtt.port")) as f:
        assert int(f.read().strip()) == broker.port
    with open(broker.log_path, errors="replace") as f:
        log = f.read()
    m = re.search(r"mqtt listening on 127\.0\.0\.1:(\d+)", log)
    assert m, log[-2000:]
    assert int(m.group(1)) == broker.port


def test_sigterm_with_busy_clients_exits_zero(broker, uid):
    clients = []
    for i in range(50):
        c = connected(broker.port, "%s-%d" % (uid, i), V5 if i % 2 else V311,
                      clean=False, properties={SESSION_EXPIRY_INTERVAL: 60} if i % 2 else None)
        c.subscribe("busy/" + uid, qos=2)
        clients.append(c)
    # Leave QoS 2 flows half done and unacknowledged deliveries in flight.
    for i, c in enumerate(clients[:10]):
        c.send(gen_publish("busy/" + uid, 2, b"x", mid=100 + i, proto_ver=c.proto_ver))
    time.sleep(0.3)
    start = time.monotonic()
    code = broker.stop()
    assert code == 0, broker.log_tail()
    assert time.monotonic() - start < 10
    for c in clients:
        c.close()


def test_state_survives_crash(broker, uid):
    topic = "crash/" + uid
    s = connected(broker.port, uid, V5, clean=True, properties={SESSION_EXPIRY_INTERVAL: 300})
    s.subscribe(topic, qos=1)
    s.disconnect()
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"acked-before-crash", qos=1)   # PUBACK received
        pub.publish("crashr/" + uid, b"retained", qos=1, retain=True)
    broker.kill()  # SIGKILL: no chance to save anything at shutdown
    broker.start()
    s = Client(broker.port, V5)
    assert s.connect(uid, clean=False, properties={SESSION_EXPIRY_INTERVAL: 300}
                     ).session_present is True
    assert s.receive().payload == b"acked-before-crash"
    s.subscribe("crashr/" + uid, qos=1)
    p = s.receive()
    assert p.payload == b"retained" and p.retain
    s.disconnect()
