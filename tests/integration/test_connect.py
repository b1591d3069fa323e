# SPDX-License-Identifier: Apache-2.0
#
# CONNECT/CONNACK, client identifiers, sessions present/absent, session takeover,
# keep-alive and PINGREQ, for MQTT 3.1.1 and 5.0 (spec sections 3.1, 3.2, 3.12, 4.1).

import time

import pytest

from mqtt_raw import (Client, V311, V5, CONNACK, DISCONNECT, PINGRESP, ConnectionClosed,
                      ASSIGNED_CLIENT_IDENTIFIER, MAXIMUM_QOS, RETAIN_AVAILABLE,
                      TOPIC_ALIAS_MAXIMUM, RECEIVE_MAXIMUM, SESSION_EXPIRY_INTERVAL,
                      WILL_DELAY_INTERVAL,
                      RC_SESSION_TAKEN_OVER, RC_UNSUPPORTED_PROTOCOL_VERSION,
                      RC_KEEP_ALIVE_TIMEOUT, CONNACK_REFUSED_IDENTIFIER_REJECTED,
                      CONNACK_REFUSED_PROTOCOL_VERSION, gen_connect, connected)
from fixtures import spec_strict


def test_connect_311_clean(broker, uid):
    with Client(broker.port, V311) as c:
        ack = c.connect(uid, clean=True)
        assert ack.reason == 0
        assert ack.session_present is False
        assert ack.size == 4  # fixed: 20 02 00 00
        c.ping()


def test_connect_5_connack_properties(broker, uid):
    with Client(broker.port, V5) as c:
        ack = c.connect(uid, clean=True)
        assert ack.reason == 0
        assert ack.session_present is False
        # Absent Maximum QoS means 2; absent Retain Available means 1.
        assert ack.prop(MAXIMUM_QOS, 2) == 2
        assert ack.prop(RETAIN_AVAILABLE, 1) == 1
        assert ack.prop(TOPIC_ALIAS_MAXIMUM, 0) > 0
        assert 0 < ack.prop(RECEIVE_MAXIMUM, 65535) <= 65535


@pytest.mark.parametrize("proto", [V311, V5])
def test_session_present(broker, uid, proto):
    props = {SESSION_EXPIRY_INTERVAL: 60} if proto == V5 else None
    c = connected(broker.port, uid, proto, clean=False, properties=props)
    c.subscribe("sp/" + uid, qos=1)
    c.disconnect()
    with Client(broker.port, proto) as c2:
        ack = c2.connect(uid, clean=False, properties=props)
        assert ack.session_present is True
        c2.disconnect()
    # Clean session / clean start discards it.
    with Client(broker.port, proto) as c3:
        ack = c3.connect(uid, clean=True)
        assert ack.session_present is False


def test_5_session_expiry_zero_means_no_session(broker, uid):
    c = connected(broker.port, uid, V5, clean=False)  # no Session Expiry Interval: 0
    c.subscribe("se0/" + uid, qos=1)
    c.disconnect()
    with Client(broker.port, V5) as c2:
        assert c2.connect(uid, clean=False).session_present is False


def test_5_session_expiry(broker, uid):
    c = connected(broker.port, uid, V5, clean=True, properties={SESSION_EXPIRY_INTERVAL: 1})
    c.subscribe("se/" + uid, qos=1)
    c.disconnect()
    time.sleep(2.5)
    with Client(broker.port, V5) as c2:
        ack = c2.connect(uid, clean=False, properties={SESSION_EXPIRY_INTERVAL: 1})
        assert ack.session_present is False


def test_5_session_expiry_set_on_disconnect(broker, uid):
    # Session Expiry 0 at CONNECT may not be raised at DISCONNECT (protocol error), but a
    # non-zero one may be changed: 60 at connect, 0 at disconnect -> session ends.
    c = connected(broker.port, uid, V5, clean=True, properties={SESSION_EXPIRY_INTERVAL: 60})
    c.subscribe("sed/" + uid, qos=1)
    c.disconnect(0, {SESSION_EXPIRY_INTERVAL: 0})
    time.sleep(0.3)
    with Client(broker.port, V5) as c2:
        assert c2.connect(uid, clean=False, properties={SESSION_EXPIRY_INTERVAL: 60}
                          ).session_present is False


def test_5_assigned_client_id(broker):
    with Client(broker.port, V5) as c:
        ack = c.connect("", clean=True)
        assigned = ack.prop(ASSIGNED_CLIENT_IDENTIFIER)
        assert assigned, "empty client id must be assigned one: %r" % ack
        c.ping()
    with Client(broker.port, V5) as c2:
        ack2 = c2.connect("", clean=True)
        assert ack2.prop(ASSIGNED_CLIENT_IDENTIFIER) != assigned


def test_311_empty_client_id_clean_session_accepted(broker):
    with Client(broker.port, V311) as c:
        ack = c.connect("", clean=True)
        assert ack.reason == 0 and ack.session_present is False
        c.ping()


def test_311_empty_client_id_persistent_rejected(broker):
    with Client(broker.port, V311) as c:
        ack = c.connect("", clean=False, expect_reason=None)
        assert ack.reason == CONNACK_REFUSED_IDENTIFIER_REJECTED
        c.expect_closed()


def test_unsupported_protocol_level(broker, uid):
    # MQTT 3.1.1 says return code 1 and close; 5.0 allows CONNACK 0x84 and close.
    with Client(broker.port, V311) as c:
        c.send(gen_connect(uid, proto_ver=6))
        got = c.expect_closed()
        assert len(got) <= 1
        if got:
            assert got[0].type == CONNACK
            assert got[0].reason in (CONNACK_REFUSED_PROTOCOL_VERSION,
                                     RC_UNSUPPORTED_PROTOCOL_VERSION)
    with Client(broker.port, V5) as ok:  # still serving
        ok.connect(uid)


def test_bad_protocol_name_closed(broker, uid):
    with Client(broker.port, V311) as c:
        c.send(gen_connect(uid, proto_ver=4, proto_name="MQTX"))
        got = c.expect_closed()
        assert all(p.type == CONNACK and p.reason != 0 for p in got)


@pytest.mark.parametrize("proto", [V311, V5])
def test_session_takeover_closes_old(broker, uid, proto):
    old = connected(broker.port, uid, proto)
    new = connected(broker.port, uid, proto)
    got = old.expect_closed()
    # 3.1.1: just closed. 5.0: optionally a DISCONNECT, which must then say 0x8E.
    assert all(p.type == DISCONNECT and p.reason == RC_SESSION_TAKEN_OVER for p in got), got
    if proto == V311:
        assert got == []
    new.ping()
    new.close()


@spec_strict("closes the old 5.0 connection without DISCONNECT 0x8E (spec 3.1.4-3)")
def test_5_session_takeover_sends_disconnect_8e(broker, uid):
    old = connected(broker.port, uid, V5)
    new = connected(broker.port, uid, V5)
    got = old.expect_closed()
    assert [p.type for p in got] == [DISCONNECT], got
    assert got[0].reason == RC_SESSION_TAKEN_OVER
    new.close()


def test_session_takeover_keeps_session(broker, uid):
    old = connected(broker.port, uid, V5, clean=True, properties={SESSION_EXPIRY_INTERVAL: 60})
    old.subscribe("tk/" + uid, qos=1)
    new = Client(broker.port, V5)
    ack = new.connect(uid, clean=False, properties={SESSION_EXPIRY_INTERVAL: 60})
    assert ack.session_present is True
    old.expect_closed()
    with connected(broker.port, uid + "-pub", V5) as pub:
        pub.publish("tk/" + uid, b"after", qos=1)
    assert new.receive().payload == b"after"
    new.close()


@pytest.mark.parametrize("proto", [V311, V5])
def test_keepalive_timeout_closes(broker, uid, proto):
    c = connected(broker.port, uid, proto, keepalive=1)
    start = time.monotonic()
    got = c.expect_closed(timeout=15)
    elapsed = time.monotonic() - start
    assert elapsed >= 1.0, elapsed  # never before the keep alive itself
    for p in got:
        assert p.type == DISCONNECT and p.reason == RC_KEEP_ALIVE_TIMEOUT


@spec_strict("checks keep-alive only every few seconds, closing at ~6s for keep alive 1s "
             "(spec 3.1.2-22 requires 1.5 x keep alive)")
@pytest.mark.parametrize("proto", [V311, V5])
def test_keepalive_timeout_within_one_and_a_half(broker, uid, proto):
    c = connected(broker.port, uid, proto, keepalive=2)
    time.sleep(1.0)
    c.ping()  # the timer restarts at every control packet
    start = time.monotonic()
    got = c.expect_closed(timeout=8)
    elapsed = time.monotonic() - start
    assert 2.0 <= elapsed <= 3.0 + 1.25, elapsed  # 1.5 x 2s, plus scheduling slack
    for p in got:
        assert p.type == DISCONNECT and p.reason == RC_KEEP_ALIVE_TIMEOUT


@pytest.mark.parametrize("proto", [V311, V5])
def test_pingreq_keeps_alive(broker, uid, proto):
    c = connected(broker.port, uid, proto, keepalive=1)
    for _ in range(5):
        time.sleep(0.6)
        assert c.ping().type == PINGRESP
    c.disconnect()


def test_keepalive_zero_never_times_out(broker, uid):
    with connected(broker.port, uid, V311, keepalive=0) as c:
        c.expect_nothing(2.0)
        c.ping()


def test_normal_disconnect_closes(broker, uid):
    c = connected(broker.port, uid, V5)
    c.send(b"\xe0\x00")
    c.sock.settimeout(3)
    assert c.sock.recv(10) == b""
    c.close()


# A session that ends with its connection (3.1.1 clean session, 5.0 session expiry 0) ends
# when another connection takes it over: session present 0 and no subscription carries over
# (MQTT-3.1.2-6, MQTT-3.2.2-2/3).
@pytest.mark.parametrize("proto", [V311, V5])
def test_takeover_of_ending_session_starts_fresh(broker, uid, proto):
    old = connected(broker.port, uid, proto, clean=True)
    old.subscribe("tko/" + uid, qos=1)
    new = Client(broker.port, proto)
    kw = {"properties": {SESSION_EXPIRY_INTERVAL: 60}} if proto == V5 else {}
    ack = new.connect(uid, clean=False, **kw)
    assert ack.session_present is False
    old.expect_closed()
    with connected(broker.port, uid + "-pub", proto) as pub:
        pub.publish("tko/" + uid, b"old subscription", qos=1)
    new.expect_nothing(wait=0.5)
    new.close()


@spec_strict("keeps the will of a taken-over session with expiry 0 waiting for its delay (MQTT-3.1.2-6)")
def test_5_takeover_publishes_will_of_ending_session_despite_delay(broker, uid):
    # Session expiry 0: the session ends at takeover, so its will is due whatever its delay.
    with connected(broker.port, uid + "-w", V5) as watcher:
        watcher.subscribe("will/" + uid, qos=1)
        old = Client(broker.port, V5)
        old.connect(uid, clean=True, will_topic="will/" + uid, will_payload=b"gone",
                    will_properties={WILL_DELAY_INTERVAL: 30})
        new = connected(broker.port, uid, V5, clean=False)
        old.expect_closed()
        assert watcher.receive(timeout=5).payload == b"gone"
        new.close()
