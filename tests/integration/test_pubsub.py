# SPDX-License-Identifier: Apache-2.0
#
# Publish/subscribe semantics: QoS 0/1/2 in both directions with the full acknowledgement
# flows, QoS downgrade, wildcards, $-topics, shared subscriptions, subscription options
# (No Local, Retain As Published, Retain Handling), subscription identifiers, unsubscribe
# (spec sections 3.3-3.11, 4.3, 4.7, 4.8).

import pytest

from mqtt_raw import (Client, V311, V5, PUBLISH, PUBREC, PUBREL, PUBCOMP, PUBACK,
                      SUBSCRIPTION_IDENTIFIER, RC_NO_SUBSCRIPTION_EXISTED,
                      gen_publish, gen_pubrel, gen_pubrec, gen_pubcomp, gen_puback,
                      sub_options, connected, Timeout)
from fixtures import spec_strict

PROTOS = pytest.mark.parametrize("proto", [V311, V5])


@PROTOS
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_qos_matrix(broker, uid, proto, pub_qos, sub_qos):
    topic = "qos/" + uid
    sub = connected(broker.port, uid + "-s", proto)
    ack = sub.subscribe(topic, qos=sub_qos)
    assert ack.reasons == [sub_qos]
    pub = connected(broker.port, uid + "-p", proto)
    for i in range(3):
        pub.publish(topic, b"m%d" % i, qos=pub_qos)
    for i in range(3):
        p = sub.receive()
        assert p.topic == topic and p.payload == b"m%d" % i
        assert p.qos == min(pub_qos, sub_qos)
        assert p.retain is False and p.dup is False
        if p.qos:
            assert p.mid != 0
    sub.expect_nothing(0.3)
    pub.disconnect()
    sub.disconnect()


@PROTOS
def test_qos2_inbound_flow_exactly_once(broker, uid, proto):
    """Publisher resends the QoS 2 PUBLISH (DUP) before PUBREL: delivered once."""
    topic = "q2in/" + uid
    sub = connected(broker.port, uid + "-s", proto)
    sub.subscribe(topic, qos=2)
    pub = connected(broker.port, uid + "-p", proto)
    pub.send(gen_publish(topic, 2, b"once", mid=7, proto_ver=proto))
    assert pub.expect(PUBREC).mid == 7
    pub.send(gen_publish(topic, 2, b"once", mid=7, dup=True, proto_ver=proto))
    assert pub.expect(PUBREC).mid == 7
    pub.send(gen_pubrel(7, proto))
    assert pub.expect(PUBCOMP).mid == 7
    # PUBREL again (e.g. after a lost PUBCOMP): PUBCOMP again (5.0 may say 0x92).
    pub.send(gen_pubrel(7, proto))
    comp = pub.expect(PUBCOMP)
    assert comp.mid == 7 and comp.reason in (0, 0x92)
    p = sub.receive()
    assert p.payload == b"once" and p.qos == 2
    sub.expect_nothing(0.5)


@PROTOS
def test_qos2_outbound_flow(broker, uid, proto):
    """Broker to subscriber: PUBLISH, PUBREC -> PUBREL, PUBCOMP; step by step."""
    topic = "q2out/" + uid
    sub = connected(broker.port, uid + "-s", proto)
    sub.subscribe(topic, qos=2)
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish(topic, b"x", qos=2)
    p = sub.expect(PUBLISH)
    assert p.qos == 2
    sub.send(gen_pubrec(p.mid, proto))
    rel = sub.expect(PUBREL)
    assert rel.mid == p.mid and rel.flags == 0x02
    sub.send(gen_pubcomp(p.mid, proto))
    sub.ping()
    sub.expect_nothing(0.3)


@PROTOS
def test_qos1_publish_gets_puback_even_without_subscribers(broker, uid, proto):
    with connected(broker.port, uid, proto) as c:
        ack = c.publish("nobody/" + uid, b"x", qos=1)
        assert ack.type == PUBACK
        if proto == V5:
            assert ack.reason in (0, 0x10)
        ack2 = c.publish("nobody/" + uid, b"x", qos=2)
        assert ack2.type == PUBCOMP


@PROTOS
def test_overlapping_subscriptions_max_qos(broker, uid, proto):
    """Delivered respecting the maximum QoS of all matching subscriptions; further copies
    (one per subscription) are allowed (3.3.4-2 / 3.1.1 section 3.3.5)."""
    sub = connected(broker.port, uid + "-s", proto)
    sub.subscribe("ov/" + uid + "/#", qos=0)
    sub.subscribe("ov/" + uid + "/+", qos=2)
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish("ov/" + uid + "/a", b"x", qos=2)
    copies = [sub.receive()]
    try:
        copies.append(sub.receive(timeout=0.7))
    except Timeout:
        pass
    assert [p.payload for p in copies] == [b"x"] * len(copies)
    assert max(p.qos for p in copies) == 2
    if len(copies) == 2:
        assert sorted(p.qos for p in copies) == [0, 2]
    sub.expect_nothing(0.3)


@PROTOS
def test_wildcards(broker, uid, proto):
    base = "wc/" + uid
    filters = {
        base + "/#": {"a", "a/b", "a/b/c", "", "x/y"},
        base + "/+": {"a", ""},
        base + "/+/b": {"a/b"},
        base + "/a/#": {"a", "a/b", "a/b/c"},   # "#" also matches the parent level
        base + "/+/+/c": {"a/b/c"},
    }
    subs = {}
    for i, f in enumerate(filters):
        s = connected(broker.port, "%s-s%d" % (uid, i), proto)
        s.subscribe(f, qos=1)
        subs[f] = s
    pub = connected(broker.port, uid + "-p", proto)
    # The empty suffix publishes to base + "/" (a topic with an empty last level).
    for suffix in ["a", "a/b", "a/b/c", "", "x/y"]:
        pub.publish(base + "/" + suffix, suffix.encode(), qos=1)
    pub.publish(base, b"base-itself", qos=1)
    for f, expected in filters.items():
        got = set()
        s = subs[f]
        for _ in range(len(expected)):
            got.add(s.receive().payload.decode())
        if f == base + "/#":  # "sport/#" matches "sport" too
            got.add(s.receive().payload.decode())
            expected = expected | {"base-itself"}
        assert got == expected, f
        s.expect_nothing(0.2)


def test_dollar_topics_not_matched_by_leading_wildcards(broker, uid):
    hash_sub = connected(broker.port, uid + "-h", V5)
    hash_sub.subscribe("#", qos=0)
    plus_sub = connected(broker.port, uid + "-p", V5)
    plus_sub.subscribe("+/d/" + uid, qos=0)
    dollar_sub = connected(broker.port, uid + "-d", V5)
    dollar_sub.subscribe("$test/" + uid, qos=0)
    with connected(broker.port, uid + "-pub", V5) as pub:
        pub.publish("$test/" + uid, b"dollar", qos=1)
        pub.publish("$test/d/" + uid, b"dollar-d", qos=1)
        pub.publish("norm/" + uid, b"normal", qos=1)
    assert dollar_sub.receive().payload == b"dollar"
    # "#" gets only the normal one (and possibly the broker's own $SYS would not match).
    got = []
    try:
        while True:
            got.append(hash_sub.receive(timeout=0.5))
    except Exception:  # noqa: BLE001 - Timeout ends the loop
        pass
    assert [p.topic for p in got if p.topic.startswith("$")] == []
    assert b"normal" in [p.payload for p in got]
    plus_sub.expect_nothing(0.3)


@PROTOS
def test_unsubscribe(broker, uid, proto):
    topic = "uns/" + uid
    sub = connected(broker.port, uid + "-s", proto)
    sub.subscribe(topic, qos=1)
    pub = connected(broker.port, uid + "-p", proto)
    pub.publish(topic, b"1", qos=1)
    assert sub.receive().payload == b"1"
    ack = sub.unsubscribe(topic)
    if proto == V5:
        assert ack.reasons == [0]
        ack2 = sub.unsubscribe("never/" + uid)
        assert ack2.reasons == [RC_NO_SUBSCRIPTION_EXISTED]
    else:
        assert ack.reasons == []
        sub.unsubscribe("never/" + uid)  # 3.1.1: UNSUBACK even if nothing matched
    pub.publish(topic, b"2", qos=1)
    sub.expect_nothing(0.5)


def test_subscribe_multiple_filters_and_qos_grant(broker, uid):
    with connected(broker.port, uid, V5) as c:
        ack = c.subscribe([("m/%s/0" % uid, 0), ("m/%s/1" % uid, 1), ("m/%s/2" % uid, 2)])
        assert ack.reasons == [0, 1, 2]
        # Resubscribing replaces (not duplicates) the subscription.
        ack = c.subscribe("m/%s/1" % uid, qos=2)
        assert ack.reasons == [2]
        c.publish("m/%s/1" % uid, b"x", qos=2)
        p = c.receive()
        assert p.qos == 2
        c.expect_nothing(0.3)


def test_shared_subscription_one_member_per_message(broker, uid):
    group = "$share/g%s/sh/%s" % (uid.replace("-", "")[:10], uid)
    members = [connected(broker.port, "%s-m%d" % (uid, i), V5) for i in range(3)]
    for m in members:
        assert m.subscribe(group, qos=1).reasons == [1]
    normal = connected(broker.port, uid + "-n", V5)
    normal.subscribe("sh/" + uid, qos=1)
    n = 30
    with connected(broker.port, uid + "-p", V5) as pub:
        for i in range(n):
            pub.publish("sh/" + uid, b"%d" % i, qos=1)
    # Every message to exactly one member; the normal subscriber gets all.
    seen = []
    for m in members:
        try:
            while True:
                seen.append(m.receive(timeout=0.7).payload)
        except Exception:  # noqa: BLE001 - Timeout ends this member's stream
            pass
    assert sorted(seen, key=int) == [b"%d" % i for i in range(n)]
    assert [normal.receive().payload for _ in range(n)] == [b"%d" % i for i in range(n)]


def test_shared_subscription_member_leaves(broker, uid):
    group = "$share/g2/shl/" + uid
    a = connected(broker.port, uid + "-a", V5)
    b = connected(broker.port, uid + "-b", V5)
    a.subscribe(group, qos=1)
    b.subscribe(group, qos=1)
    b.unsubscribe(group)
    with connected(broker.port, uid + "-p", V5) as pub:
        for i in range(5):
            pub.publish("shl/" + uid, b"%d" % i, qos=1)
    assert [a.receive().payload for _ in range(5)] == [b"%d" % i for i in range(5)]
    b.expect_nothing(0.3)


def test_no_local(broker, uid):
    topic = "nl/" + uid
    c = connected(broker.port, uid, V5)
    c.subscribe(topic, qos=1, no_local=True)
    other = connected(broker.port, uid + "-o", V5)
    other.subscribe(topic, qos=1)
    c.publish(topic, b"mine", qos=1)
    assert other.receive().payload == b"mine"
    c.expect_nothing(0.5)
    other.publish(topic, b"theirs", qos=1)
    assert c.receive().payload == b"theirs"


def test_retain_as_published(broker, uid):
    topic = "rap/" + uid
    keep = connected(broker.port, uid + "-k", V5)
    keep.subscribe(topic, qos=1, retain_as_published=True)
    clear = connected(broker.port, uid + "-c", V5)
    clear.subscribe(topic, qos=1)
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"r", qos=1, retain=True)
        pub.publish(topic, b"n", qos=1, retain=False)
    a, b = keep.receive(), keep.receive()
    assert (a.payload, a.retain, b.payload, b.retain) == (b"r", True, b"n", False)
    a, b = clear.receive(), clear.receive()
    assert (a.payload, a.retain, b.payload, b.retain) == (b"r", False, b"n", False)


def test_retain_handling(broker, uid):
    topic = "rh/" + uid
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"kept", qos=1, retain=True)
    # 0: send retained at every subscribe.
    c0 = connected(broker.port, uid + "-0", V5)
    c0.subscribe(topic, qos=1, retain_handling=0)
    p = c0.receive()
    assert p.payload == b"kept" and p.retain is True
    c0.subscribe(topic, qos=1, retain_handling=0)
    assert c0.receive().payload == b"kept"
    # 1: only if the subscription did not exist.
    c1 = connected(broker.port, uid + "-1", V5)
    c1.subscribe(topic, qos=1, retain_handling=1)
    assert c1.receive().payload == b"kept"
    c1.subscribe(topic, qos=1, retain_handling=1)
    c1.expect_nothing(0.5)
    # 2: never.
    c2 = connected(broker.port, uid + "-2", V5)
    c2.subscribe(topic, qos=1, retain_handling=2)
    c2.expect_nothing(0.5)


def test_subscription_identifiers(broker, uid):
    base = "sid/" + uid
    c = connected(broker.port, uid, V5)
    c.subscribe(base + "/+", qos=1, properties={SUBSCRIPTION_IDENTIFIER: 7})
    c.subscribe(base + "/a/#", qos=1, properties={SUBSCRIPTION_IDENTIFIER: 300000})
    c.subscribe(base + "/b", qos=1)  # no identifier
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(base + "/a", b"a", qos=1)
        pub.publish(base + "/b", b"b", qos=1)
        pub.publish(base + "/a/x", b"ax", qos=1)
    ids = {}
    for _ in range(5):
        try:
            p = c.receive(timeout=1.0)
        except Exception:  # noqa: BLE001 - fewer copies when the broker merges them
            break
        ids.setdefault(p.payload, set()).update(p.prop(SUBSCRIPTION_IDENTIFIER, []))
    assert ids[b"a"] == {7, 300000}
    assert ids[b"b"] == {7}
    assert ids[b"ax"] == {300000}


@spec_strict("accepts a client PUBLISH carrying a Subscription Identifier (spec 3.3.4-6)")
def test_subscription_identifier_not_sent_by_client_is_rejected(broker, uid):
    # A PUBLISH from a client must not carry a Subscription Identifier (3.3.4-6).
    c = connected(broker.port, uid, V5)
    c.send(gen_publish("x/" + uid, 1, b"x", mid=1, properties={SUBSCRIPTION_IDENTIFIER: 1}))
    got = c.expect_closed()
    assert all(p.type == 14 and p.reason == 0x82 for p in got), got


@PROTOS
def test_publish_to_self(broker, uid, proto):
    topic = "self/" + uid
    with connected(broker.port, uid, proto) as c:
        c.subscribe(topic, qos=2)
        c.publish(topic, b"loop", qos=1)
        p = c.receive()
        assert p.payload == b"loop" and p.qos == 1


def test_v311_and_v5_interwork(broker, uid):
    topic = "mix/" + uid
    s311 = connected(broker.port, uid + "-3", V311)
    s311.subscribe(topic, qos=2)
    s5 = connected(broker.port, uid + "-5", V5)
    s5.subscribe(topic, qos=2)
    with connected(broker.port, uid + "-p", V5) as p5:
        p5.publish(topic, b"from5", qos=2, properties={0x26: [("k", "v")]})
    with connected(broker.port, uid + "-q", V311) as p3:
        p3.publish(topic, b"from3", qos=1)
    assert [s311.receive().payload for _ in range(2)] == [b"from5", b"from3"]
    a, b = s5.receive(), s5.receive()
    assert (a.payload, b.payload) == (b"from5", b"from3")
    assert a.prop(0x26) == [("k", "v")]


def test_puback_for_unknown_id_is_harmless(broker, uid):
    with connected(broker.port, uid, V311) as c:
        c.send(gen_puback(1234, V311))
        c.ping()


@PROTOS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_ingest_topics_are_ordinary_topics(broker, uid, proto, qos):
    """Sluice also writes devices/+/telemetry to its durable log before acknowledging;
    to MQTT clients those topics must behave like any other (mosquitto: plain topics)."""
    topic = "devices/%s/telemetry" % uid
    sub = connected(broker.port, uid + "-s", proto)
    sub.subscribe("devices/+/telemetry", qos=2)
    with connected(broker.port, uid, proto) as dev:
        for i in range(5):
            dev.publish(topic, b'{"temperature": %d}' % i, qos=qos)
    got = [sub.receive() for _ in range(5)]
    assert [p.payload for p in got] == [b'{"temperature": %d}' % i for i in range(5)]
    assert all(p.topic == topic and p.qos == qos for p in got)
