# SPDX-License-Identifier: Apache-2.0
#
# Issue 14, MQTT across nodes (docs/cluster.md): three `sluice broker` nodes A, B, C (no
# database) on librdkafka's mock cluster (build/bin/sluice-kafka-mock, 3 Kafka brokers),
# with clients nobody here wrote (Eclipse Paho Python 3.1.1 and 5.0, mosquitto_pub):
#  1. what a device publishes on B at QoS 0, 1 and 2 reaches subscribers on A (cross/#,
#     QoS 1, MQTT 5 and 3.1.1) and C (QoS 2) exactly once, with its payload, QoS
#     min(publish, subscription), RETAIN 0, in publish order per topic; a subscriber on B
#     itself also gets each exactly once (nothing comes back through Kafka);
#  2. MQTT 5 user properties (order and repeats kept) and content type survive the hop;
#     a second test does the same for payload format, response topic, correlation data;
#  3. a retained message published on B is delivered with RETAIN 1 to a new subscriber on
#     C and on A (eventually: the acknowledgement means Kafka has it, not that every node
#     has read it yet), live subscribers get it with RETAIN 0; an empty retained payload
#     on B clears it on every node;
#  4. a node D started after retained messages were set and cleared (fresh --data-dir)
#     gives its first subscriber exactly the retained set (it loads TOPIC-retained before
#     it serves), and relays both ways from its first moment;
#  5. 200 numbered QoS 1 messages from each of two Paho publishers (16 in flight) and
#     mosquitto_pub -l on B: every acknowledged one reaches A and C, once, in order.
#  6. a shared subscription ($share/team/shared/#) with members on A (MQTT 5 and 3.1.1) and B
#     gets each of 300 QoS 1 messages published on C exactly once across its members,
#     members on both nodes get some (Kafka balances the group's partitions between the
#     nodes), a plain subscriber gets all; when B's member leaves, A's members get all;
#  7. a node E holding part of a shared group is killed (-9): every message published after
#     it died reaches the group's member on A (Kafka moves E's partitions to A).
#  8. a device's persistent session on node F (5.0, expiry 1 h) goes offline, messages are
#     queued for it, F is killed (-9), more are published; the device reconnects to A
#     without subscribing: session present, every message it missed, in order, then live
#     ones; it moves on to B while A runs: B resumes it and A hands it over.
# Relay topics: TOPIC-mqtt (every PUBLISH), TOPIC-retained (keyed by MQTT topic) and
# TOPIC-sessions (keyed by client id), made here as well in case the mock does not make
# them itself.
#
#   SLUICE_BIN=/path/to/build/bin/sluice /usr/bin/python3 -m pytest -q test_kafka_mqtt_across_nodes.py
# SLUICE_KAFKA_MOCK picks the mock (default: next to SLUICE_BIN, else this checkout's
# build/bin); KEEP_LOGS=DIR copies every node's log there.
import collections
import functools
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from kafka_load import TOPIC, kafka_args  # noqa: E402
from sluice_process import KAFKA_MOCK, REPO, KafkaMock, Sluice, die_with_parent  # noqa: E402

MQTT_TOPIC = TOPIC + "-mqtt"
RETAINED_TOPIC = TOPIC + "-retained"
QUIET = 1.5      # seconds without news after the expected count: anything later is a duplicate
WAIT = 20        # bound of every wait for messages


def mock_path():
    for p in (os.environ.get("SLUICE_KAFKA_MOCK"), KAFKA_MOCK, os.path.join(REPO, "build", "bin", "sluice-kafka-mock")):
        if p and os.access(p, os.X_OK):
            return p
    return None


MOCK = mock_path()
pytestmark = pytest.mark.skipif(MOCK is None, reason="sluice-kafka-mock not found (next to %s, in %s/build/bin, or "
                                "SLUICE_KAFKA_MOCK): build it (target sluice-kafka-mock)" % (KAFKA_MOCK, REPO))

_ids = itertools.count()


def client_id(name):
    return "x14-%s-%d-%d" % (name, os.getpid(), next(_ids))


class RelayMock(KafkaMock):
    """KafkaMock from an explicit path, with the relay's two topics beside TOPIC."""

    def __init__(self, path, brokers, partitions, topic):
        self.topic = topic
        self.proc = subprocess.Popen([path, "--brokers", str(brokers), "--partitions", str(partitions),
                                      "--topic", topic], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
        self.bootstraps = self.proc.stdout.readline().strip()
        assert self.bootstraps, "sluice-kafka-mock did not start"
        for name, n in ((MQTT_TOPIC, 4), (RETAINED_TOPIC, 1), (TOPIC + "-sessions", 1)):
            answer = self.ask("topic %s %d" % (name, n))
            assert answer == "ok" or "already exists" in answer.lower(), "topic %s: %s" % (name, answer)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()


class Cluster:
    def __init__(self, tmp, mock):
        self.tmp = tmp
        self.mock = mock
        self.nodes = {}

    def start(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        node = Sluice(d, role="broker", log_level="info", extra_args=kafka_args(self.mock) + ["--threads", "2"])
        self.nodes[name] = node
        node.start()
        return node

    def port(self, name):
        return self.nodes[name].port

    def logs(self):
        """The interesting lines of every node's log (warnings, errors, relay, retained) and its last lines."""
        out = []
        pattern = re.compile(r"ERROR|WARN|relay|retain|kafka", re.I)
        for name, node in sorted(self.nodes.items()):
            try:
                lines = open(node.log_path, errors="replace").read().splitlines()
            except OSError:
                lines = []
            picked = [ln for ln in lines if pattern.search(ln)][-30:]
            tail = [ln for ln in lines[-12:] if ln not in picked]
            out.append("--- node %s (%s)\n%s" % (name, node.log_path, "\n".join(picked + ["..."] + tail)))
        return "\n".join(out)


def with_logs(test):
    """A failed assertion carries the nodes' log lines."""
    @functools.wraps(test)
    def run(cluster, *args, **kwargs):
        try:
            return test(cluster, *args, **kwargs)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, cluster.logs())) from None
    return run


Received = collections.namedtuple("Received", "topic payload qos retain props")


def _connect(client, port, v5):
    if v5:
        client.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    else:
        client.connect("127.0.0.1", port, keepalive=30)


class Subscriber:
    """A Paho client subscribed to one filter; keeps every PUBLISH it gets."""

    def __init__(self, port, name, filt, qos=1, v5=True):
        self.name = name
        self.lock = threading.Lock()
        self.messages = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connect_rc = None
        self.granted = None
        self.client = paho.Client(client_id=client_id(name), protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        _connect(self.client, port, v5)
        self.client.loop_start()
        try:
            assert self.connected.wait(10) and self.connect_rc == 0, "%s: no CONNACK 0 (%s)" % (name, self.connect_rc)
            rc, _ = self.client.subscribe(filt, qos)
            assert rc == paho.MQTT_ERR_SUCCESS, rc
            assert self.subscribed.wait(10), "%s: no SUBACK" % name
            assert self.granted == [qos], "%s: SUBACK %s for QoS %d" % (name, self.granted, qos)
        except BaseException:
            self.close()
            raise

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connect_rc = rc
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.granted = [getattr(g, "value", g) for g in granted]
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append(Received(msg.topic, msg.payload.decode("utf-8", "replace"), msg.qos, msg.retain,
                                          getattr(msg, "properties", None)))

    def got(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class Publisher:
    """A Paho client on one node; publish() queues (Paho keeps `inflight` unacknowledged)."""

    def __init__(self, port, name, v5=True, inflight=None):
        self.infos = []
        self.connected = threading.Event()
        self.connect_rc = None
        self.client = paho.Client(client_id=client_id(name), protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        if inflight:
            self.client.max_inflight_messages_set(inflight)
        self.client.on_connect = self._on_connect
        _connect(self.client, port, v5)
        self.client.loop_start()
        if not (self.connected.wait(10) and self.connect_rc == 0):
            self.close()
            raise AssertionError("%s: no CONNACK 0 (%s)" % (name, self.connect_rc))

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connect_rc = rc
        self.connected.set()

    def publish(self, topic, payload, qos, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, "publish %s: rc %s" % (topic, info.rc)
        self.infos.append(info)
        return info

    def wait_acked(self, timeout=WAIT):
        """How many of the published messages are acknowledged (sent, for QoS 0) within timeout."""
        deadline = time.time() + timeout
        for info in self.infos:
            info.wait_for_publish(max(0.01, deadline - time.time()))
        return sum(1 for info in self.infos if info.is_published())

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def mosquitto_pub(port, topic, qos, message=None, lines=None, v5=False, retain=False, props=()):
    """Starts mosquitto_pub: -m message, -l with lines, or -n (message and lines None)."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id("mosq"), "-t", topic,
            "-q", str(qos), "-V", "mqttv5" if v5 else "mqttv311"]
    if retain:
        args.append("-r")
    for p in props:
        args += ["-D", "publish"] + list(p)
    if lines is not None:
        args.append("-l")
    elif message is not None:
        args += ["-m", message]
    else:
        args.append("-n")
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=die_with_parent)
    proc.lines = lines
    return proc


def finish(*procs, timeout=WAIT):
    """Feeds each mosquitto_pub its lines and waits for it: exit 0 means every message acknowledged."""
    deadline = time.time() + timeout
    try:
        for proc in procs:
            if proc.lines is not None:
                proc.stdin.write("".join(line + "\n" for line in proc.lines))
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=max(0.1, deadline - time.time()))
            out = proc.stdout.read()  # a line or two, on errors only
            assert proc.returncode == 0, "%s exited %s: %s" % (" ".join(proc.args), proc.returncode, out)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("mosquitto_pub did not finish within %ds: %s" % (timeout, " ".join(e.cmd))) from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def pub(port, topic, qos, message=None, **kw):
    finish(mosquitto_pub(port, topic, qos, message, **kw))


def wait_count(subs, count, timeout=WAIT, quiet=QUIET):
    """Waits (bounded) until every subscriber has at least `count` messages, then `quiet` more seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline and any(len(s.got()) < count for s in subs):
        time.sleep(0.1)
    time.sleep(quiet)
    return {s.name: s.got() for s in subs}


def describe(messages, limit=12):
    return "%d messages: %s%s" % (len(messages), [(m.topic, m.payload, m.qos, m.retain) for m in messages[:limit]],
                                  " ..." if len(messages) > limit else "")


def check_once_in_order(name, got, expected, ordered_topics):
    """got: Received list; expected: [(topic, payload)] in publish order. Each exactly once, and
    for the topics in ordered_topics in the order published."""
    have = collections.Counter((m.topic, m.payload) for m in got)
    want = collections.Counter(expected)
    missing = sorted((want - have).elements())
    extra = sorted((have - want).elements())
    assert not missing and not extra, "%s: %d of %d missing %s, %d duplicate/unexpected %s" % (
        name, len(missing), len(expected), missing[:10], len(extra), extra[:10])
    for topic in ordered_topics:
        seen = [m.payload for m in got if m.topic == topic]
        sent = [p for t, p in expected if t == topic]
        assert seen == sent, "%s: %s out of order: %s" % (name, topic, seen)


def fresh_retained(port, filt, v5=True, until=None, wait=1.0):
    """A new subscriber's retained messages {topic: Received}: collected for `wait` seconds after
    SUBACK, or until until(messages) holds (and 0.2 s more)."""
    s = Subscriber(port, "fresh", filt, qos=1, v5=v5)
    try:
        deadline = time.time() + wait
        while time.time() < deadline:
            if until and until({m.topic: m for m in s.got()}):
                time.sleep(0.2)
                break
            time.sleep(0.05)
        return {m.topic: m for m in s.got()}
    finally:
        s.close()


def poll_retained(port, filt, ok, timeout=15, v5=True):
    """New subscribers, one after another, until ok(retained) holds (bounded). Returns (retained,
    seconds, tries)."""
    start = time.time()
    tries = 0
    while True:
        tries += 1
        got = fresh_retained(port, filt, v5=v5, until=ok)
        if ok(got):
            return got, time.time() - start, tries
        if time.time() - start > timeout:
            raise AssertionError("after %d new subscribers in %.0f s on %s: %s" % (
                tries, timeout, filt, {t: (m.payload, m.retain) for t, m in got.items()}))


def wait_relaying(cluster, names, timeout=30):
    """Each node publishes probes until a subscriber on every other node has one (the relay of a
    node that has just started may take a moment; test_late_node checks a node's first moments)."""
    subs = {n: Subscriber(cluster.port(n), "probe-sub-" + n, "probe/#") for n in names}
    pubs = {n: Publisher(cluster.port(n), "probe-pub-" + n) for n in names}
    start = time.time()
    try:
        i = 0
        while True:
            missing = [(src, dst) for dst in names for src in names if src != dst
                       and not any(m.topic == "probe/" + src for m in subs[dst].got())]
            if not missing:
                print("relay working between %s after %.1f s" % (names, time.time() - start))
                return
            if time.time() - start > timeout:
                raise AssertionError("no relay within %ds for (from, to) %s" % (timeout, missing))
            for n in names:
                pubs[n].publish("probe/" + n, str(i), 1)
            i += 1
            time.sleep(0.3)
    finally:
        for c in list(subs.values()) + list(pubs.values()):
            c.close()


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="sluice-x14-") as tmp:
        mock = None
        c = Cluster(tmp, None)
        try:
            mock = c.mock = RelayMock(MOCK, brokers=3, partitions=4, topic=TOPIC)
            for name in "ABC":
                c.start(name)
            try:
                wait_relaying(c, "ABC")
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, c.logs())) from None
            yield c
            for name, node in sorted(c.nodes.items()):
                node.stop()       # a clean shutdown exits 0
        finally:
            if os.environ.get("KEEP_LOGS"):  # a directory to copy every node's log into
                for name, node in c.nodes.items():
                    if os.path.exists(node.log_path):
                        shutil.copy(node.log_path, os.path.join(os.environ["KEEP_LOGS"], "x14-%s.log" % name))
            for node in c.nodes.values():
                node.kill()
            if mock is not None:
                mock.close()


@with_logs
def test_publishes_on_b_reach_subscribers_on_every_node_once_in_order(cluster):
    a5 = a3 = b5 = c3 = None
    subs = []
    try:
        a5 = Subscriber(cluster.port("A"), "a5", "cross/#", qos=1, v5=True)
        a3 = Subscriber(cluster.port("A"), "a3", "cross/#", qos=1, v5=False)
        b5 = Subscriber(cluster.port("B"), "b5-same-node", "cross/#", qos=1, v5=True)
        c3 = Subscriber(cluster.port("C"), "c3-qos2", "cross/#", qos=2, v5=False)
        subs = [a5, a3, b5, c3]
        b = cluster.port("B")
        expected = []       # (topic, payload) in publish order
        pub_qos = {}        # (topic, payload) -> QoS published

        # One mosquitto_pub per message, as in a shell script.
        for qos, v5 in ((0, False), (1, True), (2, False)):
            payload = "x-q%d" % qos
            pub(b, "cross/x", qos, payload, v5=v5)
            expected.append(("cross/x", payload))
            pub_qos[("cross/x", payload)] = qos
        # mosquitto_pub -l: one connection per QoS, 20 lines each, side by side.
        procs = []
        for qos, v5 in ((0, True), (1, False), (2, True)):
            topic = "cross/m/q%d" % qos
            lines = ["m%d-%02d" % (qos, i) for i in range(20)]
            procs.append(mosquitto_pub(b, topic, qos, lines=lines, v5=v5))
            for line in lines:
                expected.append((topic, line))
                pub_qos[(topic, line)] = qos
        # Paho 5.0 and 3.1.1: QoS 0, 1, 2 interleaved on one connection, one topic per QoS.
        paho_pubs = []
        try:
            for v5 in (True, False):
                p = Publisher(b, "pub-%s" % ("v5" if v5 else "v311"), v5=v5)
                paho_pubs.append(p)
                for i in range(20):
                    for qos in (0, 1, 2):
                        topic = "cross/p%s/q%d" % ("5" if v5 else "3", qos)
                        payload = "p-%02d" % i
                        p.publish(topic, payload, qos)
                        expected.append((topic, payload))
                        pub_qos[(topic, payload)] = qos
            finish(*procs)
            for p in paho_pubs:
                assert p.wait_acked() == len(p.infos), "the Paho publisher on B did not get every acknowledgement"
        finally:
            for p in paho_pubs:
                p.close()

        got = wait_count(subs, len(expected))
        ordered = sorted({t for t, _ in expected if t != "cross/x"})
        for s, sub_qos in ((a5, 1), (a3, 1), (b5, 1), (c3, 2)):
            msgs = got[s.name]
            check_once_in_order(s.name, msgs, expected, ordered)
            x = [m.payload for m in msgs if m.topic == "cross/x" and m.payload != "x-q0"]
            assert x == ["x-q1", "x-q2"], "%s: acknowledged one after the other, received %s" % (s.name, x)
            wrong = [(m.topic, m.payload, m.qos) for m in msgs if m.qos != min(pub_qos[(m.topic, m.payload)], sub_qos)]
            assert not wrong, "%s (subscribed at QoS %d): wrong QoS: %s" % (s.name, sub_qos, wrong[:10])
            retained = [(m.topic, m.payload) for m in msgs if m.retain]
            assert not retained, "%s: RETAIN set on live messages: %s" % (s.name, retained[:10])
        print("%d messages from B reached A (5.0, 3.1.1), B and C (QoS 2) once each, in order" % len(expected))
    finally:
        for s in subs:
            s.close()


@with_logs
def test_mqtt5_user_properties_and_content_type_cross_nodes(cluster):
    a5 = a3 = None
    try:
        a5 = Subscriber(cluster.port("A"), "props-a5", "xprops/#", qos=1, v5=True)
        a3 = Subscriber(cluster.port("A"), "props-a3", "xprops/#", qos=1, v5=False)
        b = cluster.port("B")
        p = Publisher(b, "props-pub", v5=True)
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("unit", "°C"), ("src", "paho"), ("unit", "K")]
            props.ContentType = "application/json"
            p.publish("xprops/paho", '{"v": 1}', 1, properties=props)
            assert p.wait_acked() == 1
        finally:
            p.close()
        pub(b, "xprops/mosq", 2, "hello", v5=True,
            props=[("user-property", "src", "mosquitto_pub"), ("user-property", "k", "v"),
                   ("content-type", "text/plain; charset=utf-8")])

        got = wait_count([a5, a3], 2)
        by_topic = {m.topic: m for m in got["props-a5"]}
        assert sorted(by_topic) == ["xprops/mosq", "xprops/paho"] and len(got["props-a5"]) == 2, describe(
            got["props-a5"])
        m = by_topic["xprops/paho"]
        assert m.payload == '{"v": 1}' and m.qos == 1
        assert getattr(m.props, "UserProperty", None) == [("unit", "°C"), ("src", "paho"), ("unit", "K")], (
            "user properties (order and repeats kept, MQTT-3.3.2-18): %s" % m.props)
        assert getattr(m.props, "ContentType", None) == "application/json", "content type: %s" % m.props
        m = by_topic["xprops/mosq"]
        assert m.payload == "hello" and m.qos == 1
        assert getattr(m.props, "UserProperty", None) == [("src", "mosquitto_pub"), ("k", "v")], m.props
        assert getattr(m.props, "ContentType", None) == "text/plain; charset=utf-8", m.props
        # A 3.1.1 subscriber gets the same messages, without properties.
        assert sorted((x.topic, x.payload) for x in got["props-a3"]) == [("xprops/mosq", "hello"),
                                                                          ("xprops/paho", '{"v": 1}')]
    finally:
        for s in (a5, a3):
            if s is not None:
                s.close()


@with_logs
def test_mqtt5_request_response_properties_cross_nodes(cluster):
    # Beyond the brief's two properties: the rest of what MQTT 5 forwards with a message
    # (MQTT-3.3.2-4, -15, -16: payload format indicator, response topic, correlation data).
    s = Subscriber(cluster.port("C"), "rr-c5", "xrr/#", qos=1, v5=True)
    try:
        p = Publisher(cluster.port("A"), "rr-pub", v5=True)
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.PayloadFormatIndicator = 1
            props.ResponseTopic = "xrr/reply/42"
            props.CorrelationData = b"\x00\x01corr\xff"
            p.publish("xrr/request", "ping", 1, properties=props)
            assert p.wait_acked() == 1
        finally:
            p.close()
        got = wait_count([s], 1)["rr-c5"]
        assert len(got) == 1 and got[0].payload == "ping", describe(got)
        m = got[0]
        assert getattr(m.props, "PayloadFormatIndicator", None) == 1, m.props
        assert getattr(m.props, "ResponseTopic", None) == "xrr/reply/42", m.props
        assert getattr(m.props, "CorrelationData", None) == b"\x00\x01corr\xff", m.props
    finally:
        s.close()


@with_logs
def test_retained_on_b_reaches_new_subscribers_elsewhere_and_clearing_it_clears_everywhere(cluster):
    live = Subscriber(cluster.port("A"), "ret-live-a3", "xret/#", qos=1, v5=False)
    try:
        b = cluster.port("B")
        pub(b, "xret/state", 1, "on", v5=True, retain=True)

        got, secs, tries = poll_retained(cluster.port("C"), "xret/#",
                                         lambda g: "xret/state" in g, v5=True)
        m = got["xret/state"]
        assert m.payload == "on" and m.retain and m.qos == 1, (m.payload, m.retain, m.qos)
        print("retained from B on a new subscriber on C after %.2f s (%d subscriber(s))" % (secs, tries))
        got, secs, tries = poll_retained(cluster.port("A"), "xret/#", lambda g: "xret/state" in g, v5=False)
        assert got["xret/state"].payload == "on" and got["xret/state"].retain
        # A live subscriber gets it as a normal message: RETAIN 0 (MQTT-3.3.1-9).
        lm = [(x.topic, x.payload, x.retain) for x in wait_count([live], 1, quiet=0.2)["ret-live-a3"]]
        assert lm == [("xret/state", "on", False)], lm

        # Cleared on B (3.1.1, empty payload), then another retained topic set after it.
        pub(b, "xret/state", 1, None, retain=True)
        pub(b, "xret/other", 1, "kept", retain=True)
        for node in "ACB":
            got, secs, tries = poll_retained(cluster.port(node), "xret/#",
                                             lambda g: "xret/other" in g and "xret/state" not in g)
            print("cleared on %s after %.2f s (%d subscriber(s))" % (node, secs, tries))
        time.sleep(0.5)
        for node in "AC":   # and it stays cleared
            got = fresh_retained(cluster.port(node), "xret/state", wait=1.0)
            assert not got, "node %s: cleared retained message delivered: %s" % (
                node, {t: (x.payload, x.retain) for t, x in got.items()})
        # The live subscriber saw the clearing message (empty payload) and the next one.
        lm = [(x.topic, x.payload, x.retain) for x in wait_count([live], 3, quiet=0.5)["ret-live-a3"]]
        assert lm == [("xret/state", "on", False), ("xret/state", "", False), ("xret/other", "kept", False)], lm
    finally:
        live.close()


@with_logs
def test_late_node_loads_retained_at_start_and_relays_from_its_first_moment(cluster):
    b = cluster.port("B")
    pub(b, "xlate/keep", 1, "kept-value", v5=True, retain=True, props=[("content-type", "text/plain")])
    pub(b, "xlate/gone", 1, "soon-gone", retain=True)
    pub(b, "xlate/gone", 1, None, retain=True)
    pub(cluster.port("C"), "xlate/fromc", 2, "c-value", retain=True)
    a_live = Subscriber(cluster.port("A"), "late-a-live", "xlive/#", qos=1, v5=True)
    d_live = None
    try:
        start = time.time()
        cluster.start("D")      # fresh --data-dir: it knows only what Kafka has
        d = cluster.port("D")
        print("node D serving %.2f s after start" % (time.time() - start))

        # Its very first subscriber gets exactly the retained set: loaded before it serves.
        got = fresh_retained(d, "xlate/#", v5=False, until=lambda g: {"xlate/keep", "xlate/fromc"} <= set(g),
                             wait=2.0)
        summary = {t: (x.payload, x.retain) for t, x in got.items()}
        if set(got) != {"xlate/keep", "xlate/fromc"}:
            try:
                later, secs, tries = poll_retained(d, "xlate/#", lambda g: {"xlate/keep", "xlate/fromc"} <= set(g),
                                                   timeout=10)
                note = "a new subscriber %.1f s later got %s" % (
                    secs, {t: (x.payload, x.retain) for t, x in later.items()})
            except AssertionError as e:
                note = "never within 10 s (%s)" % e
            raise AssertionError("the first subscriber on node D (started after the retained messages were set) "
                                 "got %s, expected xlate/keep and xlate/fromc only; %s" % (summary, note))
        assert summary == {"xlate/keep": ("kept-value", True), "xlate/fromc": ("c-value", True)}, summary
        assert all(x.qos == 1 for x in got.values()), [(t, x.qos) for t, x in got.items()]

        # Live, from D's first moments: B -> D (mosquitto_pub -l, 20 at QoS 1) and D -> A.
        d_live = Subscriber(d, "late-d-live", "xlive/#", qos=1, v5=False)
        lines = ["b-%02d" % i for i in range(20)]
        finish(mosquitto_pub(b, "xlive/b", 1, lines=lines, v5=True))
        pub(d, "xlive/d", 1, "from-d", v5=False)
        got = wait_count([d_live, a_live], 21)
        check_once_in_order("subscriber on D", got["late-d-live"],
                            [("xlive/b", x) for x in lines] + [("xlive/d", "from-d")], ["xlive/b"])
        check_once_in_order("subscriber on A", got["late-a-live"],
                            [("xlive/b", x) for x in lines] + [("xlive/d", "from-d")], ["xlive/b"])

        # MQTT 5 properties of a retained message loaded from Kafka (beyond the brief).
        got = fresh_retained(d, "xlate/keep", v5=True, until=lambda g: "xlate/keep" in g, wait=2.0)
        assert "xlate/keep" in got
        assert getattr(got["xlate/keep"].props, "ContentType", None) == "text/plain", got["xlate/keep"].props
    finally:
        for s in (a_live, d_live):
            if s is not None:
                s.close()


@with_logs
def test_every_acknowledged_qos1_publish_on_b_reaches_a_in_order(cluster):
    n = 200
    subs = []
    pubs = []
    try:
        subs = [Subscriber(cluster.port("A"), "count-a5", "xcount/#", qos=1, v5=True),
                Subscriber(cluster.port("C"), "count-c3", "xcount/#", qos=1, v5=False)]
        b = cluster.port("B")
        lines = ["mosq-%03d" % i for i in range(n)]
        mosq = mosquitto_pub(b, "xcount/mosq", 1, lines=lines, v5=False)
        start = time.time()
        for v5 in (True, False):
            pubs.append(Publisher(b, "count-%s" % ("v5" if v5 else "v311"), v5=v5, inflight=16))
        for i in range(n):      # both Paho clients queue everything at once; 16 in flight each
            for p, topic in zip(pubs, ("xcount/paho5", "xcount/paho3")):
                p.publish(topic, "%s-%03d" % (topic, i), 1)
        finish(mosq, timeout=40)
        acked = [p.wait_acked(timeout=40) for p in pubs]
        print("3 x %d QoS 1 acknowledged by B in %.1f s" % (n, time.time() - start))
        assert acked == [n, n], "acknowledged by B: %s of %d" % (acked, n)
        expected = ([("xcount/mosq", x) for x in lines] + [("xcount/paho5", "xcount/paho5-%03d" % i) for i in range(n)]
                    + [("xcount/paho3", "xcount/paho3-%03d" % i) for i in range(n)])
        got = wait_count(subs, len(expected), timeout=30)
        for s in subs:
            msgs = got[s.name]
            counts = collections.Counter(m.topic for m in msgs)
            print("%s: %s" % (s.name, dict(counts)))
            check_once_in_order(s.name, msgs, expected, ["xcount/mosq", "xcount/paho5", "xcount/paho3"])
            assert all(m.qos == 1 for m in msgs)
    finally:
        for c in pubs + subs:
            c.close()


def metric(port, name):
    """The value of an unlabelled metric on a node's /metrics (0 when absent)."""
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("sluice_" + name + " "):
            return float(line.split()[1])
    return 0.0


@with_logs
def test_shared_subscription_is_balanced_across_nodes_each_message_once(cluster):
    group = "$share/team/shared/#"
    members = []
    plain = None
    publisher = None
    try:
        members = [Subscriber(cluster.port("A"), "share-a5", group, qos=1, v5=True),
                   Subscriber(cluster.port("A"), "share-a3", group, qos=1, v5=False),
                   Subscriber(cluster.port("B"), "share-b5", group, qos=1, v5=True)]
        plain = Subscriber(cluster.port("A"), "share-plain", "shared/#", qos=1, v5=True)
        # Right after the SUBACKs: the subscription is in force from then on, on every node.
        publisher = Publisher(cluster.port("C"), "share-pub", inflight=32)
        expected = set()
        for i in range(300):
            topic, payload = "shared/t%02d" % (i % 30), "n%03d" % i
            publisher.publish(topic, payload, 1)
            expected.add((topic, payload))
        assert publisher.wait_acked() == 300, "C did not acknowledge every publish"

        def union():
            return [(m.topic, m.payload) for s in members for m in s.got()]
        deadline = time.time() + 40  # the first rebalance of the group's Kafka consumers
        while time.time() < deadline and len(union()) < len(expected):
            time.sleep(0.2)
        time.sleep(QUIET)
        got = union()
        counts = collections.Counter(got)
        missing = expected - set(got)
        dups = [k for k, n in counts.items() if n > 1]
        per_member = {s.name: len(s.got()) for s in members}
        assert not missing, "%d of 300 never reached the group (%s); per member %s" % (
            len(missing), sorted(missing)[:8], per_member)
        assert not dups, "%d delivered to the group more than once: %s" % (len(dups), dups[:8])
        assert len(got) == 300
        on_a = per_member["share-a5"] + per_member["share-a3"]
        on_b = per_member["share-b5"]
        assert on_a > 0 and on_b > 0, "the group was not balanced between the nodes: %s" % per_member
        assert sorted((m.topic, m.payload) for m in plain.got()) == sorted(expected), "the plain subscriber"
        print("300 messages to the group: %s; plain subscriber all 300" % per_member)

        # B's member leaves: B's share goes to A (after the Kafka group's rebalance).
        members[2].close()
        del members[2]
        deadline = time.time() + 30
        while time.time() < deadline and metric(cluster.nodes["B"].http, "cluster_shared_groups") != 0:
            time.sleep(0.2)
        before = len(union())
        late = set()
        for i in range(60):
            topic, payload = "shared/t%02d" % (i % 30), "late%03d" % i
            publisher.publish(topic, payload, 1)
            late.add((topic, payload))
        assert publisher.wait_acked() == 360
        deadline = time.time() + 40
        while time.time() < deadline and len(union()) < before + len(late):
            time.sleep(0.2)
        time.sleep(QUIET)
        after = [k for k in union() if k[1].startswith("late")]
        assert sorted(after) == sorted(late), "after B's member left, A's members got %d of %d (dups %s)" % (
            len(set(after)), len(late), len(after) - len(set(after)))
    finally:
        for c in members + [plain, publisher]:
            if c is not None:
                c.close()


@with_logs
def test_shared_subscription_survives_kill_9_of_a_member_node(cluster):
    """Node E holds half of a group's partitions and is killed (-9): after Kafka's session
    timeout (10 s) its partitions move to A, which goes on from E's last commit, so every
    acknowledged message still reaches the group (at least once: what E routed in its last
    second may come again)."""
    group = "$share/crash/crash/#"
    a_member = e_member = publisher = None
    try:
        a_member = Subscriber(cluster.port("A"), "crash-a", group, qos=1, v5=True)
        cluster.start("E")
        e_member = Subscriber(cluster.port("E"), "crash-e", group, qos=1, v5=True)
        deadline = time.time() + 30
        while time.time() < deadline and metric(cluster.nodes["E"].http, "cluster_shared_partitions") == 0:
            time.sleep(0.2)
        assert metric(cluster.nodes["E"].http, "cluster_shared_partitions") > 0, "E never took part of the group"
        publisher = Publisher(cluster.port("C"), "crash-pub", inflight=32)
        before = set()
        for i in range(40):
            publisher.publish("crash/t%02d" % (i % 20), "before%03d" % i, 1)
            before.add(("crash/t%02d" % (i % 20), "before%03d" % i))
        assert publisher.wait_acked() == 40
        deadline = time.time() + WAIT
        while time.time() < deadline and {(m.topic, m.payload) for s in (a_member, e_member) for m in s.got()} < before:
            time.sleep(0.1)
        on_e = len(e_member.got())
        assert on_e > 0, "E's member got nothing before the kill"

        cluster.nodes.pop("E").kill()  # gone from the fixture: it does not stop it at the end
        killed_at = time.time()
        after = set()
        for i in range(60):
            publisher.publish("crash/t%02d" % (i % 20), "after%03d" % i, 1)
            after.add(("crash/t%02d" % (i % 20), "after%03d" % i))
        assert publisher.wait_acked() == 100
        deadline = time.time() + 45
        while time.time() < deadline and not after <= {(m.topic, m.payload) for m in a_member.got()}:
            time.sleep(0.2)
        got_a = [(m.topic, m.payload) for m in a_member.got()]
        missing = after - set(got_a)
        assert not missing, "%d of 60 published after E died never reached A's member: %s" % (
            len(missing), sorted(missing)[:8])
        print("E killed: A's member had all 60 later messages %.1f s after the kill (%d messages of E's share "
              "before it, %d duplicates on A)" % (time.time() - killed_at, on_e, len(got_a) - len(set(got_a))))
    finally:
        for c in (a_member, e_member, publisher):
            if c is not None:
                try:
                    c.close()
                except Exception:  # E's connection died with it
                    pass


class Device:
    """A Paho 5.0 client with a persistent session (expiry 1 h) that keeps what it gets."""

    def __init__(self, name):
        self.name = name
        self.id = client_id(name)  # the same on every connection: one session
        self.lock = threading.Lock()
        self.messages = []
        self.client = None
        self.session_present = None

    def connect(self, port, clean_start=False, expiry=3600):
        connected = threading.Event()
        result = {}
        client = paho.Client(client_id=self.id, protocol=paho.MQTTv5)

        def on_connect(c, userdata, flags, rc, properties=None):
            result["rc"] = rc
            result["present"] = flags.get("session present")
            connected.set()

        def on_message(c, userdata, msg):
            with self.lock:
                self.messages.append((msg.topic, msg.payload.decode()))

        client.on_connect = on_connect
        client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        client.connect("127.0.0.1", port, keepalive=30, clean_start=clean_start, properties=props)
        client.loop_start()
        assert connected.wait(10) and result.get("rc") == 0, "%s: no CONNACK 0 (%s)" % (self.name, result)
        self.client = client
        self.session_present = result["present"]
        return self.session_present

    def subscribe(self, filt):
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, granted, properties=None: done.set()
        self.client.subscribe(filt, 1)
        assert done.wait(10), "%s: no SUBACK" % self.name

    def got(self):
        with self.lock:
            return list(self.messages)

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """The connection is gone without a DISCONNECT (its node died)."""
        self.client.loop_stop()
        try:
            self.client.socket().close()
        except Exception:
            pass


def publish_numbered(port, name, topic, prefix, count):
    p = Publisher(port, name, inflight=20)
    try:
        for i in range(count):
            p.publish(topic, "%s%02d" % (prefix, i), 1)
        assert p.wait_acked() == count, "%s: not every publish was acknowledged" % name
    finally:
        p.close()
    return ["%s%02d" % (prefix, i) for i in range(count)]


def wait_for(device, payloads, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline and not set(payloads) <= {p for _, p in device.got()}:
        time.sleep(0.1)
    time.sleep(0.5)
    return [p for _, p in device.got()]


@with_logs
def test_persistent_session_resumes_on_another_node_after_kill_9(cluster):
    """A device's persistent session on node F (subscription resume/#, QoS 1): it goes
    offline, messages are queued for it on F, F is killed (-9), more are published; the
    device reconnects to A without subscribing again: session present, every message it
    missed arrives (at least once, in order), and live ones too. Then it moves to B while
    A runs: B resumes it, A hands it over."""
    c = cluster.port("C")
    dev = Device("resume-dev")
    cluster.start("F")
    assert dev.connect(cluster.port("F")) is not None
    dev.subscribe("resume/#")
    live = publish_numbered(c, "resume-pub-1", "resume/a", "live", 10)
    got = wait_for(dev, live)
    assert got == live, "live on F: %s" % got
    dev.disconnect()
    time.sleep(1.5)  # F records the session as caught up when it disconnects
    offline = publish_numbered(c, "resume-pub-2", "resume/a", "off", 20)
    time.sleep(1.0)  # queued on F (its spool)
    cluster.nodes.pop("F").kill()
    dead = publish_numbered(c, "resume-pub-3", "resume/a", "dead", 20)

    present = dev.connect(cluster.port("A"))
    assert present == 1, "A did not resume the session (session present %s)" % present
    after = publish_numbered(c, "resume-pub-4", "resume/a", "after", 10)
    expected = offline + dead + after
    got = wait_for(dev, expected, timeout=30)
    missing = [p for p in expected if p not in got]
    assert not missing, "after the resume on A, %d of %d missing: %s (got %s)" % (
        len(missing), len(expected), missing[:10], got[-40:])
    resumed = [p for p in got if p in set(expected)]
    firsts = []
    for p in resumed:
        if p not in firsts:
            firsts.append(p)
    assert firsts == expected, "out of order: %s\nall received: %s" % (firsts, got)
    dups = len(resumed) - len(set(resumed))
    print("resumed on A: %d messages missed while offline or with F dead, all delivered (%d duplicates)" % (
        len(offline) + len(dead), dups))

    # A alive: the device moves to B, which resumes the session; A hands it over.
    dev.disconnect()
    time.sleep(1.5)
    moved = publish_numbered(c, "resume-pub-5", "resume/a", "moved", 10)
    present = dev.connect(cluster.port("B"))
    assert present == 1, "B did not resume the session"
    got = wait_for(dev, moved, timeout=30)
    assert set(moved) <= set(got), "after moving to B: missing %s" % sorted(set(moved) - set(got))
    deadline = time.time() + 10
    while time.time() < deadline and metric(cluster.nodes["A"].http, "cluster_sessions_handed_over_total") < 1:
        time.sleep(0.2)
    assert metric(cluster.nodes["A"].http, "cluster_sessions_handed_over_total") >= 1, "A kept its copy"
    dev.disconnect()

    # A clean start (session expiry 0) on C ends the session on every node: B drops its
    # copy, and a later resume on A finds nothing.
    handed_before = metric(cluster.nodes["B"].http, "cluster_sessions_handed_over_total")
    assert dev.connect(cluster.port("C"), clean_start=True, expiry=0) == 0
    dev.disconnect()
    deadline = time.time() + 10
    while time.time() < deadline and metric(cluster.nodes["B"].http,
                                            "cluster_sessions_handed_over_total") <= handed_before:
        time.sleep(0.2)
    assert metric(cluster.nodes["B"].http, "cluster_sessions_handed_over_total") > handed_before, "B kept it"
    time.sleep(1.0)
    assert dev.connect(cluster.port("A")) == 0, "the session ended by the clean start came back on A"
    dev.disconnect()
