#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# The soak test of issue 10 ("no one client may stall the others"), driven by
# bench/macro/soak/run (`make soak`). One private PostgreSQL and one `sluice serve` on
# 127.0.0.1 (ports 0, temp dirs), then for --duration seconds, all at once:
#   ingest     Paho Python publishers (MQTT 3.1.1 and 5.0, clean and persistent sessions),
#              QoS 1 JSON {"v": n} (no "seq") to devices/soak-pN/telemetry at a steady rate,
#              at most 20 unacknowledged each (within mqtt.resend_window); every value whose
#              PUBACK arrived is recorded (on_publish, by mid). A bulk publisher sends 8 KB
#              QoS 1 messages to soak/bulk/N (not ingest) for the subscribers' byte bounds.
#   fast sub   a Paho MQTT 5 clean-session subscriber to devices/# at QoS 1 that reads all.
#   slow subs  raw persistent sessions subscribed to devices/# and soak/bulk/#: "stall" reads
#              a little, then stops reading its socket for 10-50 s, reconnects; "never" never
#              reads, reconnects every 20-60 s; "crawl" reads ~30 msg/s with Receive Maximum 16.
#   takeovers  every --takeover-every s a second connection with the client id of a slow
#              subscriber or of a persistent publisher (same session settings), held 1-3 s.
#              Clean-session publishers are not taken over: Paho resends their unacknowledged
#              PUBLISHes on the new connection, which may store a reading twice by design
#              (docs/delivery.md: use "seq" or a persistent session).
#   hostile    malformed packets (before and after CONNECT), oversized packets, partial
#              packets that never finish (and ones dribbled byte by byte), connect/disconnect
#              floods, ~1 MB SUBSCRIBEs of 32k-level filters and over-deep PUBLISH topics.
# Every --sample s: the sluice process's VmRSS, the publishers' acknowledged count and
# /metrics. At the end the load stops, the pipeline catches up (bounded), and the checks are:
#   1. every acknowledged reading is in PostgreSQL exactly once (0 lost, 0 duplicated);
#   2. RSS bounded: max in the second half <= 1.5 x max in the first half + 64 MiB;
#   3. the well-behaved publishers' (never taken over) acknowledged rate in the last third
#      >= 70% of the first third.
# Observations reported without failing: the fast subscriber got every acknowledged reading
# (when it was never disconnected), hostile connections were closed by the broker in time,
# sluice exits 0 on SIGTERM. Exit status 1 if a check fails, 2 on a setup error.
import argparse
import collections
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

import mqtt_raw as raw  # noqa: E402
from sluice_process import Sluice, pg_start, pg_stop, rows  # noqa: E402

HOST = "127.0.0.1"
MAX_INFLIGHT = 20  # per publisher; below mqtt.resend_window (32), see docs/delivery.md
SESSION_EXPIRY = 3600
MiB = 1024 * 1024

STOP = threading.Event()  # stops the load (publishers have their own)


class Stats:
    """Event counters shared by the load threads. Never held while calling into Paho."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.maxes = {}

    def inc(self, name, n=1):
        with self.lock:
            self.c[name] += n

    def peak(self, name, value):
        with self.lock:
            if value > self.maxes.get(name, float("-inf")):
                self.maxes[name] = value

    def snapshot(self):
        with self.lock:
            return dict(self.c), dict(self.maxes)


STATS = Stats()


def sleep_unless_stopped(seconds, event=STOP):
    return event.wait(seconds)


# --------------------------------------------------------------------------------------
# Ingest publishers (Paho).

def connect_props(expiry=SESSION_EXPIRY):
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = expiry
    return p


class Publisher:
    def __init__(self, idx, port, v5, persistent, taken_over, rate):
        self.key = "soak-p%d" % idx
        self.client_id = "soak-pub-%d" % idx
        self.topic = "devices/%s/telemetry" % self.key
        self.port, self.v5, self.persistent, self.taken_over, self.rate = port, v5, persistent, taken_over, rate
        if v5:
            self.client = paho.Client(self.client_id, protocol=paho.MQTTv5)
        else:
            self.client = paho.Client(self.client_id, clean_session=not persistent, protocol=paho.MQTTv311)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1.0)
        self.client.on_publish = self.on_publish
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        # on_publish runs on Paho's thread holding Paho's locks; it only takes self.lock,
        # and self.lock is never held while calling Paho.
        self.lock = threading.Lock()
        self.pending = {}  # mid -> (value, time published), not yet acknowledged
        self.early = {}  # mid -> time: acknowledged before publish() returned to us
        self.acked = []  # (value, monotonic time of the PUBACK, seconds from publish to PUBACK)
        self.published = 0
        self.connects = 0
        self.disconnects = 0
        self.load_disconnects = None  # disconnects before the load stopped
        self.session_lost = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=self.client_id, daemon=True)

    @property
    def label(self):
        return "%s (%s, %s%s)" % (self.key, "5.0" if self.v5 else "3.1.1",
                                  "persistent" if self.persistent else "clean",
                                  ", taken over" if self.taken_over else "")

    def on_publish(self, client, userdata, mid):
        now = time.monotonic()
        with self.lock:
            entry = self.pending.pop(mid, None)
            if entry is None:
                self.early[mid] = now
            else:
                self.acked.append((entry[0], now, now - entry[1]))

    def on_connect(self, client, userdata, flags, *rest):
        with self.lock:
            self.connects += 1
            if self.connects > 1 and self.persistent and not flags.get("session present"):
                self.session_lost += 1

    def on_disconnect(self, client, userdata, *rest):
        with self.lock:
            self.disconnects += 1

    def start(self):
        if self.v5:
            if self.persistent:
                self.client.connect(HOST, self.port, keepalive=30, clean_start=False, properties=connect_props())
            else:
                self.client.connect(HOST, self.port, keepalive=30, clean_start=True)
        else:
            self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        self.thread.start()

    def unacked(self):
        with self.lock:
            return len(self.pending)

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def run(self):
        # A steady rate; while MAX_INFLIGHT are unacknowledged it waits, and it never
        # bursts to catch up, so a stalled broker shows as a lower acknowledged rate.
        interval = 1.0 / self.rate
        next_t = time.monotonic()
        n = 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now < next_t:
                time.sleep(min(next_t - now, 0.05))
                continue
            if self.unacked() >= MAX_INFLIGHT:
                time.sleep(0.002)
                continue
            if now - next_t > 1.0:
                next_t = now
            n += 1
            t_pub = time.monotonic()
            info = self.client.publish(self.topic, '{"v": %d}' % n, qos=1)
            with self.lock:
                self.published = n
                t = self.early.pop(info.mid, None)
                if t is not None and t - t_pub < 30:
                    self.acked.append((n, t, t - t_pub))
                else:
                    self.pending[info.mid] = (n, t_pub)
            next_t += interval

    def finish(self, timeout):
        self.stop.set()
        self.thread.join(timeout=10)
        with self.lock:
            self.load_disconnects = self.disconnects
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.unacked() > 0:
            time.sleep(0.05)
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - best effort at the end
            pass
        self.client.loop_stop()

    def acked_values(self):
        with self.lock:
            return ([a[0] for a in self.acked], [a[1] for a in self.acked], sorted(v for v, _ in self.pending.values()),
                    [a[2] for a in self.acked])


class BulkPublisher:
    """8 KB QoS 1 messages on a plain (not ingest) topic: the slow subscribers' byte bounds."""

    def __init__(self, port, rate, size):
        self.client = paho.Client("soak-bulk", protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1.0)
        self.client.on_publish = self.on_publish
        self.lock = threading.Lock()
        self.acked = 0
        self.published = 0
        self.port, self.rate, self.size = port, rate, size
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="soak-bulk", daemon=True)

    def on_publish(self, client, userdata, mid):
        with self.lock:
            self.acked += 1

    def start(self):
        self.client.connect(HOST, self.port, keepalive=30, clean_start=True)
        self.client.loop_start()
        self.thread.start()

    def run(self):
        payload = b"b" * self.size
        while not self.stop.wait(1.0 / self.rate):
            with self.lock:
                if self.published - self.acked >= MAX_INFLIGHT:
                    continue
                self.published += 1
                n = self.published
            self.client.publish("soak/bulk/%d" % (n % 16), payload, qos=1)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass
        self.client.loop_stop()


# --------------------------------------------------------------------------------------
# Subscribers.

class FastSubscriber:
    """Paho MQTT 5, clean session, QoS 1 to devices/#, reads everything."""

    def __init__(self, port):
        self.client = paho.Client("soak-fast-sub", protocol=paho.MQTTv5)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1.0)
        self.client.on_connect = self.on_connect
        self.client.on_disconnect = self.on_disconnect
        self.client.on_message = self.on_message
        self.client.on_subscribe = self.on_subscribe
        self.lock = threading.Lock()
        self.received = collections.defaultdict(set)  # key -> values
        self.times = []  # monotonic time of each message
        self.count = 0
        self.duplicates = 0
        self.twice = []  # (key, value, DUP flag) of readings delivered again
        self.connects = 0
        self.disconnects = 0
        self.load_disconnects = None
        self.subscribed = threading.Event()
        self.port = port

    def on_connect(self, client, userdata, flags, rc, props=None):
        with self.lock:
            self.connects += 1
        client.subscribe("devices/#", qos=1)

    def on_subscribe(self, *args):
        self.subscribed.set()

    def on_disconnect(self, client, userdata, *rest):
        with self.lock:
            self.disconnects += 1

    def on_message(self, client, userdata, msg):
        now = time.monotonic()
        key = msg.topic.split("/")[1]
        try:
            v = int(json.loads(msg.payload)["v"])
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            self.count += 1
            self.times.append(now)
            if v in self.received[key]:
                self.duplicates += 1
                self.twice.append((key, v, bool(msg.dup)))
            else:
                self.received[key].add(v)

    def start(self):
        self.client.connect(HOST, self.port, keepalive=30, clean_start=True)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("fast subscriber: no SUBACK")

    def received_count(self):
        with self.lock:
            return self.count

    def finish(self):
        with self.lock:
            self.load_disconnects = self.disconnects
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass
        self.client.loop_stop()


def v5_or_311(proto):
    return "5.0" if proto == raw.V5 else "3.1.1"


def persistent_kw(proto, **extra):
    kw = {"clean": False}
    props = dict(extra.pop("properties", {}) or {})
    if proto == raw.V5:
        props[raw.SESSION_EXPIRY_INTERVAL] = SESSION_EXPIRY
    if props:
        kw["properties"] = props
    kw.update(extra)
    return kw


class SlowSubscriber(threading.Thread):
    """A persistent session subscribed to devices/# and soak/bulk/# that reads too slowly.
    mode "stall": reads a little, then stops reading its socket for 10-50 s (keep-alive 20),
    then looks at what arrived and reconnects; "never": never reads, reconnects every
    20-60 s; "crawl": reads at most ~30 messages/s with Receive Maximum 16."""

    def __init__(self, name, proto, mode, port, seed):
        super().__init__(name=name, daemon=True)
        self.client_id, self.proto, self.mode, self.port = name, proto, mode, port
        self.rng = random.Random(seed)
        self.received = 0
        self.dups = 0
        self.connects = 0
        self.session_lost = 0
        self.closed_by_broker = 0
        self.reasons = collections.Counter()  # DISCONNECT reason codes seen

    @property
    def label(self):
        return "%s (%s, %s)" % (self.client_id, v5_or_311(self.proto), self.mode)

    def connect(self):
        c = raw.Client(self.port, self.proto, timeout=10)
        props = {raw.RECEIVE_MAXIMUM: 16} if self.mode == "crawl" and self.proto == raw.V5 else None
        keepalive = 20 if self.mode == "stall" else 0
        ack = c.connect(self.client_id, expect_reason=None, keepalive=keepalive,
                        **persistent_kw(self.proto, properties=props))
        if ack.reason != 0:
            c.close()
            STATS.inc("slow.connack_refused")
            return None
        self.connects += 1
        if not ack.session_present:
            if self.connects > 1:
                self.session_lost += 1
            c.subscribe([("devices/#", raw.sub_options(1)), ("soak/bulk/#", raw.sub_options(1))])
        return c

    def handle(self, c, p):
        if p.type == raw.PUBLISH:
            self.received += 1
            if p.dup:
                self.dups += 1
            if p.qos:
                c.ack(p)
        elif p.type == raw.DISCONNECT:
            self.reasons[p.reason] += 1

    def read_for(self, c, seconds, max_rate=None):
        """Reads (and acknowledges) for `seconds`, at most max_rate messages/s. False when
        the broker closed the connection."""
        end = time.monotonic() + seconds
        budget_t = time.monotonic()
        while time.monotonic() < end and not STOP.is_set():
            if max_rate:
                budget_t += 1.0 / max_rate
                delay = budget_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                while c.pending:
                    self.handle(c, c.pending.pop(0))
                self.handle(c, c.recv_packet(timeout=0.2))
            except raw.Timeout:
                budget_t = time.monotonic()
            except (raw.ConnectionClosed, OSError):
                self.closed_by_broker += 1
                return False
            except raw.MqttError:
                STATS.inc("slow.protocol_surprise")
                return False
        return True

    def run(self):
        while not STOP.is_set():
            try:
                c = self.connect()
            except (OSError, raw.MqttError):
                STATS.inc("slow.connect_failed")
                c = None
            if c is None:
                sleep_unless_stopped(1.0)
                continue
            try:
                if self.mode == "stall":
                    if self.read_for(c, self.rng.uniform(3, 8), max_rate=50):
                        sleep_unless_stopped(self.rng.uniform(10, 50))  # not reading
                        self.read_for(c, 2.0)  # what came meanwhile (a DISCONNECT?)
                elif self.mode == "never":
                    sleep_unless_stopped(self.rng.uniform(20, 60))
                else:  # crawl
                    self.read_for(c, self.rng.uniform(40, 80), max_rate=30)
            finally:
                if self.rng.random() < 0.5:
                    c.disconnect()
                else:
                    c.close()
            sleep_unless_stopped(self.rng.uniform(0, 5))


# --------------------------------------------------------------------------------------
# Takeovers.

class Takeovers(threading.Thread):
    """Every `every` s, a second connection with the client id of a slow subscriber or a
    persistent publisher (same protocol, clean session 0 / same expiry), held 1-3 s without
    reading, then a normal DISCONNECT (the session stays)."""

    def __init__(self, port, targets, every, seed):
        super().__init__(name="takeovers", daemon=True)
        self.port, self.targets, self.every = port, targets, every
        self.rng = random.Random(seed)
        self.done = 0
        self.session_missing = 0
        self.taken_back = 0  # the original client took the session back while we held it
        self.failed = 0

    def run(self):
        i = 0
        while not sleep_unless_stopped(self.every):
            client_id, proto = self.targets[i % len(self.targets)]
            i += 1
            try:
                c = raw.Client(self.port, proto, timeout=10)
                ack = c.connect(client_id, expect_reason=None, keepalive=30, **persistent_kw(proto))
                if ack.reason != 0:
                    self.failed += 1
                    c.close()
                    continue
                self.done += 1
                if not ack.session_present:
                    self.session_missing += 1
                time.sleep(self.rng.uniform(1, 3))
                try:
                    # A DISCONNECT (5.0) or a close (3.1.1) means the original client took
                    # the session back while we held it; PUBLISHes (a subscriber's backlog)
                    # are left unacknowledged: the session keeps them.
                    while True:
                        p = c.recv_packet(timeout=0.05)
                        if p.type == raw.DISCONNECT:
                            self.taken_back += 1
                            break
                except raw.ConnectionClosed:
                    self.taken_back += 1
                except (raw.Timeout, OSError, raw.MqttError):
                    pass
                c.disconnect()
            except (OSError, raw.MqttError):
                self.failed += 1


# --------------------------------------------------------------------------------------
# Hostile clients. Each connection must be closed by the broker; outcomes are counted.

def publish_raw(topic, qos=0, payload=b"x", mid=1, proto=raw.V5, flags=None, props=b"\x00"):
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if proto == raw.V5:
        body += props
    body += payload
    return raw.fixed_header(raw.PUBLISH, (qos << 1) if flags is None else flags, body)


def connect_raw(proto, client_id=b"soak-bad", flags=0x02, header_flags=0, extra=b""):
    body = raw.encode_string("MQTT") + bytes([proto, flags]) + struct.pack("!H", 60)
    if proto == raw.V5:
        body += b"\x00"
    body += struct.pack("!H", len(client_id)) + client_id + extra
    return raw.fixed_header(raw.CONNECT, header_flags, body)


T = b"soak/hostile/t"
AFTER_CONNECT = {  # name -> builder(proto); each must close the connection
    "second_connect": lambda v: raw.gen_connect("soak-second", proto_ver=v),
    "publish_qos3": lambda v: publish_raw(T, flags=0x06, proto=v),
    "publish_wildcard": lambda v: publish_raw(b"soak/+/x", proto=v),
    "publish_invalid_utf8": lambda v: publish_raw(b"soak/\xc3\x28", proto=v),
    "publish_utf8_nul": lambda v: publish_raw(b"soak/a\x00b", proto=v),
    "publish_packet_id_zero": lambda v: publish_raw(T, qos=1, mid=0, proto=v),
    "publish_topic_length_overruns": lambda v: raw.fixed_header(raw.PUBLISH, 0, struct.pack("!H", 200) + b"t/x"),
    "subscribe_flags_zero": lambda v: raw.gen_subscribe(1, "a/b", v, flags=0x00),
    "subscribe_no_filters": lambda v: raw.gen_subscribe(1, [], v),
    "subscribe_qos3": lambda v: raw.gen_subscribe(1, [("a/b", 3)], v),
    "pingreq_with_body": lambda v: b"\xc0\x01\x00",
    "pubrel_flags_zero": lambda v: raw.fixed_header(6, 0, b"\x00\x01"),
    "reserved_type_0": lambda v: b"\x00\x00",
    "remaining_length_five_bytes": lambda v: b"\x30\xff\xff\xff\xff\x01",
    "publish_unknown_property_v5": lambda v: publish_raw(T, props=b"\x02\x7f\x00", proto=raw.V5),
    "publish_property_overruns_v5": lambda v: publish_raw(T, payload=b"", props=b"\x20", proto=raw.V5),
    "publish_unknown_alias_v5": lambda v: raw.gen_publish("", 0, b"x", properties={raw.TOPIC_ALIAS: 9}),
}
BEFORE_CONNECT = {
    "garbage_http": lambda v: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "first_packet_publish": lambda v: publish_raw(T, proto=v),
    "first_packet_pingreq": lambda v: b"\xc0\x00",
    "connect_reserved_flag": lambda v: connect_raw(v, flags=0x03),
    "connect_will_qos3": lambda v: connect_raw(v, flags=0x1E, extra=(
        (b"\x00" if v == raw.V5 else b"") + raw.encode_string("w") + raw.encode_string("p"))),
    "connect_invalid_utf8_id": lambda v: connect_raw(v, client_id=b"\xc3\x28"),
    "connect_remaining_length_five_bytes": lambda v: b"\x10\xff\xff\xff\xff\x01",
    "random_bytes": lambda v: bytes(random.getrandbits(8) for _ in range(random.randint(1, 200))),
}


def expect_closed(c, timeout):
    """'closed' (with the first non-PUBLISH packet's reason, if any) or 'open'."""
    try:
        got = [p for p in c.expect_closed(timeout=timeout) if p.type != raw.PUBLISH]
        return "closed", (got[0].name, got[0].reason) if got else None
    except raw.Timeout:
        c.close()
        return "open", None
    except (OSError, raw.MqttError):
        c.close()
        return "closed", None


class Hostile(threading.Thread):
    def __init__(self, kind, port, seed, interval):
        super().__init__(name="hostile-" + kind, daemon=True)
        self.kind, self.port, self.interval = kind, port, interval
        self.rng = random.Random(seed)
        self.outcomes = collections.Counter()  # (case, outcome)
        self.answers = collections.Counter()  # reason codes the broker sent before closing
        self.count = 0

    def note(self, case, outcome, answer=None):
        self.count += 1
        self.outcomes[(case, outcome)] += 1
        if answer:
            self.answers["%s 0x%02x" % answer] += 1

    def run(self):
        step = getattr(self, "step_" + self.kind)
        while not STOP.is_set():
            try:
                step()
            except (OSError, raw.MqttError) as e:
                self.note(self.kind, "error " + type(e).__name__)
            sleep_unless_stopped(self.interval)

    # Malformed and forbidden packets, before and after CONNECT.
    def step_malformed(self):
        proto = self.rng.choice((raw.V311, raw.V5))
        after = self.rng.random() < 0.6
        table = AFTER_CONNECT if after else BEFORE_CONNECT
        case = self.rng.choice(sorted(table))
        if case.endswith("_v5"):
            proto = raw.V5
        c = raw.Client(self.port, proto, timeout=10)
        try:
            if after:
                c.connect("soak-bad-%d" % self.rng.randrange(8), proto_ver=proto)
            c.send(table[case](proto))
        except (OSError, raw.MqttError):
            pass
        outcome, answer = expect_closed(c, 15)
        self.note("malformed", outcome, answer)

    # Oversized: a PUBLISH past mqtt.max_packet_size (header first, then 128 KB of it), or a
    # header claiming 256 MB and nothing after it.
    def step_oversized(self):
        proto = self.rng.choice((raw.V311, raw.V5))
        c = raw.Client(self.port, proto, timeout=10)
        case = self.rng.choice(("publish_2mb", "publish_256mb_header", "connect_200mb_header"))
        try:
            if case == "connect_200mb_header":
                c.send(b"\x10" + raw.encode_varint(200 * MiB))
            else:
                c.connect("soak-big-%d" % self.rng.randrange(4), proto_ver=proto)
                size = 2 * MiB if case == "publish_2mb" else 268435455
                c.send(b"\x30" + raw.encode_varint(size) + struct.pack("!H", len(T)) + T)
                if case == "publish_2mb":
                    c.send(b"o" * (128 * 1024))
        except (OSError, raw.MqttError):
            pass
        outcome, answer = expect_closed(c, 15)
        self.note(case, outcome, answer)

    # Deep topic filters: ~1 MB SUBSCRIBE of 15 filters of 32k levels (0x8F each), a filter
    # at the limit (granted, kept by the session), then a PUBLISH topic one level too deep
    # (the connection is closed, 0x90).
    def step_deep(self):
        proto = raw.V5 if self.rng.random() < 0.5 else raw.V311
        c = raw.Client(self.port, proto, timeout=10)
        try:
            c.connect("soak-deep-%d" % proto, **persistent_kw(proto))
            deep = [("soak/d%d/" % i + "a/" * 32000 + "#", raw.sub_options(1)) for i in range(15)]
            t0 = time.monotonic()
            ack = c.subscribe(deep)
            STATS.peak("deep_suback_s", time.monotonic() - t0)
            refused = sum(1 for r in ack.reasons if r >= 0x80)
            self.note("deep_subscribe", "refused %d/15" % refused)
            at_limit = "/".join(["soak"] + ["l"] * 127)
            ack = c.subscribe([(at_limit, raw.sub_options(1))])
            self.note("limit_subscribe", "granted" if ack.reasons[0] < 0x80 else "refused")
            c.send(raw.gen_publish(at_limit + "/x", 1, b"deep", mid=c.mid(), proto_ver=proto))
        except (OSError, raw.MqttError):
            pass
        outcome, answer = expect_closed(c, 15)
        self.note("deep_publish", outcome, answer)


class PartialPool(threading.Thread):
    """Keeps `size` connections each holding a packet that never finishes: a PUBLISH of
    100-900 KB sent in part (or dribbled 512 bytes a second), or a CONNECT cut short. The
    broker must close each (mqtt.partial_packet_timeout_ms, 10 s; the CONNECT timeout)."""

    def __init__(self, port, size, seed):
        super().__init__(name="hostile-partial", daemon=True)
        self.port, self.size = port, size
        self.rng = random.Random(seed)
        self.open = []  # dicts: client, started, kind, rest (dribble)
        self.closed_after = collections.defaultdict(list)  # kind -> seconds until closed
        self.not_closed = collections.Counter()
        self.started = collections.Counter()

    def add(self):
        kind = self.rng.choice(("publish_part", "publish_part", "publish_dribble", "connect_part"))
        proto = self.rng.choice((raw.V311, raw.V5))
        c = raw.Client(self.port, proto, timeout=10)
        entry = {"c": c, "t": time.monotonic(), "kind": kind, "rest": b""}
        if kind == "connect_part":
            c.send(raw.gen_connect("soak-partial-c", proto_ver=proto)[:6])
        else:
            c.connect("soak-partial-%d" % self.rng.randrange(1 << 30), proto_ver=proto, keepalive=0)
            data = raw.gen_publish("soak/partial", 0, b"p" * self.rng.randint(100_000, 900_000), proto_ver=proto)
            cut = int(len(data) * self.rng.uniform(0.2, 0.8))
            c.send(data[:cut] if kind == "publish_part" else data[:1024])
            entry["rest"] = data[1024:cut]
            entry["t"] = time.monotonic()
        self.started[kind] += 1
        self.open.append(entry)

    def check(self, e):
        """True while the connection is open."""
        c = e["c"]
        try:
            c.sock.setblocking(False)
            data = c.sock.recv(65536)
            if data == b"":
                return False
        except BlockingIOError:
            pass
        except OSError:
            return False
        finally:
            try:
                c.sock.setblocking(True)
            except OSError:
                pass
        if e["kind"] == "publish_dribble" and e["rest"]:
            try:
                c.sock.sendall(e["rest"][:512])
                e["rest"] = e["rest"][512:]
            except OSError:
                return False
        return True

    def run(self):
        while not STOP.is_set():
            while len(self.open) < self.size and not STOP.is_set():
                try:
                    self.add()
                except (OSError, raw.MqttError):
                    self.started["connect_failed"] += 1
                    break
            now = time.monotonic()
            keep = []
            for e in self.open:
                age = now - e["t"]
                if not self.check(e):
                    self.closed_after[e["kind"]].append(age)
                    e["c"].close()
                elif age > (45 if e["kind"] == "connect_part" else 25):
                    self.not_closed[e["kind"]] += 1
                    e["c"].close()
                else:
                    keep.append(e)
            self.open = keep
            sleep_unless_stopped(1.0)
        for e in self.open:
            e["c"].close()


class Flood(threading.Thread):
    """Every `every` s, a `burst` s burst of connect/CONNACK/DISCONNECT (clean sessions,
    3.1.1 and 5.0, at most ~300/s), TCP connects closed at once, CONNECTs with a will
    closed without DISCONNECT, and reconnects of 4 fixed persistent ids (takeovers)."""

    def __init__(self, port, every, burst, seed):
        super().__init__(name="hostile-flood", daemon=True)
        self.port, self.every, self.burst = port, every, burst
        self.rng = random.Random(seed)
        self.kinds = collections.Counter()
        self.failed = collections.Counter()
        self.latencies = []

    def one(self, n):
        r = self.rng.random()
        proto = raw.V5 if n % 2 else raw.V311
        t0 = time.monotonic()
        if r < 0.15:
            s = socket.create_connection((HOST, self.port), timeout=5)
            s.close()
            self.kinds["tcp_only"] += 1
            return
        c = raw.Client(self.port, proto, timeout=5)
        try:
            if r < 0.3:
                c.connect("soak-flood-will-%d" % n, proto_ver=proto, will_topic="soak/will/%d" % (n % 8),
                          will_payload=b"gone")
                self.kinds["will_abrupt_close"] += 1
            elif r < 0.4:
                c.connect("soak-flood-fixed-%d" % (n % 4), **persistent_kw(proto))
                c.disconnect()
                self.kinds["persistent_fixed"] += 1
            else:
                c.connect("soak-flood-%d" % n, proto_ver=proto)
                c.disconnect()
                self.kinds["connect_disconnect"] += 1
            self.latencies.append(time.monotonic() - t0)
        finally:
            c.close()

    def run(self):
        n = 0
        while not sleep_unless_stopped(self.every - self.burst):
            end = time.monotonic() + self.burst
            while time.monotonic() < end and not STOP.is_set():
                n += 1
                try:
                    self.one(n)
                except (OSError, raw.MqttError) as e:
                    self.failed[type(e).__name__] += 1
                time.sleep(1 / 300)


# --------------------------------------------------------------------------------------
# Sampling.

def scrape(http_port):
    text = urllib.request.urlopen("http://%s:%d/metrics" % (HOST, http_port), timeout=5).read().decode()
    base, labelled = {}, {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        full, value = line.rsplit(" ", 1)
        name = full.split("{", 1)[0]
        base[name] = base.get(name, 0.0) + float(value)
        if "{" in full:
            labelled[full] = float(value)
    return base, labelled


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


SAMPLED = ["sluice_bus_lag_messages", "sluice_bus_lag_seconds", "sluice_mqtt_slow_subscriber_disconnects_total",
           "sluice_mqtt_queued_bytes", "sluice_mqtt_connections", "sluice_mqtt_sockets_open", "sluice_mqtt_sessions",
           "sluice_mqtt_subscriptions", "sluice_mqtt_messages_dropped_total", "sluice_mqtt_messages_sent_total",
           "sluice_mqtt_messages_received_total", "sluice_mqtt_malformed_packets_total",
           "sluice_mqtt_protocol_errors_total", "sluice_mqtt_partial_packet_timeouts_total",
           "sluice_mqtt_input_budget_closes_total", "sluice_mqtt_topic_limit_refusals_total",
           "sluice_mqtt_session_takeovers_total", "sluice_mqtt_keep_alive_timeouts_total",
           "sluice_mqtt_connections_total", "sluice_ingest_appended_total", "sluice_ingest_failed_total",
           "sluice_ingest_paused_total", "sluice_ingest_resends_acknowledged_total", "sluice_pipeline_rows_total",
           "sluice_pipeline_dead_letters_total", "sluice_pipeline_duplicates_total", "sluice_bus_bytes",
           "sluice_pipeline_database_up", "sluice_mqtt_wills_published_total", "sluice_mqtt_sessions_expired_total"]


class Sampler(threading.Thread):
    def __init__(self, pid, http_port, data_dir, out_path, interval, t0, publishers, fast, slow, print_every):
        super().__init__(name="sampler", daemon=True)
        self.pid, self.http_port, self.data_dir, self.interval, self.t0 = pid, http_port, data_dir, interval, t0
        self.publishers, self.fast, self.slow = publishers, fast, slow
        self.out = open(out_path, "w", buffering=1)
        self.samples = []
        self.print_every = print_every
        self.scrape_errors = 0
        self.done = threading.Event()

    def sample(self):
        t = time.monotonic() - self.t0
        s = {"t": round(t, 2), "wall": time.time()}
        try:
            s.update(proc_status(self.pid))
        except OSError:
            s["VmRSS"] = None
        try:
            base, labelled = scrape(self.http_port)
            s["m"] = {k: base.get(k) for k in SAMPLED}
            s["dropped"] = {k.split('reason="', 1)[1].split('"', 1)[0]: v for k, v in labelled.items()
                            if k.startswith("sluice_mqtt_messages_dropped_total{")}
        except OSError:
            self.scrape_errors += 1
            s["m"] = None
        s["acked"] = {p.key: p.acked_count() for p in self.publishers}
        s["fast_received"] = self.fast.received_count()
        s["slow_received"] = {x.client_id: x.received for x in self.slow}
        s["state_bytes"] = dir_bytes(os.path.join(self.data_dir, "state"))
        s["wal_bytes"] = dir_bytes(os.path.join(self.data_dir, "wal"))
        self.samples.append(s)
        self.out.write(json.dumps(s) + "\n")
        return s

    def run(self):
        last_print = -1e9
        prev = None
        while not self.done.is_set():
            t_start = time.monotonic()
            s = self.sample()
            if t_start - last_print >= self.print_every:
                last_print = t_start
                acked = sum(s["acked"].values())
                rate = ""
                if prev is not None and s["t"] > prev["t"]:
                    rate = "%5.0f/s" % ((acked - sum(prev["acked"].values())) / (s["t"] - prev["t"]))
                m = s["m"] or {}
                print("  t=%4.0fs rss %6.1f MiB  acked %8d %s  fast %8d  lag %6s  slow-disc %4s  queued %6.1f MiB  "
                      "conns %4s  state %5.1f MiB" % (
                          s["t"], (s.get("VmRSS") or 0) / 1024, acked, rate, s["fast_received"],
                          fmt_int(m.get("sluice_bus_lag_messages")),
                          fmt_int(m.get("sluice_mqtt_slow_subscriber_disconnects_total")),
                          (m.get("sluice_mqtt_queued_bytes") or 0) / MiB, fmt_int(m.get("sluice_mqtt_connections")),
                          s["state_bytes"] / MiB), flush=True)
                prev = s
            self.done.wait(max(0.0, self.interval - (time.monotonic() - t_start)))


def fmt_int(v):
    return "-" if v is None else "{:,}".format(int(v))


# --------------------------------------------------------------------------------------
# Checks and report.

def count_in(times, lo, hi):
    return sum(1 for t in times if lo <= t < hi)


def exactly_once(db_url, publishers):
    stored = {}
    for key, value, count in rows(db_url, "SELECT d.key, t.value::bigint, count(*) "
                                          "FROM sluice_telemetry.telemetry t "
                                          "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1, 2"):
        stored[(key, int(value))] = int(count)
    per = []
    for p in publishers:
        acked, _, unacked, _ = p.acked_values()
        acked_set = set(acked)
        lost = sorted(v for v in acked_set if (p.key, v) not in stored)
        duplicated = sorted(v for (k, v), n in stored.items() if k == p.key and n > 1)
        extra = sorted(v for (k, v) in stored if k == p.key and v not in acked_set)
        per.append({"key": p.key, "label": p.label, "acked": len(acked_set), "ack_events": len(acked),
                    "stored": sum(n for (k, _), n in stored.items() if k == p.key),
                    "lost": lost, "duplicated": duplicated, "stored_unacked": extra, "never_acked": unacked,
                    "published": p.published})
    others = sorted({k for (k, _) in stored} - {p.key for p in publishers})
    return per, others


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=float(os.environ.get("SOAK_SECONDS", "600")))
    ap.add_argument("--out", required=True, help="directory for samples.jsonl, summary.json, sluice.log")
    ap.add_argument("--work", required=True, help="temp directory for the data dir and PostgreSQL")
    ap.add_argument("--publishers", type=int, default=6)
    ap.add_argument("--rate", type=float, default=50.0, help="readings/s per ingest publisher")
    ap.add_argument("--bulk-rate", type=float, default=20.0)
    ap.add_argument("--bulk-size", type=int, default=8192)
    ap.add_argument("--takeover-every", type=float, default=15.0)
    ap.add_argument("--partial-pool", type=int, default=16)
    ap.add_argument("--sample", type=float, default=float(os.environ.get("SOAK_SAMPLE_SECONDS", "5")))
    ap.add_argument("--config", default=None, help="sluice config file (default: built-in defaults)")
    ap.add_argument("--timescale", action="store_true", help="preload TimescaleDB (default: native layout)")
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.duration < 30:
        sys.exit("--duration must be at least 30 s")
    os.makedirs(args.out, exist_ok=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    pg_dir = os.path.join(args.work, "pg")
    data_dir = os.path.join(args.work, "data")
    os.makedirs(data_dir, exist_ok=True)
    log_path = os.path.join(args.out, "sluice.log")
    sluice = None
    pg_up = False
    publishers, slow, threads = [], [], []
    fast = bulk = sampler = None
    rc = 2
    try:
        db_url = pg_start(pg_dir, timescale=args.timescale)
        pg_up = True
        sluice = Sluice(data_dir, db_url, config_path=args.config, log_path=log_path, log_level="info")
        sluice.start()
        pid = sluice.proc.pid
        layout = ""
        try:
            deadline = time.time() + 30
            while time.time() < deadline and not layout:
                try:
                    layout = rows(db_url, "SELECT value FROM sluice_telemetry.settings WHERE key = 'layout'")[0][0]
                except (AssertionError, IndexError):
                    time.sleep(0.2)
        except Exception:  # noqa: BLE001 - informational only
            layout = "?"
        print("sluice pid %d, mqtt 127.0.0.1:%d, http %d, store layout %s, config %s" % (
            pid, sluice.port, sluice.http, layout or "?", args.config or "defaults"), flush=True)
        rss_idle = proc_status(pid)["VmRSS"]

        port = sluice.port
        rng = random.Random(args.seed)
        # Publishers: alternate 3.1.1 / 5.0; the first two clean sessions, the rest
        # persistent; the last two persistent ones are the takeover targets.
        for i in range(args.publishers):
            v5 = i % 2 == 1
            persistent = i >= 2
            taken_over = persistent and i >= args.publishers - 2 and args.publishers >= 4
            publishers.append(Publisher(i, port, v5, persistent, taken_over, args.rate))
        fast = FastSubscriber(port)
        fast.start()
        slow = [SlowSubscriber("soak-slow-stall", raw.V5, "stall", port, rng.random()),
                SlowSubscriber("soak-slow-never", raw.V311, "never", port, rng.random()),
                SlowSubscriber("soak-slow-crawl", raw.V5, "crawl", port, rng.random())]
        takeover_targets = [(s.client_id, s.proto) for s in slow] + [
            (p.client_id, raw.V5 if p.v5 else raw.V311) for p in publishers if p.taken_over]
        # Interleave subscriber and publisher targets.
        subs_t, pubs_t = takeover_targets[:len(slow)], takeover_targets[len(slow):]
        order = []
        for i in range(max(len(subs_t), len(pubs_t))):
            order += ([subs_t[i]] if i < len(subs_t) else []) + ([pubs_t[i]] if i < len(pubs_t) else [])
        takeovers = Takeovers(port, order, args.takeover_every, rng.random())
        hostiles = [Hostile("malformed", port, rng.random(), 0.25), Hostile("oversized", port, rng.random(), 2.0),
                    Hostile("deep", port, rng.random(), 10.0)]
        partial = PartialPool(port, args.partial_pool, rng.random())
        flood = Flood(port, 20.0, 4.0, rng.random())
        bulk = BulkPublisher(port, args.bulk_rate, args.bulk_size)

        t0 = time.monotonic()
        wall0 = time.time()
        print("load running for %.0f s (publishers %d x %.0f/s, bulk %d B x %.0f/s, 1 fast + %d slow subscribers, "
              "takeover every %.0f s, hostile clients)" % (
                  args.duration, len(publishers), args.rate, args.bulk_size, args.bulk_rate, len(slow),
                  args.takeover_every), flush=True)
        sampler = Sampler(pid, sluice.http, data_dir, os.path.join(args.out, "samples.jsonl"), args.sample, t0,
                          publishers, fast, slow, print_every=max(args.sample, 30.0))
        sampler.start()
        for p in publishers:
            p.start()
        bulk.start()
        threads = slow + [takeovers, partial, flood] + hostiles
        for t in threads:
            t.start()
        end = t0 + args.duration
        while time.monotonic() < end:
            time.sleep(min(1.0, end - time.monotonic()))
            if sluice.proc.poll() is not None:
                raise RuntimeError("sluice exited during the load with %s" % sluice.proc.returncode)
        t1 = time.monotonic()

        # Stop the load: hostile clients, takeovers and slow subscribers first, then the
        # publishers (waiting for their last acknowledgements).
        STOP.set()
        for t in threads:
            t.join(timeout=30)
        stuck = [t.name for t in threads if t.is_alive()]
        bulk.finish()
        for p in publishers:
            p.stop.set()
        for p in publishers:
            p.finish(timeout=60)
        t_quiet = time.monotonic()
        # The pipeline catches up (bounded).
        drain_s = None
        m = {}
        while time.monotonic() - t_quiet < args.drain_timeout:
            m = sluice.metrics()
            if m.get("sluice_bus_lag_messages") == 0:
                drain_s = time.monotonic() - t_quiet
                break
            time.sleep(0.5)
        # The fast subscriber has everything that was routed to it once it goes quiet.
        last, since = fast.received_count(), time.monotonic()
        while time.monotonic() - since < 3 and time.monotonic() - t_quiet < args.drain_timeout + 30:
            time.sleep(0.5)
            n = fast.received_count()
            if n != last:
                last, since = n, time.monotonic()
        sampler.done.set()
        sampler.join(timeout=30)
        final = sampler.sample()
        final_base, final_labelled = scrape(sluice.http)
        with open(os.path.join(args.out, "metrics-final.txt"), "w") as f:
            for k in sorted(final_labelled):
                f.write("%s %s\n" % (k, final_labelled[k]))
            for k in sorted(final_base):
                f.write("%s %s\n" % (k, final_base[k]))
        fast.finish()

        per, other_keys = exactly_once(db_url, publishers)

        # SIGTERM: a clean shutdown must exit 0.
        sluice.proc.send_signal(signal.SIGTERM)
        try:
            exit_rc = sluice.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            exit_rc = "still running 60 s after SIGTERM (killed)"
            sluice.proc.kill()
            sluice.proc.wait(timeout=10)
        sluice.proc = None

        rc = report(args, per, other_keys, publishers, fast, slow, takeovers, hostiles, partial, flood, bulk,
                    sampler.samples + [final], t0, t1, drain_s, m, final_base, rss_idle, exit_rc, stuck, layout,
                    wall0)
    except KeyboardInterrupt as e:
        print("interrupted (%s)" % e, file=sys.stderr)
        rc = 130
    except Exception as e:  # noqa: BLE001 - report and clean up
        import traceback
        traceback.print_exc()
        print("soak: %s" % e, file=sys.stderr)
        if sluice is not None:
            print(sluice.log_tail(), file=sys.stderr)
        rc = 2
    finally:
        STOP.set()
        for p in publishers:
            p.stop.set()
            try:
                p.client.loop_stop()
            except Exception:  # noqa: BLE001
                pass
        for x in (fast, bulk):
            if x is not None:
                try:
                    x.client.loop_stop()
                except Exception:  # noqa: BLE001
                    pass
        if sampler is not None:
            sampler.done.set()
        if sluice is not None and sluice.proc is not None and sluice.proc.poll() is None:
            sluice.proc.kill()  # by PID (Popen), never by name
            sluice.proc.wait(timeout=10)
        if pg_up:
            try:
                pg_stop(pg_dir)
            except Exception as e:  # noqa: BLE001
                print("pg_stop: %s" % e, file=sys.stderr)
    return rc


def report(args, per, other_keys, publishers, fast, slow, takeovers, hostiles, partial, flood, bulk, samples, t0,
           t1, drain_s, m_end, final_base, rss_idle, exit_rc, stuck, layout, wall0):
    D = t1 - t0
    load = [s for s in samples if s["t"] <= D + 0.5 and s.get("VmRSS")]
    first = [s["VmRSS"] for s in load if s["t"] < D / 2]
    second = [s["VmRSS"] for s in load if s["t"] >= D / 2]
    rss1, rss2 = max(first) / 1024, max(second) / 1024
    rss_end = samples[-1].get("VmRSS", 0) / 1024
    rss_limit = 1.5 * rss1 + 64
    # Least-squares slope of RSS over the second half, MiB per minute.
    pts = [(s["t"], s["VmRSS"] / 1024) for s in load if s["t"] >= D / 2]
    slope = 0.0
    if len(pts) >= 3:
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        den = sum((x - mx) ** 2 for x, _ in pts)
        slope = 60 * sum((x - mx) * (y - my) for x, y in pts) / den if den else 0.0
    hwm = max((s.get("VmHWM") or 0) for s in samples) / 1024

    third = D / 3
    good = [p for p in publishers if not p.taken_over]

    def rate(ps, lo, hi):
        return sum(count_in(p.acked_values()[1], t0 + lo, t0 + hi) for p in ps) / (hi - lo)
    good_first, good_last = rate(good, 0, third), rate(good, D - third, D)
    all_first, all_last = rate(publishers, 0, third), rate(publishers, D - third, D)
    ratio = good_last / good_first if good_first else 0.0

    def lat(ps, lo, hi):
        vals = sorted(d for p in ps for _, t, _, ds in [p.acked_values()] for t_ack, d in zip(t, ds)
                      if t0 + lo <= t_ack < t0 + hi)
        return 1000 * pct(vals, 50), 1000 * pct(vals, 99), 1000 * (vals[-1] if vals else 0)
    lat_first, lat_last = lat(good, 0, third), lat(good, D - third, D)
    fast_first = count_in(fast.times, t0, t0 + third) / third
    fast_last = count_in(fast.times, t1 - third, t1) / third

    lost = sum(len(x["lost"]) for x in per)
    dup = sum(len(x["duplicated"]) for x in per)
    extra = sum(len(x["stored_unacked"]) for x in per)
    never = sum(len(x["never_acked"]) for x in per)
    acked_total = sum(x["acked"] for x in per)
    stored_total = sum(x["stored"] for x in per)

    # The fast subscriber against the acknowledged readings.
    fast_missing = 0
    for p in publishers:
        got = fast.received.get(p.key, set())
        fast_missing += sum(1 for v in set(p.acked_values()[0]) if v not in got)

    def mx(name):
        vals = [s["m"].get(name) for s in samples if s.get("m") and s["m"].get(name) is not None]
        return max(vals) if vals else None

    stats, peaks = STATS.snapshot()
    checks = [
        ("every acknowledged reading in PostgreSQL exactly once", lost == 0 and dup == 0 and acked_total > 0,
         "%s acknowledged, %d lost, %d duplicated" % ("{:,}".format(acked_total), lost, dup)),
        ("RSS bounded (max 2nd half <= 1.5 x max 1st half + 64 MiB)", rss2 <= rss_limit,
         "%.1f MiB vs %.1f MiB (limit %.1f MiB)" % (rss2, rss1, rss_limit)),
        ("well-behaved ingest holds (last third >= 70% of first)", ratio >= 0.7,
         "%.1f/s vs %.1f/s = %.2f" % (good_last, good_first, ratio)),
    ]
    hostile_open = sum(n for h in hostiles for (case, outcome), n in h.outcomes.items() if outcome == "open")
    observations = [
        ("fast subscriber got every acknowledged reading",
         "ok" if fast_missing == 0 else ("WARN" if fast.load_disconnects == 0 else "n/a"),
         "%d missing, %d disconnects%s" % (
             fast_missing, fast.load_disconnects,
             " (a clean session loses its queue when disconnected)" if fast.load_disconnects else "")),
        ("hostile connections closed by the broker",
         "ok" if hostile_open == 0 and not partial.not_closed else "WARN",
         "%d malformed/oversized/deep left open; partial packets not closed in time: %s" % (
             hostile_open, dict(partial.not_closed) or 0)),
        ("sluice exits 0 on SIGTERM", "ok" if exit_rc == 0 else "WARN", "exit %s" % exit_rc),
        ("pipeline caught up (bus lag 0)", "ok" if drain_s is not None else "WARN",
         "%.1f s after the load stopped" % drain_s if drain_s is not None else
         "lag %s after %.0f s" % (m_end.get("sluice_bus_lag_messages"), args.drain_timeout)),
    ]
    if stuck:
        observations.append(("load threads stopped", "WARN", "still running: %s" % ", ".join(stuck)))
    if other_keys:
        observations.append(("no other devices stored", "WARN", ", ".join(other_keys[:10])))

    # ---- print
    print()
    print("== per publisher ==")
    for x in per:
        print("  %-42s published %7d  acked %7d  stored %7d  lost %d  duplicated %d  stored-unacked %d  "
              "never-acked %d" % (x["label"], x["published"], x["acked"], x["stored"], len(x["lost"]),
                                  len(x["duplicated"]), len(x["stored_unacked"]), len(x["never_acked"])))
        if x["lost"]:
            print("    lost (first 20): %s" % x["lost"][:20])
        if x["duplicated"]:
            print("    duplicated (first 20): %s" % x["duplicated"][:20])
    for p in publishers:
        print("  %-42s connects %d, disconnects during the load %d, persistent session missing on reconnect %d" % (
            p.key, p.connects, p.load_disconnects or 0, p.session_lost))
    print("== subscribers ==")
    print("  soak-fast-sub (5.0, clean)   received %d (%d twice: QoS 1 is at least once), connects %d, disconnects "
          "during the load %d" % (fast.count, fast.duplicates, fast.connects, fast.load_disconnects))
    if fast.twice:
        print("    delivered twice (key, value, DUP flag of the second copy; first 10): %s" % fast.twice[:10])
    for s in slow:
        print("  %-28s received %d (%d with DUP), connects %d, session missing %d, closed by broker %d, "
              "DISCONNECT reasons %s" % (s.label, s.received, s.dups, s.connects, s.session_lost,
                                         s.closed_by_broker, {"0x%02x" % k: v for k, v in s.reasons.items()}))
    print("== takeovers ==")
    print("  %d done (%d found no session, %d taken back by the original client while held, %d failed)" % (
        takeovers.done, takeovers.session_missing, takeovers.taken_back, takeovers.failed))
    print("== hostile ==")
    for h in hostiles:
        oc = collections.Counter()
        for (case, outcome), n in h.outcomes.items():
            oc["%s: %s" % (case, outcome)] += n
        print("  %-10s %d actions: %s" % (h.kind, h.count, dict(sorted(oc.items()))))
        if h.answers:
            print("  %-10s broker answers before closing: %s" % ("", dict(sorted(h.answers.items()))))
    closed = {k: (len(v), max(v)) for k, v in partial.closed_after.items()}
    print("  partial    started %s; closed by broker (count, slowest s) %s; not closed in time %s" % (
        dict(partial.started), {k: (n, round(t, 1)) for k, (n, t) in closed.items()}, dict(partial.not_closed)))
    lat = sorted(flood.latencies)
    print("  flood      %s, failed %s, connect+CONNACK p50 %.1f ms p99 %.1f ms max %.1f ms" % (
        dict(flood.kinds), dict(flood.failed) or 0, 1000 * pct(lat, 50), 1000 * pct(lat, 99),
        1000 * (lat[-1] if lat else 0)))
    if peaks.get("deep_suback_s") is not None:
        print("  deep       slowest SUBACK to a ~1 MB SUBSCRIBE of 32k-level filters: %.2f s" % peaks["deep_suback_s"])
    if stats:
        print("  other events: %s" % stats)
    print("== broker ==")
    print("  RSS idle %.1f MiB; max first half %.1f MiB, second half %.1f MiB, at the end %.1f MiB, "
          "VmHWM %.1f MiB; slope over the second half %+.2f MiB/min" % (
              rss_idle / 1024, rss1, rss2, rss_end, hwm, slope))
    fm = final_base
    drops = samples[-1].get("dropped") or {}
    print("  max bus lag %s messages, max queued %.1f MiB, max connections %s, slow-subscriber disconnects %s, "
          "takeovers %s" % (fmt_int(mx("sluice_bus_lag_messages")), (mx("sluice_mqtt_queued_bytes") or 0) / MiB,
                            fmt_int(mx("sluice_mqtt_connections")),
                            fmt_int(fm.get("sluice_mqtt_slow_subscriber_disconnects_total")),
                            fmt_int(fm.get("sluice_mqtt_session_takeovers_total"))))
    print("  dropped %s; malformed %s, protocol errors %s, partial-packet timeouts %s, input-budget closes %s, "
          "topic-limit refusals %s, keep-alive timeouts %s, connections total %s" % (
              {k: int(v) for k, v in drops.items()}, fmt_int(fm.get("sluice_mqtt_malformed_packets_total")),
              fmt_int(fm.get("sluice_mqtt_protocol_errors_total")),
              fmt_int(fm.get("sluice_mqtt_partial_packet_timeouts_total")),
              fmt_int(fm.get("sluice_mqtt_input_budget_closes_total")),
              fmt_int(fm.get("sluice_mqtt_topic_limit_refusals_total")),
              fmt_int(fm.get("sluice_mqtt_keep_alive_timeouts_total")),
              fmt_int(fm.get("sluice_mqtt_connections_total"))))
    print("  ingest appended %s, failed %s, paused %s, resends acknowledged without logging %s; pipeline rows %s, "
          "dead letters %s; state dir %.1f MiB (max %.1f), WAL %.1f MiB; broker CPU %.0f s" % (
              fmt_int(fm.get("sluice_ingest_appended_total")), fmt_int(fm.get("sluice_ingest_failed_total")),
              fmt_int(fm.get("sluice_ingest_paused_total")),
              fmt_int(fm.get("sluice_ingest_resends_acknowledged_total")),
              fmt_int(fm.get("sluice_pipeline_rows_total")), fmt_int(fm.get("sluice_pipeline_dead_letters_total")),
              samples[-1]["state_bytes"] / MiB, max(s["state_bytes"] for s in samples) / MiB,
              samples[-1]["wal_bytes"] / MiB, samples[-1].get("cpu_s", 0)))

    print()
    print("== checks ==")
    for name, ok, detail in checks:
        print("  %-4s %s: %s" % ("PASS" if ok else "FAIL", name, detail))
    for name, state, detail in observations:
        print("  %-4s %s: %s" % (state, name, detail))

    taken = [p for p in publishers if p.taken_over]
    lines = [
        "| measure | result |",
        "| --- | ---: |",
        "| load | %.0f s: %d ingest publishers x %.0f readings/s (%d never taken over), bulk %d B x %.0f/s, "
        "1 fast + %d slow subscribers, takeover every %.0f s, hostile clients |" % (
            D, len(publishers), args.rate, len(good), args.bulk_size, args.bulk_rate, len(slow), args.takeover_every),
        "| readings acknowledged / stored in PostgreSQL | {:,} / {:,} |".format(acked_total, stored_total),
        "| **lost / duplicated** (stored, never acked) | **%d / %d** (%d) |" % (lost, dup, extra),
        "| RSS before the load / max 1st half / max 2nd half / end "
        "| %.0f / %.0f / **%.0f** / %.0f MiB (limit %.0f) |" % (rss_idle / 1024, rss1, rss2, rss_end, rss_limit),
        "| RSS slope over the 2nd half | %+.2f MiB/min |" % slope,
        "| well-behaved ingest acked/s, first / last third | %.1f / %.1f (**%.2f**) |" % (
            good_first, good_last, ratio),
        "| well-behaved ack latency p50 / p99 / max, first third | %.1f / %.1f / %.0f ms |" % lat_first,
        "| well-behaved ack latency p50 / p99 / max, last third | %.1f / %.1f / %.0f ms |" % lat_last,
        "| all ingest acked/s (incl. %d taken over), first / last third | %.1f / %.1f |" % (
            len(taken), all_first, all_last),
        "| fast subscriber msgs/s first / last third; missing; delivered twice; disconnects "
        "| %.1f / %.1f; %d; %d; %d |" % (fast_first, fast_last, fast_missing, fast.duplicates, fast.load_disconnects),
        "| slow subscribers %s: received; reconnects; 0x97 seen | %s; %s; %s |" % (
            " / ".join(s.mode for s in slow),
            " / ".join(str(s.received) for s in slow), " / ".join(str(s.connects - 1) for s in slow),
            " / ".join(str(s.reasons.get(0x97, 0)) for s in slow)),
        "| `slow_subscriber_disconnects_total`; dropped (queue_full / global_quota) | %s; %s / %s |" % (
            fmt_int(fm.get("sluice_mqtt_slow_subscriber_disconnects_total")), fmt_int(drops.get("queue_full", 0)),
            fmt_int(drops.get("global_quota", 0))),
        "| max `queued_bytes` / max bus lag / drain after load | %.1f MiB / %s msgs / %s |" % (
            (mx("sluice_mqtt_queued_bytes") or 0) / MiB, fmt_int(mx("sluice_bus_lag_messages")),
            "%.1f s" % drain_s if drain_s is not None else "not drained"),
        "| takeovers (`session_takeovers_total`); resends acked without logging | %s; %s |" % (
            fmt_int(fm.get("sluice_mqtt_session_takeovers_total")),
            fmt_int(fm.get("sluice_ingest_resends_acknowledged_total"))),
        "| hostile: malformed / oversized / deep / partial / flood connections | %d / %d / %d / %d / %d |" % (
            hostiles[0].count, hostiles[1].count, hostiles[2].count, sum(partial.started.values()),
            sum(flood.kinds.values())),
        "| hostile left open / partial not closed in time | %d / %d |" % (
            hostile_open, sum(partial.not_closed.values())),
        "| `malformed_packets` / `partial_packet_timeouts` / `topic_limit_refusals` | %s / %s / %s |" % (
            fmt_int(fm.get("sluice_mqtt_malformed_packets_total")),
            fmt_int(fm.get("sluice_mqtt_partial_packet_timeouts_total")),
            fmt_int(fm.get("sluice_mqtt_topic_limit_refusals_total"))),
        "| broker CPU; state dir at end; exit on SIGTERM | %.0f s; %.1f MiB; %s |" % (
            samples[-1].get("cpu_s", 0), samples[-1]["state_bytes"] / MiB, exit_rc),
        "| checks | %s |" % ", ".join("%s %s" % (["FAIL", "PASS"][ok], n.split(" (")[0]) for n, ok, _ in checks),
    ]
    print()
    print("== summary (for bench/README.md) ==")
    print("\n".join(lines))
    summary = {"duration_s": D, "started": wall0, "layout": layout, "acked": acked_total, "stored": stored_total,
               "lost": lost, "duplicated": dup, "stored_unacked": extra, "never_acked": never,
               "rss_idle_mib": rss_idle / 1024, "rss_first_half_max_mib": rss1, "rss_second_half_max_mib": rss2,
               "rss_end_mib": rss_end, "rss_limit_mib": rss_limit, "rss_slope_mib_per_min": slope,
               "good_rate_first": good_first, "good_rate_last": good_last, "good_ratio": ratio,
               "fast_missing": fast_missing, "fast_disconnects": fast.load_disconnects, "drain_s": drain_s,
               "exit_on_sigterm": exit_rc, "checks": [(n, ok, d) for n, ok, d in checks],
               "observations": observations, "per_publisher": [
                   {k: (len(v) if isinstance(v, list) else v) for k, v in x.items()} for x in per],
               "table": lines}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0 if all(ok for _, ok, _ in checks) else 1


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p / 100))]


if __name__ == "__main__":
    sys.exit(main())
