# SPDX-License-Identifier: Apache-2.0
#
# Bad input gets a clear answer and harms nothing (DESIGN.md promise 5; MQTT 5.0 section
# 4.13, 3.1.1 section 4.8). Every case sends one malformed or forbidden packet and checks
# that this connection, and only this connection, is closed: in 5.0 after a DISCONNECT (or
# for CONNECT a CONNACK) carrying the reason code the spec names, in 3.1.1 silently. A
# witness client connected before the bad one must keep working, and a new client must
# still be able to connect.
#
# MQTT 5.0 says the server SHOULD send the DISCONNECT; mosquitto sometimes just closes, so
# with BROKER=mosquitto a missing DISCONNECT is accepted (a wrong reason code never is).
# Sluice promises the clear answer, so against Sluice the DISCONNECT is required.

import socket
import struct

import pytest

from mqtt_raw import (Client, ConnectionClosed, V311, V5, CONNACK, DISCONNECT, PUBLISH,
                      SESSION_EXPIRY_INTERVAL,
                      TOPIC_ALIAS, RC_MALFORMED_PACKET as MAL, RC_PROTOCOL_ERROR as PROTO,
                      RC_TOPIC_NAME_INVALID, RC_TOPIC_FILTER_INVALID, RC_CLIENT_ID_NOT_VALID,
                      RC_UNSUPPORTED_PROTOCOL_VERSION, gen_connect, gen_publish, gen_subscribe,
                      gen_unsubscribe, gen_pubrel, gen_disconnect, encode_string, encode_varint,
                      encode_properties, fixed_header, sub_options, connected)
from broker import is_mosquitto
from fixtures import spec_strict


def publish_raw(topic_bytes, qos=0, payload=b"x", mid=1, proto=V5, flags=None, props=b"\x00"):
    body = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if qos:
        body += struct.pack("!H", mid)
    if proto == V5:
        body += props
    body += payload
    return fixed_header(PUBLISH, (qos << 1) if flags is None else flags, body)


def connect_raw(proto, client_id=b"bad", flags=0x02, props=b"\x00", header_flags=0,
                extra=b""):
    body = encode_string("MQTT") + bytes([proto, flags]) + struct.pack("!H", 60)
    if proto == V5:
        body += props
    body += struct.pack("!H", len(client_id)) + client_id + extra
    return fixed_header(1, header_flags, body)


# Cases after a successful CONNECT: name -> (packet builder(proto, uid), 5.0 reason codes).
AFTER_CONNECT = {
    "second_connect": (lambda v, u: gen_connect(u + "-2", proto_ver=v), (PROTO,)),
    "publish_qos3": (lambda v, u: publish_raw(b"t/" + u.encode(), flags=0x06, proto=v),
                     (MAL,)),
    "publish_qos0_dup": (lambda v, u: publish_raw(b"t/" + u.encode(), flags=0x08, proto=v),
                         (MAL, PROTO)),
    "publish_wildcard_plus": (lambda v, u: publish_raw(b"t/+/x", proto=v),
                              (RC_TOPIC_NAME_INVALID, MAL, PROTO)),
    "publish_wildcard_hash": (lambda v, u: publish_raw(b"t/#", qos=1, proto=v),
                              (RC_TOPIC_NAME_INVALID, MAL, PROTO)),
    "publish_invalid_utf8": (lambda v, u: publish_raw(b"t/\xc3\x28", proto=v),
                             (MAL, RC_TOPIC_NAME_INVALID)),
    "publish_utf8_nul": (lambda v, u: publish_raw(b"t/a\x00b", proto=v),
                         (MAL, RC_TOPIC_NAME_INVALID)),
    "publish_utf8_surrogate": (lambda v, u: publish_raw(b"t/\xed\xa0\x80", proto=v),
                               (MAL, RC_TOPIC_NAME_INVALID)),
    "publish_empty_topic_no_alias": (lambda v, u: publish_raw(b"", qos=1, proto=v),
                                     (PROTO, MAL, RC_TOPIC_NAME_INVALID)),
    "publish_packet_id_zero": (lambda v, u: publish_raw(b"t/" + u.encode(), qos=1, mid=0,
                                                        proto=v), (MAL, PROTO)),
    "publish_topic_length_overruns": (
        lambda v, u: fixed_header(PUBLISH, 0, struct.pack("!H", 200) + b"t/x"), (MAL,)),
    "subscribe_flags_zero": (lambda v, u: gen_subscribe(1, "a/b", v, flags=0x00), (MAL,)),
    "subscribe_packet_id_zero": (lambda v, u: gen_subscribe(0, "a/b", v), (MAL, PROTO)),
    "subscribe_no_filters": (lambda v, u: gen_subscribe(1, [], v), (PROTO, MAL)),
    "subscribe_qos3": (lambda v, u: gen_subscribe(1, [("a/b", 3)], v), (MAL, PROTO)),
    "subscribe_reserved_option_bits": (lambda v, u: gen_subscribe(1, [("a/b", 0xC1)], v),
                                       (MAL, PROTO)),
    "subscribe_invalid_utf8_filter": (
        lambda v, u: fixed_header(8, 2, b"\x00\x01" + (b"\x00" if v == V5 else b"") +
                                  b"\x00\x02\xc3\x28\x00"), (MAL, RC_TOPIC_FILTER_INVALID)),
    "unsubscribe_flags_zero": (lambda v, u: fixed_header(10, 0, gen_unsubscribe(1, "a", v)[2:]),
                               (MAL,)),
    "unsubscribe_no_filters": (lambda v, u: gen_unsubscribe(1, [], v), (PROTO, MAL)),
    "pingreq_with_body": (lambda v, u: b"\xc0\x01\x00", (MAL,)),
    "pubrel_flags_zero": (lambda v, u: fixed_header(6, 0, b"\x00\x01"), (MAL,)),
    "reserved_type_0": (lambda v, u: b"\x00\x00", (MAL, PROTO)),
    "remaining_length_five_bytes": (lambda v, u: b"\x30\xff\xff\xff\xff\x01", (MAL,)),
    "disconnect_flags": (lambda v, u: b"\xe1\x00", (MAL,)),
}

# 5.0-only cases.
AFTER_CONNECT_V5 = {
    "publish_unknown_property": (
        lambda u: publish_raw(b"t/" + u.encode(), props=b"\x02\x7f\x00"), (MAL,)),
    "publish_property_not_allowed": (
        lambda u: publish_raw(b"t/" + u.encode(), props=encode_properties(
            {SESSION_EXPIRY_INTERVAL: 5})), (MAL, PROTO)),
    "publish_duplicate_property": (
        lambda u: publish_raw(b"t/" + u.encode(), props=encode_properties(
            [(0x02, 5), (0x02, 6)])), (PROTO, MAL)),
    "publish_property_length_overruns": (
        lambda u: publish_raw(b"t/" + u.encode(), payload=b"", props=b"\x20"), (MAL,)),
    "publish_unknown_alias": (
        lambda u: gen_publish("", 0, b"x", properties={TOPIC_ALIAS: 1}), (PROTO, 0x94)),
    "subscribe_retain_handling_3": (
        lambda u: gen_subscribe(1, [("a/b", 0x30)]), (MAL, PROTO)),
    "subscribe_shared_no_local": (
        lambda u: gen_subscribe(1, [("$share/g/a", sub_options(1, no_local=True))]),
        (PROTO,)),
    "subscribe_subscription_id_zero": (
        lambda u: gen_subscribe(1, "a/b", properties={0x0B: 0}), (MAL, PROTO)),
    "auth_without_method": (lambda u: b"\xf0\x00", (PROTO, MAL)),
    "disconnect_bad_session_expiry": (
        lambda u: gen_disconnect(0, {SESSION_EXPIRY_INTERVAL: 10}), (PROTO,)),
}


# Cases mosquitto 2.0.11 accepts although the spec forbids them (run against Sluice only).
MOSQUITTO_ACCEPTS = {
    "pingreq_with_body": "answers a PINGREQ whose Remaining Length is not 0 (spec 3.12.1: "
                         "no variable header, no payload)",
    "publish_qos0_dup": "accepts DUP=1 on a QoS 0 PUBLISH (spec 3.3.1-2)",
    "subscribe_shared_no_local": "grants No Local on a shared subscription (spec 3.8.3-4: "
                                 "Protocol Error)",
}


def strict_cases(names):
    return [pytest.param(n, marks=spec_strict(MOSQUITTO_ACCEPTS[n])) if n in MOSQUITTO_ACCEPTS
            else n for n in sorted(names)]


def expect_rejected(c, reasons, proto, first_type=DISCONNECT):
    got = [p for p in c.expect_closed() if p.type != PUBLISH]
    if proto == V311:
        assert all(p.type == CONNACK and p.reason != 0 for p in got), got
        return got
    assert len(got) <= 1, got
    for p in got:
        assert p.type == first_type and p.reason in reasons, (
            "got %r, expected %s with one of %s" % (p, first_type, [hex(r) for r in reasons]))
    if not is_mosquitto():
        assert got, "expected a %s with reason %s before the close" % (
            first_type, [hex(r) for r in reasons])
    return got


@pytest.fixture
def witness(broker, uid):
    """A client that must be unaffected by the bad one."""
    w = connected(broker.port, uid + "-w", V5)
    w.subscribe("w/" + uid, qos=1)
    yield w
    # Still served after the bad client was thrown out.
    with connected(broker.port, uid + "-after", V5) as after:
        after.publish("w/" + uid, b"alive", qos=1)
    p = w.receive()
    assert p.payload == b"alive"
    w.disconnect()


@pytest.mark.parametrize("proto", [V311, V5])
@pytest.mark.parametrize("case", strict_cases(AFTER_CONNECT))
def test_malformed_after_connect(broker, witness, uid, proto, case):
    build, reasons = AFTER_CONNECT[case]
    c = connected(broker.port, uid, proto)
    c.send(build(proto, uid))
    expect_rejected(c, reasons, proto)


@pytest.mark.parametrize("case", strict_cases(AFTER_CONNECT_V5))
def test_malformed_after_connect_v5(broker, witness, uid, case):
    build, reasons = AFTER_CONNECT_V5[case]
    c = connected(broker.port, uid, V5,
                  properties={SESSION_EXPIRY_INTERVAL: 0} if "disconnect" in case else None)
    c.send(build(uid))
    expect_rejected(c, reasons, V5)


# CONNECT problems: 3.1.1 closes (maybe after a refusing CONNACK), 5.0 may send a CONNACK
# with the reason code first.
CONNECT_CASES = {
    "first_packet_publish": (lambda v: publish_raw(b"t/x", proto=v), (MAL, PROTO)),
    "first_packet_pingreq": (lambda v: b"\xc0\x00", (MAL, PROTO)),
    "first_packet_subscribe": (lambda v: gen_subscribe(1, "a", v), (MAL, PROTO)),
    "connect_header_flags": (lambda v: connect_raw(v, header_flags=0x01), (MAL,)),
    "connect_reserved_flag": (lambda v: connect_raw(v, flags=0x03), (MAL,)),
    "connect_will_qos3": (lambda v: connect_raw(v, flags=0x1E, extra=(
        (b"\x00" if v == V5 else b"") + encode_string("w") + encode_string("p"))), (MAL,)),
    "connect_will_retain_without_will": (lambda v: connect_raw(v, flags=0x22), (MAL,)),
    "connect_will_qos_without_will": (lambda v: connect_raw(v, flags=0x0A), (MAL,)),
    "connect_invalid_utf8_client_id": (lambda v: connect_raw(v, client_id=b"\xc3\x28"),
                                       (MAL, RC_CLIENT_ID_NOT_VALID)),
    "connect_truncated": (lambda v: connect_raw(v)[:-2] + b"", (MAL,)),
    "connect_remaining_length_five_bytes": (lambda v: b"\x10\xff\xff\xff\xff\x01", (MAL,)),
}


@pytest.mark.parametrize("proto", [V311, V5])
@pytest.mark.parametrize("case", sorted(CONNECT_CASES))
def test_malformed_connect(broker, witness, proto, case):
    build, reasons = CONNECT_CASES[case]
    data = build(proto)
    if case == "connect_truncated":
        # Claims more bytes than it sends, then half-closes: the server must not wait
        # forever nor accept it.
        data = bytes([data[0], data[1] + 2]) + data[2:]
    with Client(broker.port, proto) as c:
        c.send(data)
        if case == "connect_truncated":
            c.sock.shutdown(socket.SHUT_WR)
        got = [p for p in c.expect_closed()]
        assert all(p.type == CONNACK and p.reason != 0 for p in got), got
        if proto == V5:
            assert all(p.reason in reasons for p in got), got


def test_password_without_username_311(broker, witness):
    # 3.1.1 (3.1.2-22): password flag requires the user name flag. 5.0 allows it.
    with Client(broker.port, V311) as c:
        c.send(gen_connect("pw-no-user", proto_ver=V311, password="secret"))
        got = c.expect_closed()
        assert all(p.type == CONNACK and p.reason != 0 for p in got), got
    with Client(broker.port, V5) as c5:
        c5.send(gen_connect("pw-no-user-5", proto_ver=V5, password="secret"))
        ack = c5.expect(CONNACK)
        assert ack.reason in (0, 0x86, 0x87)  # allowed, or refused by auth policy


def test_connect_duplicate_property(broker, witness):
    with Client(broker.port, V5) as c:
        c.send(connect_raw(V5, props=encode_properties([(0x11, 1), (0x11, 2)])))
        got = c.expect_closed()
        assert all(p.type == CONNACK and p.reason in (PROTO, MAL) for p in got), got


def test_connect_unknown_protocol_name_5(broker, witness):
    with Client(broker.port, V5) as c:
        c.send(gen_connect("pn", proto_ver=V5, proto_name="MQIsdp"))
        got = c.expect_closed()
        assert all(p.type == CONNACK and p.reason in (RC_UNSUPPORTED_PROTOCOL_VERSION, MAL, PROTO,
                                                      1) for p in got), got


def test_garbage_bytes(broker, witness):
    with Client(broker.port, V5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = c.expect_closed()
        assert all(p.type in (CONNACK, DISCONNECT) and p.reason >= 0x80 for p in got), got


@pytest.mark.skipif(is_mosquitto(), reason="Sluice robustness, not an MQTT requirement: "
                    "mosquitto 2.0.11 keeps a half-sent CONNECT open indefinitely")
def test_connect_timeout_without_connect(broker, witness):
    """A TCP connection that never completes its CONNECT is closed in bounded time, so
    idle sockets cannot exhaust the server (the spec's "reasonable amount of time")."""
    with Client(broker.port, V5) as c:
        c.send(b"\x10")  # a started but never finished CONNECT
        c.expect_closed(timeout=30)


INVALID_FILTERS = ["a/#/b", "a+", "a/b#", "+a/b", "#/a", "a/+b", "$share/g+/a", "$share/g#/a",
                   ""]
# Invalid only as 5.0 shared subscriptions (4.8.2-1, 4.8.2-2); plain filters in 3.1.1.
MOSQUITTO_ACCEPTS_SHARED = "grants a shared subscription with an empty ShareName or no " \
                           "Topic Filter (spec 4.8.2-1, 4.8.2-2)"
INVALID_FILTER_CASES = [(v, f) for v in (V311, V5) for f in INVALID_FILTERS] + [
    pytest.param(V5, f, marks=spec_strict(MOSQUITTO_ACCEPTS_SHARED))
    for f in ("$share/g", "$share//a")]


@pytest.mark.parametrize("proto,topic_filter", INVALID_FILTER_CASES)
def test_invalid_topic_filter(broker, witness, uid, proto, topic_filter):
    """An invalid filter gets a failure SUBACK (3.1.1: 0x80; 5.0: 0x8F, or 0x80/0x9E for
    shared ones) or the connection is closed (5.0: after DISCONNECT 0x81/0x82/0x8F)."""
    c = connected(broker.port, uid, proto)
    mid = c.mid()
    c.send(gen_subscribe(mid, [(topic_filter, 1), ("ok/" + uid, 1)], proto))
    try:
        p = c.recv_packet()
    except ConnectionClosed:
        return
    if p.type == 9:  # SUBACK: the bad filter failed, the good one may be granted
        assert p.mid == mid
        if proto == V5:
            assert p.reasons[0] in (RC_TOPIC_FILTER_INVALID, 0x80, 0x9E), p
        else:
            assert p.reasons[0] == 0x80, p
        assert p.reasons[1] in (1, 0x80, RC_TOPIC_FILTER_INVALID), p
        c.ping()
    else:
        assert proto == V5 and p.type == DISCONNECT and p.reason in (
            MAL, PROTO, RC_TOPIC_FILTER_INVALID), p
        c.expect_closed()


def test_unsupported_authentication_method(broker, witness, uid):
    """5.0 (4.12): an unknown Authentication Method gets CONNACK 0x8C or 0x87 (or just
    the close) and the connection MUST be closed."""
    with Client(broker.port, V5) as c:
        c.send(gen_connect(uid, proto_ver=V5, properties={0x15: "NO-SUCH-METHOD"}))
        got = c.expect_closed()
        assert all(p.type == CONNACK and p.reason in (0x8C, 0x87) for p in got), got
