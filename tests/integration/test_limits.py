# SPDX-License-Identifier: Apache-2.0
#
# Flow control and size limits of MQTT 5.0: topic aliases in both directions, the client's
# Maximum Packet Size, the client's Receive Maximum, the server's Receive Maximum and the
# server's Maximum Packet Size (spec sections 3.1.2.11, 3.2.2.3, 3.3.2.3.4, 4.9).

import time

import pytest

from mqtt_raw import (Client, V5, PUBLISH, DISCONNECT, CONNACK, PUBREC, PUBACK,
                      TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM, MAXIMUM_PACKET_SIZE, RECEIVE_MAXIMUM,
                      RC_TOPIC_ALIAS_INVALID, RC_PROTOCOL_ERROR, RC_PACKET_TOO_LARGE,
                      RC_RECEIVE_MAXIMUM_EXCEEDED, gen_publish, gen_puback, encode_varint,
                      encode_string, encode_properties, connected)
from broker import Broker, is_mosquitto
from fixtures import spec_strict


def disconnected_with(c, reason):
    """The connection is closed; if a DISCONNECT came first, it carries `reason` (one
    code, or a tuple of acceptable codes)."""
    reasons = reason if isinstance(reason, tuple) else (reason,)
    got = c.expect_closed()
    got = [p for p in got if p.type != PUBLISH]
    assert all(p.type == DISCONNECT and p.reason in reasons for p in got), got
    return got


def test_topic_alias_client_to_server(broker, uid):
    topic = "ta/" + uid
    s = connected(broker.port, uid + "-s", V5)
    s.subscribe(topic + "/#", qos=1)
    c = Client(broker.port, V5)
    maximum = c.connect(uid).prop(TOPIC_ALIAS_MAXIMUM, 0)
    assert maximum >= 1
    c.publish(topic + "/one", b"1", qos=1, properties={TOPIC_ALIAS: 1})
    c.publish("", b"2", qos=1, properties={TOPIC_ALIAS: 1})
    # Re-map alias 1 to another topic.
    c.publish(topic + "/two", b"3", qos=0, properties={TOPIC_ALIAS: 1})
    c.publish("", b"4", qos=1, properties={TOPIC_ALIAS: 1})
    got = [(p.topic, p.payload) for p in (s.receive() for _ in range(4))]
    assert got == [(topic + "/one", b"1"), (topic + "/one", b"2"),
                   (topic + "/two", b"3"), (topic + "/two", b"4")]
    # Aliases are per connection: a new connection does not know alias 1.
    c.disconnect()
    c2 = connected(broker.port, uid, V5)
    c2.send(gen_publish("", 1, b"x", mid=1, properties={TOPIC_ALIAS: 1}))
    disconnected_with(c2, RC_PROTOCOL_ERROR)


def test_topic_alias_out_of_range(broker, uid):
    c = Client(broker.port, V5)
    maximum = c.connect(uid).prop(TOPIC_ALIAS_MAXIMUM, 0)
    c.send(gen_publish("tar/" + uid, 1, b"x", mid=1, properties={TOPIC_ALIAS: maximum + 1}))
    disconnected_with(c, RC_TOPIC_ALIAS_INVALID)
    c = connected(broker.port, uid + "-z", V5)
    c.send(gen_publish("tar/" + uid, 1, b"x", mid=1, properties={TOPIC_ALIAS: 0}))
    # Alias 0 is forbidden (3.3.2-8) without a dedicated code: 0x94 or protocol error;
    # mosquitto says malformed (0x81), which we accept too.
    disconnected_with(c, (RC_TOPIC_ALIAS_INVALID, RC_PROTOCOL_ERROR, 0x81))


def test_topic_alias_server_to_client(broker, uid):
    """Whether the server uses aliases is its choice; if it does, it must stay within the
    client's Topic Alias Maximum and every message must resolve to its real topic."""
    base = "tas/" + uid
    s = Client(broker.port, V5)
    s.connect(uid + "-s", properties={TOPIC_ALIAS_MAXIMUM: 2})
    s.subscribe(base + "/#", qos=1)
    sent = []
    with connected(broker.port, uid + "-p", V5) as pub:
        for i in range(12):
            topic = "%s/t%d" % (base, i % 3)
            pub.publish(topic, b"%d" % i, qos=1)
            sent.append((topic, b"%d" % i))
    got = []
    for _ in range(12):
        p = s.receive()
        if p.alias is not None:
            assert 1 <= p.alias <= 2, p
        got.append((p.topic, p.payload))
    assert got == sent


def test_no_topic_alias_without_client_maximum(broker, uid):
    base = "tan/" + uid
    s = connected(broker.port, uid + "-s", V5)  # Topic Alias Maximum absent = 0
    s.subscribe(base, qos=0)
    with connected(broker.port, uid + "-p", V5) as pub:
        for i in range(5):
            pub.publish(base, b"%d" % i, qos=1)
    for _ in range(5):
        p = s.receive()
        assert p.alias is None and p.topic == base


def test_client_maximum_packet_size(broker, uid):
    topic = "mps/" + uid
    s = Client(broker.port, V5)
    s.connect(uid + "-s", properties={MAXIMUM_PACKET_SIZE: 128})
    s.subscribe(topic, qos=1)
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"small-1", qos=1)
        pub.publish(topic, b"B" * 200, qos=1)  # would exceed 128 bytes: discarded
        pub.publish(topic, b"small-2", qos=1)
    a, b = s.receive(), s.receive()
    assert (a.payload, b.payload) == (b"small-1", b"small-2")
    assert a.size <= 128 and b.size <= 128
    s.expect_nothing(0.5)
    s.ping()


def _receive_max_two(broker, uid):
    topic = "rm/" + uid
    s = Client(broker.port, V5)
    s.connect(uid + "-s", properties={RECEIVE_MAXIMUM: 2})
    s.subscribe(topic, qos=1)
    with connected(broker.port, uid + "-p", V5) as pub:
        for i in range(6):
            pub.publish(topic, b"%d" % i, qos=1)
    first = [s.receive(ack=False) for _ in range(2)]
    assert [p.payload for p in first] == [b"0", b"1"]
    s.expect_nothing(0.7)  # a third would exceed the client's Receive Maximum
    return s, first


def test_client_receive_maximum(broker, uid):
    s, first = _receive_max_two(broker, uid)
    for p in first:
        s.send(gen_puback(p.mid))
    rest = [s.receive() for _ in range(4)]
    assert [p.payload for p in rest] == [b"2", b"3", b"4", b"5"]


@spec_strict("after one PUBACK sends two more QoS 1 messages, exceeding the client's Receive "
             "Maximum (spec 3.3.4-7)")
def test_client_receive_maximum_window_slides_by_one(broker, uid):
    s, first = _receive_max_two(broker, uid)
    s.send(gen_puback(first[0].mid))
    third = s.receive(ack=False)
    assert third.payload == b"2"
    s.expect_nothing(0.5)
    s.send(gen_puback(first[1].mid))
    s.send(gen_puback(third.mid))
    rest = [s.receive() for _ in range(3)]
    assert [p.payload for p in rest] == [b"3", b"4", b"5"]


@spec_strict("answers the PUBLISH beyond its Receive Maximum with PUBREC 0x97 (quota "
             "exceeded) and keeps the connection (spec 3.3.4-9: DISCONNECT 0x93)")
def test_server_receive_maximum_enforced(broker, uid):
    c = Client(broker.port, V5)
    recv_max = c.connect(uid).prop(RECEIVE_MAXIMUM, 65535)
    assert recv_max <= 10000, "test needs a bounded Receive Maximum, got %d" % recv_max
    # QoS 2 messages stay in flight until PUBREL: send one more than allowed.
    for mid in range(1, recv_max + 2):
        c.send(gen_publish("srm/" + uid, 2, b"x", mid=mid))
    got = c.expect_closed()
    recs = [p for p in got if p.type == PUBREC]
    assert len(recs) <= recv_max
    assert got[-1].type == DISCONNECT and got[-1].reason == RC_RECEIVE_MAXIMUM_EXCEEDED, got


def _server_with_packet_limit(broker):
    """Returns (port, max packet size advertised by the server). For mosquitto the limit
    comes from its configuration; Sluice must advertise one by default."""
    if is_mosquitto():
        b = Broker(config_text="max_packet_size 10000\n").start()
        return b, b.port
    return None, broker.port


def test_server_maximum_packet_size(broker, uid):
    extra, port = _server_with_packet_limit(broker)
    try:
        c = Client(port, V5)
        limit = c.connect(uid).prop(MAXIMUM_PACKET_SIZE)
        assert limit is not None, "server must advertise Maximum Packet Size"
        # A publish exactly at the limit is accepted...
        topic = "big/" + uid
        overhead = 1 + len(encode_varint(limit)) + len(encode_string(topic)) + 2 + 1
        if limit <= 4 * 1024 * 1024:
            ok = gen_publish(topic, 1, b"x" * (limit - overhead), mid=1)
            if len(ok) != limit:  # varint size of the remaining length may differ by one
                ok = gen_publish(topic, 1, b"x" * (limit - overhead + limit - len(ok)), mid=1)
            assert len(ok) == limit
            c.send(ok)
            assert c.expect(PUBACK).mid == 1
        # ...one byte more is rejected with 0x95 as soon as the header says so.
        body_len = limit  # total size = 1 + varint + limit > limit
        header = bytes([0x32]) + encode_varint(body_len)
        body = encode_string(topic) + b"\x00\x02" + encode_properties({})
        c.send(header + body)
        try:
            remaining = body_len - len(body)
            chunk = b"y" * 65536
            while remaining > 0:
                n = min(remaining, len(chunk))
                c.send(chunk[:n])
                remaining -= n
        except OSError:
            pass  # closed while we were still sending: fine
        disconnected_with(c, RC_PACKET_TOO_LARGE)
        with connected(port, uid + "-ok", V5) as ok_client:
            ok_client.ping()
    finally:
        if extra:
            assert extra.stop() == 0
            extra.cleanup()
