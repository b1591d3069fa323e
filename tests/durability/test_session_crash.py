# SPDX-License-Identifier: Apache-2.0
#
# Promise 4 under kill -9: persistent sessions and retained messages survive a crash.
# Two persistent subscribers (MQTT 5 with session expiry 300, MQTT 3.1.1 with clean
# session 0) hold QoS 1 subscriptions to a plain topic and to devices/+/telemetry, while
# QoS 1 publishers send numbered messages to both and the broker is killed with SIGKILL at
# random moments (12 times). After each restart everyone reconnects (publishers resend
# what was not acknowledged); subscribers are sometimes offline for a whole round or come
# late, so messages queue in their sessions across kills. At the end every message a
# publisher got a PUBACK for must have reached each subscriber at least once (QoS 1: DUP
# retransmissions and duplicates allowed), the sessions must never have been lost
# (CONNACK session present), and a retained message set before a kill must still be
# delivered after the restart.
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import (V311, V5, ConnectionClosed, MqttError, Timeout, Client, gen_publish, gen_puback,  # noqa: E402
                      PUBACK, PUBLISH, SESSION_EXPIRY_INTERVAL)

from sluice_process import Sluice  # noqa: E402

PLAIN_FILTER = "plain/crash/#"
INGEST_FILTER = "devices/+/telemetry"
RETAINED_TOPIC = "retained/crash/state"


class Publisher:
    """Sends QoS 1 messages 'p<k>-<seq>' with a window in flight; after a reconnect it
    resends what was never acknowledged, as an MQTT client would."""

    def __init__(self, index, proto, topic):
        self.index = index
        self.proto = proto
        self.topic = topic
        self.next_seq = 0
        self.acked = set()
        self.sent = set()
        self.sent_count = {}
        self.window = 8

    def run(self, port, stop, rate, only_pending=False):
        try:
            c = Client(port, self.proto, timeout=2)
            c.connect("sc-pub-%d" % self.index)
        except (OSError, MqttError):
            return
        inflight = {}
        pending = sorted(self.sent - self.acked)
        mid = 0
        try:
            while not stop.is_set():
                if only_pending and not pending and not inflight:
                    return
                while len(inflight) < self.window and not stop.is_set() and (pending or not only_pending):
                    if pending:
                        seq = pending.pop(0)
                    else:
                        seq = self.next_seq
                        self.next_seq += 1
                    mid = mid % 65535 + 1
                    c.send(gen_publish(self.topic, 1, "p%d-%d" % (self.index, seq), mid=mid, proto_ver=self.proto))
                    self.sent.add(seq)
                    self.sent_count[seq] = self.sent_count.get(seq, 0) + 1
                    inflight[mid] = seq
                    time.sleep(rate)
                try:
                    p = c.recv_packet(timeout=0.5)
                except Timeout:
                    continue
                if p.type == PUBACK and p.reason in (0, None):
                    seq = inflight.pop(p.mid, None)
                    if seq is not None:
                        self.acked.add(seq)
        except (OSError, MqttError, ConnectionClosed):
            pass
        finally:
            c.close()

    def drain(self, port, timeout):
        """A final connection that resends everything unacknowledged until all is acknowledged."""
        deadline = time.time() + timeout
        while self.sent - self.acked and time.time() < deadline:
            stop = threading.Event()
            t = threading.Thread(target=self.run, args=(port, stop, 0, True))
            t.start()
            t.join(timeout=max(0.1, deadline - time.time()))
            stop.set()
            t.join(timeout=10)


class Subscriber:
    """A persistent session that records every payload it receives and acknowledges it."""

    def __init__(self, client_id, proto):
        self.client_id = client_id
        self.proto = proto
        self.received = {}    # payload -> times received
        self.fresh = {}       # payload -> times received with DUP 0
        self.dups = 0
        self.connects = 0
        self.session_lost = []
        self.errors = []

    def connect(self, port):
        c = Client(port, self.proto, timeout=3)
        if self.proto == V5:
            ack = c.connect(self.client_id, clean=False, properties={SESSION_EXPIRY_INTERVAL: 300})
        else:
            ack = c.connect(self.client_id, clean=False)
        self.connects += 1
        return c, ack

    def setup(self, port):
        """First connection: subscribe, then disconnect cleanly (the session persists)."""
        c, _ = self.connect(port)
        ack = c.subscribe([(PLAIN_FILTER, 1), (INGEST_FILTER, 1)])
        assert ack.reasons == [1, 1], ack
        c.disconnect()

    def run(self, port, stop, delay):
        if delay and stop.wait(delay):
            return
        try:
            c, ack = self.connect(port)
        except (OSError, MqttError):
            return
        if not ack.session_present:
            self.session_lost.append(self.connects)
            # Keep collecting (so the final count shows what was lost), but resubscribe.
            try:
                c.subscribe([(PLAIN_FILTER, 1), (INGEST_FILTER, 1)])
            except (OSError, MqttError):
                c.close()
                return
        try:
            while not stop.is_set():
                try:
                    p = c.recv_packet(timeout=0.3)
                except Timeout:
                    continue
                if p.type != PUBLISH:
                    continue
                key = p.payload.decode()
                self.received[key] = self.received.get(key, 0) + 1
                if p.dup:
                    self.dups += 1
                else:
                    self.fresh[key] = self.fresh.get(key, 0) + 1
                if p.qos == 1:
                    c.send(gen_puback(p.mid, self.proto))
        except (OSError, MqttError, ConnectionClosed):
            pass
        finally:
            c.close()


def set_retained(port, value):
    c = Client(port, V311, timeout=3)
    try:
        c.connect("sc-retainer")
        c.publish(RETAINED_TOPIC, value, qos=1, retain=True)
        c.disconnect()
    finally:
        c.close()


def read_retained(port):
    c = Client(port, V5, timeout=3)
    try:
        c.connect("sc-retained-reader", clean=True)
        c.subscribe([(RETAINED_TOPIC, 1)])
        p = c.receive(timeout=3)
        assert p.retain, "retained message delivered without the retain flag: %r" % p
        c.disconnect()
        return p.payload.decode()
    finally:
        c.close()


def test_persistent_sessions_and_retained_survive_kill_9():
    rng = random.Random(int(os.environ.get("SLUICE_TEST_SEED", "4242")))
    with tempfile.TemporaryDirectory(prefix="sluice-sc-") as data_dir:
        sluice = Sluice(data_dir)
        subscribers = [Subscriber("sc-sub-v5", V5), Subscriber("sc-sub-v311", V311)]
        publishers = [Publisher(0, V5, "plain/crash/p0"), Publisher(1, V311, "devices/sc-dev-1/telemetry"),
                      Publisher(2, V311, "plain/crash/p2"), Publisher(3, V5, "devices/sc-dev-3/telemetry")]
        kills = 0
        retained_value = None
        retained_checks = 0
        offline_rounds = {s.client_id: 0 for s in subscribers}
        try:
            sluice.start()
            for s in subscribers:
                s.setup(sluice.port)
            # A clean restart, so the subscriptions are certainly on disk before the kills start
            # (a subscription made within the journal's last ~10 ms may be lost to a kill -9).
            sluice.stop()

            for round_ in range(12):
                sluice.start()
                if retained_value is not None:
                    got = read_retained(sluice.port)
                    assert got == retained_value, "retained after kill -9: %r, expected %r" % (got, retained_value)
                    retained_checks += 1
                if round_ in (0, 5, 9):
                    retained_value = "ret-%d" % round_
                    set_retained(sluice.port, retained_value)
                stop = threading.Event()
                threads = []
                for i, s in enumerate(subscribers):
                    mode = rng.random()
                    if mode < 0.25 or round_ in (2 + i, 6 + i):
                        offline_rounds[s.client_id] += 1  # offline for the whole round
                        continue
                    delay = rng.uniform(0.1, 0.5) if mode < 0.45 else 0
                    threads.append(threading.Thread(target=s.run, args=(sluice.port, stop, delay)))
                for p in publishers:
                    threads.append(threading.Thread(target=p.run, args=(sluice.port, stop, 0.002)))
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.3, 1.0))
                sluice.kill()
                kills += 1
                stop.set()
                for t in threads:
                    t.join(timeout=15)
                    assert not t.is_alive(), "a client thread did not stop"

            # Final clean run: publishers get everything acknowledged, subscribers drain.
            sluice.start()
            got = read_retained(sluice.port)
            assert got == retained_value, "retained after kill -9: %r, expected %r" % (got, retained_value)
            retained_checks += 1
            stop = threading.Event()
            sub_threads = [threading.Thread(target=s.run, args=(sluice.port, stop, 0)) for s in subscribers]
            for t in sub_threads:
                t.start()
            for p in publishers:
                p.drain(sluice.port, 20)
            expected = set()
            for p in publishers:
                expected |= {"p%d-%d" % (p.index, seq) for seq in p.acked}
            deadline = time.time() + 30
            while time.time() < deadline:
                if all(expected <= set(s.received) for s in subscribers):
                    break
                time.sleep(0.1)
            stop.set()
            for t in sub_threads:
                t.join(timeout=15)
            sluice.stop()

            assert kills >= 10
            assert retained_checks >= 10
            assert len(expected) > 1000, "too little traffic to mean anything: %d acknowledged" % len(expected)
            for s in subscribers:
                assert offline_rounds[s.client_id] >= 2
                assert not s.session_lost, "%s: session lost (CONNACK session present 0) on connection(s) %r" % (
                    s.client_id, s.session_lost)
                missing = expected - set(s.received)
                assert not missing, "%s never received %d acknowledged messages, e.g. %r" % (
                    s.client_id, len(missing), sorted(missing)[:10])
                unsent = set(s.received) - {"p%d-%d" % (p.index, q) for p in publishers for q in p.sent}
                assert not unsent, "%s received messages nobody sent: %r" % (s.client_id, sorted(unsent)[:10])
            # Information only: redeliveries without the DUP flag beyond the publishers' own
            # resends (a kill -9 may lose the journal's "already sent" mark, which is allowed).
            sent_count = {"p%d-%d" % (p.index, q): n for p in publishers for q, n in p.sent_count.items()}
            print("%d kills; %d acknowledged messages; subscribers: %s; offline rounds %r" % (
                kills, len(expected),
                ", ".join("%s got %d distinct (%d deliveries, %d with DUP, %d extra without DUP)" % (
                    s.client_id, len(s.received), sum(s.received.values()), s.dups,
                    sum(max(0, n - sent_count.get(k, 0)) for k, n in s.fresh.items())) for s in subscribers),
                offline_rounds))
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            sluice.kill()
