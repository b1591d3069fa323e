# SPDX-License-Identifier: Apache-2.0
#
# Issue 11, "back-pressure creates mass duplicates": with PostgreSQL stopped and the WAL at
# its quota (over_quota = "pause"), 25 KB QoS 1 messages from an MQTT 3.1.1 and a 5.0 client,
# each with a window of 48 messages in flight (1.2 MB, more than the 1/8 slack between the
# quota and the hard limit). Before the ingest byte budget, what was already read did not
# fit: appends failed past the hard limit, the broker closed the 3.1.1 connection without
# PUBACKs, the client resent its window and acknowledged readings were stored several
# times. Now: no append fails (sluice_ingest_failed_total 0), no connection is closed, and
# after the database returns the rows equal the acknowledged readings, each exactly once.
# While held at the quota, sluice_bus_lag_seconds keeps growing.
# The payloads carry no "seq", so the pipeline cannot hide a duplicate.
#
# The clients behave like Paho: on a lost connection they reconnect (persistent session)
# and resend their unacknowledged window with DUP=1, so the duplicates the bug produced
# would show up as rows.
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, V5, ConnectionClosed, MqttError, Timeout, Client, gen_publish, PUBACK  # noqa: E402

from sluice_process import PG_STOP, pg_start, pg_stop, psql, Sluice, wait_for  # noqa: E402

QUOTA_BYTES = 1 << 20
SEGMENT_BYTES = 128 << 10
PAYLOAD_BYTES = 25000
WINDOW = 48
CONFIG = """
[wal]
quota_bytes = %d
segment_bytes = %d

[ingest]
over_quota = "pause"
""" % (QUOTA_BYTES, SEGMENT_BYTES)


def payload(n):
    # {"v": n} padded with JSON whitespace to 25 KB: one reading, value n, no sequence number.
    head = '{"v": %d' % n
    return (head + " " * (PAYLOAD_BYTES - len(head) - 1) + "}").encode()


class Device:
    def __init__(self, index, proto):
        self.index = index
        self.proto = proto
        self.key = "bp-%d" % index
        self.client_id = "bp-client-%d" % index
        self.topic = "devices/%s/telemetry" % self.key
        self.lock = threading.Lock()
        self.sent = set()
        self.acked = set()
        self.inflight = {}  # mid -> n
        self.closures = []  # what ended a connection (never expected)
        self.refusals = []  # negative PUBACKs (never expected)
        self.stop = threading.Event()
        self.port = None
        self.client = None
        self.thread = None

    def connect(self, clean):
        c = Client(self.port, self.proto, timeout=10)
        props = None if self.proto == V311 else {0x11: 3600}  # Session Expiry Interval
        c.connect(self.client_id, clean=clean, keepalive=120, properties=props)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
        self.client = c

    def start(self, port):
        self.port = port
        self.connect(clean=True)
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def pending(self):
        with self.lock:
            return len(self.inflight)

    def send(self, data):
        self.client.sock.settimeout(120)  # a paused broker does not read: block, do not give up
        self.client.send(data)

    def run(self):
        n = 0
        mid = 0
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                while True:
                    with self.lock:
                        room = not self.stop.is_set() and len(self.inflight) < WINDOW
                        if not self.inflight and self.stop.is_set():
                            return
                    if room:
                        n += 1
                        mid = mid % 65535 + 1
                        with self.lock:
                            self.sent.add(n)
                            self.inflight[mid] = n
                        self.send(gen_publish(self.topic, 1, payload(n), mid=mid, proto_ver=self.proto))
                        continue
                    try:
                        p = self.client.recv_packet(timeout=0.5)
                    except Timeout:
                        continue
                    if p.type != PUBACK:
                        continue
                    with self.lock:
                        v = self.inflight.pop(p.mid, None)
                        if p.reason not in (0, None):
                            self.refusals.append((p.mid, p.reason))
                        elif v is not None:
                            self.acked.add(v)
            except (OSError, MqttError, ConnectionClosed) as e:
                # What a Paho client does: reconnect to its session, resend the window with DUP=1.
                with self.lock:
                    self.closures.append(repr(e))
                self.client.close()
                time.sleep(0.5)
                try:
                    self.connect(clean=False)
                    with self.lock:
                        window = sorted(self.inflight.items())
                    for m, v in window:
                        self.send(gen_publish(self.topic, 1, payload(v), mid=m, dup=True, proto_ver=self.proto))
                except (OSError, MqttError, ConnectionClosed):
                    pass

    def close(self):
        if self.client is not None:
            self.client.close()


def test_large_messages_at_quota_no_failure_no_duplicate():
    with tempfile.TemporaryDirectory(prefix="sluice-bp-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        config_path = os.path.join(tmp, "sluice.toml")
        with open(config_path, "w") as f:
            f.write(CONFIG)
        db_url = pg_start(pg_dir)
        sluice = Sluice(data_dir, db_url, config_path=config_path, log_path=os.path.join(tmp, "sluice.log"),
                        log_level="info")
        devices = [Device(0, V311), Device(1, V5)]
        try:
            sluice.start()
            wait_for(lambda: sluice.metrics().get("sluice_pipeline_database_up") == 1, 30, "database up")
            pg_stop(pg_dir)
            for d in devices:
                d.start(sluice.port)

            # Publish until the quota stops acknowledgements: none for 3 s with messages in flight.
            last_total, last_change = -1, time.time()
            deadline = time.time() + 90
            while time.time() < deadline:
                total = sum(d.acked_count() for d in devices)
                if total != last_total:
                    last_total, last_change = total, time.time()
                elif time.time() - last_change > 3 and all(d.pending() > 0 for d in devices):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("acknowledgements never stalled (acked %d)" % last_total)
            m = sluice.metrics()
            assert m.get("sluice_bus_over_quota") == 1, m
            assert m.get("sluice_ingest_failed_total") == 0, m
            assert m.get("sluice_mqtt_connections") == len(devices), m
            for d in devices:
                assert d.closures == [] and d.refusals == [], (d.index, d.closures, d.refusals, m)
            stalled = [d.acked_count() for d in devices]
            # At the quota nothing new arrives, and the lag in seconds still grows (it is the
            # age of the oldest unstored reading).
            time.sleep(2)
            later = sluice.metrics()
            assert later["sluice_bus_lag_seconds"] >= m["sluice_bus_lag_seconds"] + 1.5, (m, later)
            print("stalled at %r acknowledged; bus %d bytes" % (stalled, m.get("sluice_bus_bytes", 0)))

            pg_start(pg_dir)
            wait_for(lambda: all(d.acked_count() > s + 2 * WINDOW for d, s in zip(devices, stalled)), 90,
                     "publishers to resume (acked at stall %r)" % stalled)
            for d in devices:
                d.stop.set()
            for d in devices:
                d.thread.join(timeout=60)
                assert not d.thread.is_alive(), "publisher %d did not finish" % d.index
            m = sluice.metrics()
            assert m.get("sluice_ingest_failed_total") == 0, m
            for d in devices:
                assert d.closures == [], "publisher %d lost its connection: %r" % (d.index, d.closures)
                assert d.refusals == [], "publisher %d got negative PUBACKs: %r" % (d.index, d.refusals[:5])
                assert d.acked == d.sent, "publisher %d: sent but never acknowledged: %r" % (
                    d.index, sorted(d.sent - d.acked)[:10])
            total = sum(len(d.acked) for d in devices)
            wait_for(lambda: sluice.metrics().get("sluice_bus_lag_messages") == 0, 90, "lag 0")
            sluice.stop()

            stored = {}
            for line in psql(db_url, "SELECT d.key, t.value::bigint, count(*) FROM sluice_telemetry.telemetry t "
                                     "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1, 2").splitlines():
                key, value, count = line.split("|")
                stored[(key, int(value))] = int(count)
            dups = {k: c for k, c in stored.items() if c != 1}
            assert not dups, "stored more than once: %d readings, e.g. %r" % (len(dups), sorted(dups.items())[:5])
            for d in devices:
                missing = [v for v in d.acked if (d.key, v) not in stored]
                assert not missing, "%s: acknowledged but not stored: %r" % (d.key, sorted(missing)[:10])
            assert len(stored) == total, "stored %d readings, acknowledged %d" % (len(stored), total)
            print("acknowledged %d (stall at %r), all stored exactly once" % (total, stalled))
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            for d in devices:
                d.stop.set()
                d.close()
            sluice.kill()
            for d in devices:
                if d.thread is not None:
                    d.thread.join(timeout=10)
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
