# SPDX-License-Identifier: Apache-2.0
#
# Promise 3 at its limit: "fill the quota, see back-pressure, free space, see it resume,
# count zero lost". With a small WAL quota and PostgreSQL stopped, QoS 1 publishers fill
# the log until Sluice stops acknowledging (ingest.over_quota = "pause": it holds the
# PUBLISH and stops reading the client, without disconnecting it). The test asserts the
# back-pressure is visible (sluice_bus_over_quota 1, sluice_ingest_paused_total > 0), that
# the publishers are still connected, then starts PostgreSQL and asserts that the backlog
# drains, the quota clears, the held messages are acknowledged, the publishers carry on,
# and that every acknowledged reading is in the telemetry table exactly once.
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, V5, ConnectionClosed, MqttError, Timeout, Client, gen_publish, PUBACK  # noqa: E402

from sluice_process import PG_START, PG_STOP, psql, Sluice, wait_for  # noqa: E402

CYCLES = 3
QUOTA_BYTES = 262144
SEGMENT_BYTES = 16384
CONFIG = """
[wal]
quota_bytes = %d
segment_bytes = %d

[ingest]
over_quota = "pause"
""" % (QUOTA_BYTES, SEGMENT_BYTES)


class Device:
    """One connection publishing {"seq": n, "v": n} at QoS 1 with a window of messages in
    flight. It never resends (the connection is expected to survive), so any message that
    is acknowledged must be stored exactly once."""

    def __init__(self, index, proto):
        self.index = index
        self.proto = proto
        self.key = "quota-%d" % index
        self.topic = "devices/%s/telemetry" % self.key
        self.lock = threading.Lock()
        self.acked = set()
        self.sent = set()
        self.inflight = {}
        self.closed_error = None
        self.stop = threading.Event()   # stop sending new messages
        self.thread = None

    def start(self, port):
        self.client = Client(port, self.proto, timeout=5)
        self.client.connect("quota-client-%d" % self.index, keepalive=120)
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def pending(self):
        with self.lock:
            return len(self.inflight)

    def run(self):
        c = self.client
        seq = 1
        mid = 0
        try:
            while True:
                with self.lock:
                    room = not self.stop.is_set() and len(self.inflight) < 32
                    if not self.inflight and self.stop.is_set():
                        return
                if room:
                    mid = mid % 65535 + 1
                    payload = ('{"seq": %d, "v": %d}' % (seq, seq)).encode()
                    c.send(gen_publish(self.topic, 1, payload, mid=mid, proto_ver=self.proto))
                    with self.lock:
                        self.sent.add(seq)
                        self.inflight[mid] = seq
                    seq += 1
                    continue
                try:
                    p = c.recv_packet(timeout=0.5)
                except Timeout:
                    continue
                if p.type == PUBACK:
                    assert p.reason in (0, None), "PUBACK reason %#x for seq %s at %.3f (%d acked before)" % (
                        p.reason, self.inflight.get(p.mid), time.time(), len(self.acked))
                    with self.lock:
                        s = self.inflight.pop(p.mid, None)
                        if s is not None:
                            self.acked.add(s)
        except (OSError, MqttError, ConnectionClosed, AssertionError) as e:
            self.closed_error = repr(e)
        finally:
            c.close()


def check_connected(sluice, d, cycle):
    """In "pause" mode nothing is refused and nobody is disconnected: a publisher that lost
    its connection or got a negative PUBACK fails the test, with the ingest counters."""
    if d.closed_error is None:
        return
    m = sluice.metrics()
    counters = {k: v for k, v in m.items() if k.startswith("sluice_ingest_") or k == "sluice_bus_over_quota"}
    raise AssertionError("cycle %d: publisher %d (MQTT %s) lost its connection or was refused: %s; %r" % (
        cycle, d.index, "5.0" if d.proto == V5 else "3.1.1", d.closed_error, counters))


def test_quota_back_pressure_and_resume():
    with tempfile.TemporaryDirectory(prefix="sluice-quota-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user and must reach pg_dir
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        config_path = os.path.join(tmp, "sluice.toml")
        with open(config_path, "w") as f:
            f.write(CONFIG)
        db_url = subprocess.run([PG_START, pg_dir], capture_output=True, text=True, check=True,
                                timeout=120).stdout.strip()
        sluice = Sluice(data_dir, db_url, config_path=config_path, log_path=os.path.join(tmp, "sluice.log"),
                        log_level="info")
        devices = [Device(0, V311), Device(1, V5), Device(2, V311), Device(3, V5)]
        try:
            sluice.start()
            wait_for(lambda: sluice.metrics().get("sluice_pipeline_database_up") == 1, 30, "database up")
            started = False
            paused_before = 0
            # The database goes away and comes back three times (a flapping database): each
            # time the log fills to its quota, ingest pauses, and resumes once there is room.
            for cycle in range(CYCLES):
                subprocess.run([PG_STOP, pg_dir], check=True, timeout=120, capture_output=True)
                if not started:
                    for d in devices:
                        d.start(sluice.port)
                    started = True

                # Publish until acknowledgements stall: no new PUBACK for 3 s with messages in flight.
                last_total, last_change = -1, time.time()
                deadline = time.time() + 60
                while time.time() < deadline:
                    total = sum(d.acked_count() for d in devices)
                    if total != last_total:
                        last_total, last_change = total, time.time()
                    elif time.time() - last_change > 3 and all(d.pending() > 0 for d in devices):
                        break
                    for d in devices:
                        check_connected(sluice, d, cycle)
                    time.sleep(0.1)
                else:
                    raise AssertionError("cycle %d: acknowledgements never stalled (acked %d)" % (cycle, last_total))
                stalled_acked = [d.acked_count() for d in devices]
                m = sluice.metrics()
                assert m.get("sluice_bus_over_quota") == 1, m
                assert m.get("sluice_ingest_paused_total", 0) > paused_before, m
                paused_before = m.get("sluice_ingest_paused_total", 0)
                stalled_lag = m.get("sluice_bus_lag_messages", 0)
                assert stalled_lag > 0, m
                if cycle == 0:
                    assert stalled_lag >= sum(stalled_acked), m
                assert m.get("sluice_bus_bytes", QUOTA_BYTES) >= QUOTA_BYTES, m
                assert m.get("sluice_ingest_refused_total", 0) == 0, m
                assert m.get("sluice_mqtt_connections") == len(devices), m
                # Still connected while held: nothing closed from the broker's side.
                time.sleep(1)
                for d in devices:
                    check_connected(sluice, d, cycle)
                    assert d.pending() > 0
                assert [d.acked_count() for d in devices] == stalled_acked, "acknowledged while over quota"

                # Free space: the database comes back, the pipeline drains, the quota clears.
                print("cycle %d: stalled with %r acknowledged, lag %d; starting PostgreSQL" % (
                    cycle, stalled_acked, stalled_lag))
                subprocess.run([PG_START, pg_dir], check=True, timeout=120, capture_output=True)
                wait_for(lambda: sluice.metrics().get("sluice_bus_over_quota") == 0, 60, "over_quota back to 0")
                wait_for(lambda: sluice.metrics().get("sluice_bus_lag_messages", stalled_lag) < stalled_lag / 2, 60,
                         "the lag to drain (was %d at the stall)" % stalled_lag)
                # The held messages are acknowledged and the publishers carry on well past them.
                wait_for(lambda: all(d.acked_count() > s + 500 for d, s in zip(devices, stalled_acked)), 60,
                         "publishers to resume (acked at stall %r)" % stalled_acked)
                for d in devices:
                    check_connected(sluice, d, cycle)
            for d in devices:
                d.stop.set()
            for d in devices:
                d.thread.join(timeout=30)
                assert not d.thread.is_alive(), "publisher %d did not finish" % d.index
                assert d.closed_error is None, "publisher %d lost its connection: %s" % (d.index, d.closed_error)
                assert d.pending() == 0
                assert d.acked == d.sent, "publisher %d: sent but never acknowledged: %r" % (
                    d.index, sorted(d.sent - d.acked)[:10])
            m = wait_for(lambda: (lambda mm: mm if mm.get("sluice_bus_lag_messages") == 0 else None)(
                sluice.metrics()), 60, "lag 0")
            assert m.get("sluice_bus_over_quota") == 0, m
            sluice.stop()

            out = psql(db_url, "SELECT d.key, t.value::bigint, count(*) FROM sluice_telemetry.telemetry t "
                               "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1, 2")
            stored = {}
            for line in out.splitlines():
                key, value, count = line.split("|")
                stored[(key, int(value))] = int(count)
            total = 0
            for d in devices:
                total += len(d.acked)
                for seq in d.acked:
                    assert stored.get((d.key, seq)) == 1, "%s seq %d stored %s times, acknowledged once" % (
                        d.key, seq, stored.get((d.key, seq)))
            assert len(stored) == total, "stored %d distinct readings, acknowledged %d" % (len(stored), total)
            dead = psql(db_url, "SELECT count(*) FROM sluice_telemetry.dead_letters")
            assert dead == "0", "dead letters: %s" % dead
            print("acknowledged at stall %r, total %d, all stored exactly once" % (stalled_acked, total))
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            for d in devices:
                d.stop.set()
            sluice.kill()
            for d in devices:
                if d.thread is not None:
                    d.thread.join(timeout=10)
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
