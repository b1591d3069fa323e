# SPDX-License-Identifier: Apache-2.0
#
# Message Expiry Interval (MQTT 5 §3.3.2.3.3): the interval forwarded to a subscriber is the
# received one minus the time the message waited, never more (MQTT-3.3.2-6), whichever event
# loops the publisher and the subscriber are on. It was once computed from one loop's cached
# clock against another's, and forwarded 11 for 10.

import time

import pytest

import broker as broker_mod
from mqtt_raw import MESSAGE_EXPIRY_INTERVAL, V5, connected


@pytest.fixture
def four_loops():
    b = broker_mod.Broker(config_text="[server]\nthreads = 4\n") if not broker_mod.is_mosquitto() \
        else broker_mod.Broker()
    b.start()
    yield b
    try:
        assert b.alive(), "broker died during the test:\n" + b.log_tail()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_forwarded_expiry_never_exceeds_received(four_loops, uid):
    subs = [connected(four_loops.port, "%s-s%d" % (uid, i), V5) for i in range(4)]
    for s in subs:
        s.subscribe("exp/" + uid, qos=1)
    pubs = [connected(four_loops.port, "%s-p%d" % (uid, i), V5) for i in range(4)]
    for i in range(100):
        pubs[i % 4].publish("exp/" + uid, b"%d" % i, qos=1, properties={MESSAGE_EXPIRY_INTERVAL: 10})
        for s in subs:
            m = s.receive(timeout=5)
            assert m.properties[MESSAGE_EXPIRY_INTERVAL] <= 10, m
    for c in subs + pubs:
        c.close()


def test_queued_message_expiry_counts_time_waited(broker, uid):
    s = connected(broker.port, uid, V5, clean=True, properties={0x11: 60})
    s.subscribe("expq/" + uid, qos=1)
    s.close()
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish("expq/" + uid, b"waits", qos=1, properties={MESSAGE_EXPIRY_INTERVAL: 10})
    time.sleep(2.2)
    s = connected(broker.port, uid, V5, clean=False, properties={0x11: 60})
    m = s.receive(timeout=5)
    assert m.payload == b"waits"
    assert m.properties[MESSAGE_EXPIRY_INTERVAL] <= 8, m
    s.close()
