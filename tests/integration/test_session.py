# SPDX-License-Identifier: Apache-2.0
#
# Persistent sessions: QoS 1/2 messages queued while the client is offline, retransmission
# of unacknowledged messages (DUP) and of PUBREL on reconnect, inbound QoS 2 state kept
# across a reconnect, ordering, and sessions and retained messages surviving a broker
# restart (spec sections 4.1, 4.4, 4.6; DESIGN.md promise 4).

import pytest

from mqtt_raw import (Client, V311, V5, PUBLISH, PUBREL, PUBREC, PUBCOMP,
                      SESSION_EXPIRY_INTERVAL, gen_publish, gen_pubrec, gen_pubrel,
                      gen_pubcomp, connected)
from broker import is_mosquitto

PROTOS = pytest.mark.parametrize("proto", [V311, V5])


def persistent(proto):
    if proto == V5:
        return {"clean": False, "properties": {SESSION_EXPIRY_INTERVAL: 300}}
    return {"clean": False}


def first_persistent(proto):
    # 5.0: Clean Start plus an expiry starts from nothing and keeps the session afterwards.
    # 3.1.1: Clean Session 1 would end the session at disconnect; ids are unique per test.
    kw = persistent(proto)
    kw["clean"] = proto == V5
    return kw


@PROTOS
def test_offline_queue_qos1_qos2_in_order(broker, uid, proto):
    topic = "q/" + uid
    s = connected(broker.port, uid, proto, **first_persistent(proto))
    s.subscribe([(topic + "/1", 1), (topic + "/2", 2)])
    s.disconnect()
    with connected(broker.port, uid + "-p", proto) as pub:
        for i in range(10):
            pub.publish(topic + "/%d" % (1 + i % 2), b"%d" % i, qos=1 + i % 2)
    s = Client(broker.port, proto)
    ack = s.connect(uid, **persistent(proto))
    assert ack.session_present is True
    got = [s.receive() for _ in range(10)]
    assert [p.payload for p in got] == [b"%d" % i for i in range(10)]
    assert [p.qos for p in got] == [1 + i % 2 for i in range(10)]
    s.expect_nothing(0.3)
    # The subscription is still there for live traffic too.
    with connected(broker.port, uid + "-p2", proto) as pub:
        pub.publish(topic + "/1", b"live", qos=1)
    assert s.receive().payload == b"live"
    s.disconnect()


@PROTOS
def test_clean_session_discards_queue(broker, uid, proto):
    topic = "qc/" + uid
    s = connected(broker.port, uid, proto, **first_persistent(proto))
    s.subscribe(topic, qos=1)
    s.disconnect()
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish(topic, b"lost", qos=1)
    with Client(broker.port, proto) as s2:
        assert s2.connect(uid, clean=True).session_present is False
        s2.expect_nothing(0.5)


@PROTOS
@pytest.mark.parametrize("qos", [1, 2])
def test_unacked_publish_resent_with_dup(broker, uid, proto, qos):
    topic = "dup/" + uid
    s = connected(broker.port, uid, proto, **first_persistent(proto))
    s.subscribe(topic, qos=qos)
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish(topic, b"again", qos=qos)
    first = s.receive(ack=False)
    assert first.dup is False and first.qos == qos
    s.close()  # no acknowledgement
    s = Client(broker.port, proto)
    assert s.connect(uid, **persistent(proto)).session_present is True
    again = s.expect(PUBLISH)
    assert (again.payload, again.mid, again.qos, again.dup) == (b"again", first.mid, qos, True)
    s.ack(again)
    s.expect_nothing(0.5)
    s.disconnect()


@PROTOS
def test_pubrel_resent_after_pubrec(broker, uid, proto):
    topic = "rel/" + uid
    s = connected(broker.port, uid, proto, **first_persistent(proto))
    s.subscribe(topic, qos=2)
    with connected(broker.port, uid + "-p", proto) as pub:
        pub.publish(topic, b"x", qos=2)
    p = s.expect(PUBLISH)
    s.send(gen_pubrec(p.mid, proto))
    assert s.expect(PUBREL).mid == p.mid
    s.close()  # PUBCOMP never sent
    s = Client(broker.port, proto)
    assert s.connect(uid, **persistent(proto)).session_present is True
    rel = s.expect(PUBREL)  # not the PUBLISH again
    assert rel.mid == p.mid
    s.send(gen_pubcomp(p.mid, proto))
    s.expect_nothing(0.5)
    s.disconnect()


@PROTOS
def test_inbound_qos2_state_survives_reconnect(broker, uid, proto):
    topic = "in2/" + uid
    sub = connected(broker.port, uid + "-s", proto)
    sub.subscribe(topic, qos=2)
    pub = connected(broker.port, uid, proto, **first_persistent(proto))
    pub.send(gen_publish(topic, 2, b"once", mid=42, proto_ver=proto))
    assert pub.expect(PUBREC).mid == 42
    pub.close()
    pub = Client(broker.port, proto)
    assert pub.connect(uid, **persistent(proto)).session_present is True
    # Resend as DUP (we may not know whether PUBREC arrived), then release.
    pub.send(gen_publish(topic, 2, b"once", mid=42, dup=True, proto_ver=proto))
    assert pub.expect(PUBREC).mid == 42
    pub.send(gen_pubrel(42, proto))
    comp = pub.expect(PUBCOMP)
    assert comp.mid == 42 and comp.reason == 0
    assert sub.receive().payload == b"once"
    sub.expect_nothing(0.7)
    pub.disconnect()


@pytest.mark.parametrize("first_clean", [
    False,
    pytest.param(True, marks=pytest.mark.skipif(
        is_mosquitto(), reason="not an MQTT requirement but Sluice's promise 4; mosquitto "
        "2.0.11 loses a 5.0 session begun with Clean Start=1 across a restart")),
])
def test_session_survives_broker_restart(broker, uid, first_clean):
    topic = "rs/" + uid
    s = connected(broker.port, uid, V5, clean=first_clean,
                  properties={SESSION_EXPIRY_INTERVAL: 300})
    s.subscribe(topic, qos=1)
    s.disconnect()
    with connected(broker.port, uid + "-p", V5) as pub:
        pub.publish(topic, b"queued", qos=1)
        pub.publish("rsr/" + uid, b"retained", qos=1, retain=True)
    assert broker.restart() == 0
    s = Client(broker.port, V5)
    assert s.connect(uid, **persistent(V5)).session_present is True
    assert s.receive().payload == b"queued"
    with connected(broker.port, uid + "-p2", V5) as pub:
        pub.publish(topic, b"live", qos=1)
    assert s.receive().payload == b"live"
    s.subscribe("rsr/" + uid, qos=1)
    p = s.receive()
    assert p.payload == b"retained" and p.retain
    s.disconnect()


def test_many_queued_messages(broker, uid):
    topic = "mq/" + uid
    s = connected(broker.port, uid, V311, **first_persistent(V311))
    s.subscribe(topic, qos=1)
    s.disconnect()
    n = 200
    with connected(broker.port, uid + "-p", V311) as pub:
        for i in range(n):
            pub.publish(topic, b"%d" % i, qos=1)
    s = Client(broker.port, V311)
    s.connect(uid, **persistent(V311))
    assert [s.receive().payload for _ in range(n)] == [b"%d" % i for i in range(n)]
    s.disconnect()
