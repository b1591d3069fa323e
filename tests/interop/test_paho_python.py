# SPDX-License-Identifier: Apache-2.0
#
# Interoperability with Eclipse Paho Python (Debian's python3-paho-mqtt), MQTT 3.1.1 and
# 5.0: QoS 0/1/2 round trips, retained messages, wills, and persistent sessions that queue
# messages while the client is away. A real third-party client catches what our raw-bytes
# tests cannot: assumptions about packet order, timing and optional fields that only an
# independent implementation makes.

import queue
import socket
import struct

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

TIMEOUT = 10

PROTOCOLS = pytest.mark.parametrize("proto", [mqtt.MQTTv311, mqtt.MQTTv5],
                                    ids=["3.1.1", "5.0"])


class Paho:
    """A paho client running its network loop in a thread, with messages in a queue."""

    def __init__(self, port, client_id, proto, clean=True, will=None, expiry=None):
        self.proto = proto
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        if proto == mqtt.MQTTv5:
            self.client = mqtt.Client(client_id=client_id, protocol=proto)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=clean, protocol=proto)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        if proto == mqtt.MQTTv5:
            self.client.on_connect = lambda c, u, f, rc, p=None: self.connacks.put(
                (f.get("session present"), rc))
            self.client.on_subscribe = lambda c, u, mid, rcs, p=None: self.subacks.put(rcs)
        else:
            self.client.on_connect = lambda c, u, f, rc: self.connacks.put(
                (f.get("session present"), rc))
            self.client.on_subscribe = lambda c, u, mid, qos: self.subacks.put(qos)
        if will:
            self.client.will_set(*will)
        if proto == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            if expiry is not None:
                props.SessionExpiryInterval = expiry
            self.client.connect("127.0.0.1", port, keepalive=30, clean_start=clean,
                                properties=props)
        else:
            self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        present, rc = self.connacks.get(timeout=TIMEOUT)
        assert rc == 0, rc
        self.session_present = bool(present)

    def subscribe(self, topic, qos):
        self.client.subscribe(topic, qos)
        granted = self.subacks.get(timeout=TIMEOUT)
        granted = [getattr(g, "value", g) for g in granted]
        assert granted == [qos], granted

    def publish(self, topic, payload, qos=0, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()

    def get(self, timeout=TIMEOUT):
        return self.messages.get(timeout=timeout)

    def expect_nothing(self, wait=0.5):
        with pytest.raises(queue.Empty):
            self.messages.get(timeout=wait)

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()

    def abort(self):
        """Drop the TCP connection without DISCONNECT (RST), as a crashed device would."""
        sock = self.client.socket()
        self.client.loop_stop()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


@PROTOCOLS
def test_qos_round_trip(broker, uid, proto):
    sub = Paho(broker.port, uid + "-s", proto)
    sub.subscribe("pp/" + uid, 2)
    pub = Paho(broker.port, uid + "-p", proto)
    for qos in (0, 1, 2):
        for k in range(3):
            pub.publish("pp/" + uid, b"q%d-%d" % (qos, k), qos=qos)
    got = [sub.get() for _ in range(9)]
    assert [m.payload for m in got] == [b"q%d-%d" % (q, k) for q in (0, 1, 2) for k in range(3)]
    assert [m.qos for m in got] == [q for q in (0, 1, 2) for _ in range(3)]
    sub.expect_nothing()
    pub.disconnect()
    sub.disconnect()


@PROTOCOLS
def test_retained(broker, uid, proto):
    pub = Paho(broker.port, uid + "-p", proto)
    pub.publish("pr/" + uid, b"kept", qos=1, retain=True)
    sub = Paho(broker.port, uid + "-s", proto)
    sub.subscribe("pr/" + uid, 1)
    m = sub.get()
    assert (m.payload, m.retain) == (b"kept", True)
    pub.publish("pr/" + uid, b"", qos=1, retain=True)
    assert sub.get().payload == b""
    sub2 = Paho(broker.port, uid + "-s2", proto)
    sub2.subscribe("pr/" + uid, 1)
    sub2.expect_nothing()
    for c in (pub, sub, sub2):
        c.disconnect()


@PROTOCOLS
def test_will(broker, uid, proto):
    sub = Paho(broker.port, uid + "-s", proto)
    sub.subscribe("pw/" + uid, 1)
    dying = Paho(broker.port, uid + "-d", proto, will=("pw/" + uid, b"offline", 1, False))
    polite = Paho(broker.port, uid + "-n", proto, will=("pw/" + uid, b"never", 1, False))
    polite.disconnect()
    dying.abort()
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("pw/" + uid, b"offline", 1)
    sub.expect_nothing()
    sub.disconnect()


@PROTOCOLS
def test_persistent_session(broker, uid, proto):
    expiry = 300 if proto == mqtt.MQTTv5 else None
    s = Paho(broker.port, uid, proto, clean=False, expiry=expiry)
    s.subscribe("ps/" + uid, 2)
    s.disconnect()
    pub = Paho(broker.port, uid + "-p", proto)
    for k in range(5):
        pub.publish("ps/" + uid, b"%d" % k, qos=1 + k % 2)
    pub.disconnect()
    s = Paho(broker.port, uid, proto, clean=False, expiry=expiry)
    assert s.session_present
    got = [s.get() for _ in range(5)]
    # Paho hands a QoS 2 message to the application only at PUBREL, so order is checked
    # per QoS level.
    for qos in (1, 2):
        assert [m.payload for m in got if m.qos == qos] == [
            b"%d" % k for k in range(5) if 1 + k % 2 == qos]
    s.expect_nothing()
    s.disconnect()


def test_v5_properties(broker, uid):
    sub = Paho(broker.port, uid + "-s", mqtt.MQTTv5)
    sub.subscribe("pv/" + uid, 1)
    pub = Paho(broker.port, uid + "-p", mqtt.MQTTv5)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "reply/" + uid
    props.CorrelationData = b"id-1"
    props.UserProperty = [("a", "b")]
    props.ContentType = "text/plain"
    info = pub.client.publish("pv/" + uid, b"req", qos=1, properties=props)
    info.wait_for_publish(TIMEOUT)
    m = sub.get()
    assert m.properties.ResponseTopic == "reply/" + uid
    assert m.properties.CorrelationData == b"id-1"
    assert m.properties.UserProperty == [("a", "b")]
    assert m.properties.ContentType == "text/plain"
    pub.disconnect()
    sub.disconnect()
