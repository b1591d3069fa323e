# SPDX-License-Identifier: Apache-2.0
#
# Retained messages, wills (abnormal close, normal DISCONNECT, 5.0 DISCONNECT 0x04, Will
# Delay Interval), Message Expiry Interval and the pass-through of 5.0 application
# properties (spec sections 3.1.2.5, 3.3.1.3, 3.3.2.3, 4.2 and 3.14).

import socket
import struct
import time

import pytest

from mqtt_raw import (Client, V311, V5, MESSAGE_EXPIRY_INTERVAL, CONTENT_TYPE, RESPONSE_TOPIC,
                      CORRELATION_DATA, USER_PROPERTY, PAYLOAD_FORMAT_INDICATOR,
                      WILL_DELAY_INTERVAL, SESSION_EXPIRY_INTERVAL, RC_DISCONNECT_WITH_WILL,
                      Timeout, connected)

PROTOS = pytest.mark.parametrize("proto", [V311, V5])


def abort(c):
    """Closes a connection abnormally (TCP RST, no DISCONNECT)."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


@PROTOS
def test_retained_set_receive_clear(broker, uid, proto):
    topic = "ret/" + uid
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish(topic, b"v1", qos=1, retain=True)
        pub.publish(topic, b"v2", qos=1, retain=True)  # replaces v1
    s1 = connected(broker.port, uid + "-s1", proto)
    s1.subscribe(topic, qos=1)
    p = s1.receive()
    assert (p.payload, p.retain, p.qos) == (b"v2", True, 1)
    s1.expect_nothing(0.3)
    # A live subscriber sees a retained publish with retain=0 (3.1.1) or as published
    # depending on RAP (5.0, default 0).
    with connected(broker.port, uid + "-p2", proto) as pub:
        pub.publish(topic, b"", qos=1, retain=True)  # clears it
    cleared = s1.receive()
    assert cleared.payload == b"" and cleared.retain is False
    s2 = connected(broker.port, uid + "-s2", proto)
    s2.subscribe(topic, qos=1)
    s2.expect_nothing(0.5)


@PROTOS
def test_retained_wildcard_and_qos(broker, uid, proto):
    base = "retw/" + uid
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish(base + "/a", b"a", qos=0, retain=True)
        pub.publish(base + "/b", b"b", qos=2, retain=True)
        pub.publish(base + "/c/d", b"cd", qos=1, retain=True)
    s = connected(broker.port, uid + "-s", proto)
    s.subscribe(base + "/+", qos=1)
    got = {}
    for _ in range(2):
        p = s.receive()
        got[p.payload] = p.qos
        assert p.retain
    assert got == {b"a": 0, b"b": 1}  # min(message QoS, subscription QoS)
    s.expect_nothing(0.3)
    s.subscribe(base + "/#", qos=2)
    got = {}
    for _ in range(3):
        p = s.receive()
        got[p.payload] = p.qos
    assert got == {b"a": 0, b"b": 2, b"cd": 1}


def test_retained_message_keeps_properties(broker, uid):
    topic = "retp/" + uid
    props = {CONTENT_TYPE: "text/plain", USER_PROPERTY: [("a", "1")]}
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"x", qos=1, retain=True, properties=props)
    with connected(broker.port, uid + "-s", V5) as s:
        s.subscribe(topic, qos=1)
        p = s.receive()
        assert p.prop(CONTENT_TYPE) == "text/plain"
        assert p.prop(USER_PROPERTY) == [("a", "1")]


@PROTOS
def test_will_on_abnormal_close(broker, uid, proto):
    topic = "will/" + uid
    s = connected(broker.port, uid + "-s", proto)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, proto, will_topic=topic, will_payload=b"gone", will_qos=1)
    abort(c)
    p = s.receive()
    assert (p.topic, p.payload, p.qos, p.retain) == (topic, b"gone", 1, False)


@PROTOS
def test_will_on_eof_without_disconnect(broker, uid, proto):
    topic = "willeof/" + uid
    s = connected(broker.port, uid + "-s", proto)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, proto, will_topic=topic, will_payload=b"eof")
    c.close()  # FIN without DISCONNECT is still abnormal
    assert s.receive().payload == b"eof"


@PROTOS
def test_will_not_sent_on_normal_disconnect(broker, uid, proto):
    topic = "willn/" + uid
    s = connected(broker.port, uid + "-s", proto)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, proto, will_topic=topic, will_payload=b"no")
    c.disconnect()
    s.expect_nothing(1.0)


@PROTOS
def test_will_retained(broker, uid, proto):
    topic = "willr/" + uid
    c = connected(broker.port, uid, proto, will_topic=topic, will_payload=b"last",
                  will_qos=1, will_retain=True)
    abort(c)
    time.sleep(0.5)
    with connected(broker.port, uid + "-s", proto) as s:
        s.subscribe(topic, qos=1)
        p = s.receive()
        assert p.payload == b"last" and p.retain is True


def test_will_on_keepalive_timeout(broker, uid):
    topic = "willka/" + uid
    s = connected(broker.port, uid + "-s", V311)
    s.subscribe(topic, qos=0)
    c = connected(broker.port, uid, V311, keepalive=1, will_topic=topic, will_payload=b"ka")
    p = s.receive(timeout=15)
    assert p.payload == b"ka"
    c.close()


def test_5_disconnect_with_will(broker, uid):
    topic = "will4/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, V5, will_topic=topic, will_payload=b"asked")
    c.disconnect(RC_DISCONNECT_WITH_WILL)
    assert s.receive().payload == b"asked"


def test_5_will_properties(broker, uid):
    topic = "willp/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic, qos=1)
    wp = {CONTENT_TYPE: "application/json", RESPONSE_TOPIC: "resp/" + uid,
          CORRELATION_DATA: b"\x01\x02", USER_PROPERTY: [("why", "test")],
          PAYLOAD_FORMAT_INDICATOR: 1}
    c = connected(broker.port, uid, V5, will_topic=topic, will_payload=b"{}", will_properties=wp)
    abort(c)
    p = s.receive()
    for k in (CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY,
              PAYLOAD_FORMAT_INDICATOR):
        assert p.prop(k) == wp[k], k


def test_5_will_delay(broker, uid):
    topic = "willd/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, V5, will_topic=topic, will_payload=b"late",
                  will_properties={WILL_DELAY_INTERVAL: 2},
                  properties={SESSION_EXPIRY_INTERVAL: 60})
    t0 = time.monotonic()
    abort(c)
    p = s.receive(timeout=8)
    elapsed = time.monotonic() - t0
    assert p.payload == b"late"
    assert 1.5 <= elapsed <= 5.0, elapsed


def test_5_will_delay_cancelled_by_reconnect(broker, uid):
    topic = "willdc/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, V5, will_topic=topic, will_payload=b"never",
                  will_properties={WILL_DELAY_INTERVAL: 2},
                  properties={SESSION_EXPIRY_INTERVAL: 60})
    abort(c)
    time.sleep(0.5)
    c2 = connected(broker.port, uid, V5, clean=False, properties={SESSION_EXPIRY_INTERVAL: 60})
    s.expect_nothing(3.0)
    c2.disconnect()


def test_5_will_delay_capped_by_session_expiry(broker, uid):
    # The will is published when the session ends, if that is before the will delay.
    topic = "willse/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic, qos=1)
    c = connected(broker.port, uid, V5, will_topic=topic, will_payload=b"end",
                  will_properties={WILL_DELAY_INTERVAL: 30},
                  properties={SESSION_EXPIRY_INTERVAL: 1})
    abort(c)
    assert s.receive(timeout=6).payload == b"end"


def test_5_message_expiry_retained(broker, uid):
    topic = "exp/" + uid
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"short", qos=1, retain=True,
                    properties={MESSAGE_EXPIRY_INTERVAL: 1})
        pub.publish(topic + "/long", b"long", qos=1, retain=True,
                    properties={MESSAGE_EXPIRY_INTERVAL: 100})
    time.sleep(2.2)
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic + "/#", qos=1)
    p = s.receive()
    assert p.payload == b"long"
    # The forwarded interval is the remaining lifetime.
    assert 90 <= p.prop(MESSAGE_EXPIRY_INTERVAL) <= 98, p
    s.expect_nothing(0.5)


def test_5_message_expiry_while_queued(broker, uid):
    topic = "expq/" + uid
    s = connected(broker.port, uid, V5, properties={SESSION_EXPIRY_INTERVAL: 60})
    s.subscribe(topic, qos=1)
    s.disconnect()
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"dies", qos=1, properties={MESSAGE_EXPIRY_INTERVAL: 1})
        pub.publish(topic, b"lives", qos=1, properties={MESSAGE_EXPIRY_INTERVAL: 60})
        pub.publish(topic, b"forever", qos=1)
    time.sleep(2.2)
    s = connected(broker.port, uid, V5, clean=False, properties={SESSION_EXPIRY_INTERVAL: 60})
    a = s.receive()
    assert a.payload == b"lives" and 50 <= a.prop(MESSAGE_EXPIRY_INTERVAL) <= 58
    b = s.receive()
    assert b.payload == b"forever" and MESSAGE_EXPIRY_INTERVAL not in b.properties
    s.expect_nothing(0.5)


def test_5_application_properties_pass_through(broker, uid):
    topic = "props/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic, qos=2)
    props = [(PAYLOAD_FORMAT_INDICATOR, 1), (CONTENT_TYPE, "application/json"),
             (RESPONSE_TOPIC, "reply/" + uid), (CORRELATION_DATA, b"\x00\xffcorr"),
             (USER_PROPERTY, ("k1", "v1")), (USER_PROPERTY, ("k1", "v2")),
             (USER_PROPERTY, ("k2", "ünïcode"))]
    for qos in (0, 1, 2):
        with connected(broker.port, "%s-p%d" % (uid, qos), V5) as pub:
            pub.publish(topic, b'{"a":1}', qos=qos, properties=props)
        p = s.receive()
        assert p.prop(PAYLOAD_FORMAT_INDICATOR) == 1
        assert p.prop(CONTENT_TYPE) == "application/json"
        assert p.prop(RESPONSE_TOPIC) == "reply/" + uid
        assert p.prop(CORRELATION_DATA) == b"\x00\xffcorr"
        # Order of user properties must be kept, duplicates included.
        assert p.prop(USER_PROPERTY) == [("k1", "v1"), ("k1", "v2"), ("k2", "ünïcode")]


def test_retained_dollar_topics_not_sent_to_hash(broker, uid):
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish("$test/" + uid, b"dollar", qos=1, retain=True)
        pub.publish("rd/" + uid, b"normal", qos=1, retain=True)
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe("#", qos=1)
    got = []
    try:
        while True:
            got.append(s.receive(timeout=0.7))
    except Timeout:
        pass
    assert [p.payload for p in got] == [b"normal"]
    s.subscribe("$test/#", qos=1)
    assert s.receive().payload == b"dollar"
