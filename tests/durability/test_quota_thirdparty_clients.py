# SPDX-License-Identifier: Apache-2.0
#
# Issue 11 with clients nobody here wrote: the back-pressure promises of test_quota.py and
# test_backpressure_large.py (WAL quota reached with PostgreSQL down, over_quota = "pause")
# under QoS 1 load from Eclipse Paho Python (MQTT 3.1.1 and 5.0, default keep-alive and
# in-flight window) and mosquitto_pub -l (MQTT 3.1.1 and 5.0), with large (24 KB) and small
# (100 B) JSON readings without "seq", so the pipeline cannot hide a duplicate.
# PostgreSQL is stopped under load, once every client has had readings acknowledged (this
# load keeps a 1 MiB WAL near its quota even with the database up). Held at the quota:
# sluice_bus_over_quota 1, sluice_bus_lag_seconds growing, sluice_ingest_failed_total 0,
# and no client loses its connection (Paho's on_disconnect never fires, mosquitto_pub
# connects once and never resends). PostgreSQL started: everything drains, every publisher
# finishes, and every acknowledged reading (Paho: on_publish fired for its mid;
# mosquitto_pub: every line it was given, once it exited 0) is stored exactly once,
# counted per device with SQL.
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as paho

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from sluice_process import PG_STOP, die_with_parent, pg_start, pg_stop, psql, Sluice, wait_for  # noqa: E402

QUOTA_BYTES = 1 << 20
SEGMENT_BYTES = 128 << 10
SIZES = {"large": 24000, "small": 100}
CONFIG = """
[wal]
quota_bytes = %d
segment_bytes = %d

[ingest]
over_quota = "pause"
""" % (QUOTA_BYTES, SEGMENT_BYTES)
# Readings a publisher may have unacknowledged. Paho sends 20 of them at a time and queues
# the rest itself; mosquitto_pub queues what it was given (libmosquitto sends 20 at a time
# with MQTT 3.1.1, up to the broker's Receive Maximum with 5.0).
PAHO_WINDOW = 40
LINE_WINDOW = {"large": 40, "small": 100}
PUBACK_LINE = re.compile(r"received PUBACK \(Mid: (\d+), RC:(\d+)\)")


def payload(kind, n):
    # {"v": n} padded with JSON whitespace: one reading, value n, no sequence number, no newline.
    head = '{"v": %d' % n
    return head + " " * (SIZES[kind] - len(head) - 1) + "}"


class PahoPublisher:
    """One Paho client publishing one large reading then three small ones, each kind to its
    own device, with at most PAHO_WINDOW unacknowledged."""

    def __init__(self, name, protocol):
        self.label = name
        self.window = PAHO_WINDOW
        self.keys = {kind: "tp-%s-%s" % (name, kind) for kind in SIZES}
        self.lock = threading.Lock()
        self.pending = {}   # mid -> (kind, n), published and not yet acknowledged
        self.early = set()  # mids whose on_publish ran before publish() returned
        self.sent = {kind: set() for kind in SIZES}
        self.acked = {kind: set() for kind in SIZES}
        self.disconnects = []  # on_disconnect calls before our own disconnect (never expected)
        self.errors = []       # publish() return codes other than success (never expected)
        self.connected = threading.Event()
        self.closing = False
        self.stop = threading.Event()
        self.thread = None
        self.client = paho.Client(client_id="tp-" + name, protocol=protocol)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc == 0:
            self.connected.set()

    def _on_publish(self, client, userdata, mid):
        # Runs in Paho's thread under its message lock: only our own lock here, and the
        # publishing thread never holds ours while it calls into Paho.
        with self.lock:
            entry = self.pending.pop(mid, None)
            if entry is None:
                self.early.add(mid)
            else:
                self.acked[entry[0]].add(entry[1])

    def _on_disconnect(self, client, userdata, rc, properties=None):
        if not self.closing:
            self.disconnects.append((time.time(), rc))

    def start(self, port):
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(10), "paho client %s did not connect" % self.label
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        n = {kind: 0 for kind in SIZES}
        i = 0
        while not self.stop.is_set():
            with self.lock:
                room = len(self.pending) < PAHO_WINDOW
            if not room:
                time.sleep(0.005)
                continue
            kind = "large" if i % 4 == 0 else "small"
            i += 1
            n[kind] += 1
            info = self.client.publish("devices/%s/telemetry" % self.keys[kind], payload(kind, n[kind]), qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                self.errors.append((kind, n[kind], info.rc))
                return
            with self.lock:
                self.sent[kind].add(n[kind])
                if info.mid in self.early:
                    self.early.discard(info.mid)
                    self.acked[kind].add(n[kind])
                else:
                    self.pending[info.mid] = (kind, n[kind])

    def acked_count(self):
        with self.lock:
            return sum(len(s) for s in self.acked.values())

    def outstanding(self):
        with self.lock:
            return len(self.pending)

    def problems(self):
        return {"disconnects": self.disconnects, "publish errors": self.errors} if (
            self.disconnects or self.errors) else None

    def close(self):
        self.closing = True
        self.client.disconnect()
        self.client.loop_stop()


class MosquittoPub:
    """mosquitto_pub -l -q 1 on one device's topic, fed one reading per line. Its -d output
    (line-buffered through stdbuf) tells which lines were acknowledged, so at most
    LINE_WINDOW lines it was given are unacknowledged, and whether it ever reconnected or
    resent a PUBLISH."""

    def __init__(self, version, kind, tmp):
        self.version = version
        self.kind = kind
        self.key = self.label = "tp-mosq%s-%s" % (version, kind)
        self.window = LINE_WINDOW[kind]
        self.stderr_path = os.path.join(tmp, self.key + ".err")
        self.lock = threading.Lock()
        self.given = 0
        self.acked = 0
        self.connects = 0
        self.resends = 0
        self.refusals = []
        self.stop = threading.Event()
        self.proc = None
        self.feeder = None
        self.reader = None

    def start(self, port):
        # Started from the test's main thread: PR_SET_PDEATHSIG fires when the starting thread
        # ends. stdbuf execs mosquitto_pub, so proc.pid is mosquitto_pub's.
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                ["stdbuf", "-oL", "mosquitto_pub", "-d", "-l", "-q", "1", "-V", self.version, "-i", self.key,
                 "-h", "127.0.0.1", "-p", str(port), "-t", "devices/%s/telemetry" % self.key],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=die_with_parent)
        self.reader = threading.Thread(target=self.read)
        self.reader.start()
        self.feeder = threading.Thread(target=self.feed)
        self.feeder.start()

    def read(self):
        for line in self.proc.stdout:
            m = PUBACK_LINE.search(line)
            with self.lock:
                if m:
                    self.acked += 1
                    if m.group(2) != "0":
                        self.refusals.append((int(m.group(1)), int(m.group(2))))
                elif "sending CONNECT" in line:
                    self.connects += 1
                elif "sending PUBLISH (d1" in line:
                    self.resends += 1

    def feed(self):
        try:
            while not self.stop.is_set():
                with self.lock:
                    room = self.given - self.acked < self.window
                if not room:
                    time.sleep(0.005)
                    continue
                self.proc.stdin.write(payload(self.kind, self.given + 1) + "\n")
                self.proc.stdin.flush()
                with self.lock:
                    self.given += 1
            # End of input: mosquitto_pub disconnects and exits once its last PUBLISH is acknowledged.
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass  # mosquitto_pub already gone: the exit code tells

    def acked_count(self):
        with self.lock:
            return self.acked

    def outstanding(self):
        with self.lock:
            return self.given - self.acked

    def stderr(self):
        try:
            return open(self.stderr_path).read()[-2000:]
        except OSError:
            return ""

    def problems(self):
        with self.lock:
            bad = self.connects > 1 or self.resends or self.refusals
            state = {"connects": self.connects, "resends": self.resends, "refusals": self.refusals[:5]}
        if self.proc.poll() is not None and (self.proc.returncode != 0 or not self.stop.is_set()):
            bad = True
            state["exit"] = self.proc.returncode
            state["stderr"] = self.stderr()
        return state if bad else None


def check_publishers(pubs, sluice, when):
    for p in pubs:
        problems = p.problems()
        if problems:
            m = sluice.metrics()
            counters = {k: v for k, v in m.items() if k.startswith("sluice_ingest_") or k in (
                "sluice_bus_over_quota", "sluice_mqtt_connections")}
            raise AssertionError("%s: %s lost its connection, resent or was refused: %r; %r" % (
                when, p.label, problems, counters))


def test_quota_with_thirdparty_clients():
    with tempfile.TemporaryDirectory(prefix="sluice-tp-quota-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user and must reach pg_dir
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        config_path = os.path.join(tmp, "sluice.toml")
        with open(config_path, "w") as f:
            f.write(CONFIG)
        db_url = pg_start(pg_dir)
        sluice = Sluice(data_dir, db_url, config_path=config_path, log_path=os.path.join(tmp, "sluice.log"),
                        log_level="info")
        pahos = [PahoPublisher("paho311", paho.MQTTv311), PahoPublisher("paho5", paho.MQTTv5)]
        mosqs = [MosquittoPub(version, kind, tmp) for version in ("311", "5") for kind in SIZES]
        pubs = pahos + mosqs
        try:
            sluice.start()
            wait_for(lambda: sluice.metrics().get("sluice_pipeline_database_up") == 1, 30, "database up")
            t0 = time.time()
            phases = []
            # The database goes away under load: every client first has readings acknowledged
            # (and stored) the normal way.
            for p in pubs:
                p.start(sluice.port)
            wait_for(lambda: (check_publishers(pubs, sluice, "before the outage") or
                              all(p.acked_count() >= p.window for p in pubs)), 30,
                     lambda: "every publisher to be acknowledged (acked %r)" % [p.acked_count() for p in pubs])
            before_outage = [p.acked_count() for p in pubs]
            pg_stop(pg_dir)
            phases.append(("PostgreSQL stopped", time.time() - t0))

            # Publish until the quota stops acknowledgements: none for 3 s, everyone waiting.
            last_total, last_change = -1, time.time()
            deadline = time.time() + 60
            while time.time() < deadline:
                check_publishers(pubs, sluice, "filling the quota")
                total = sum(p.acked_count() for p in pubs)
                if total != last_total:
                    last_total, last_change = total, time.time()
                elif time.time() - last_change > 3 and all(p.outstanding() > 0 for p in pubs):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("acknowledgements never stalled (acked %d, outstanding %r)" % (
                    last_total, [p.outstanding() for p in pubs]))
            stalled = [p.acked_count() for p in pubs]
            phases.append(("stalled", time.time() - t0))
            m = sluice.metrics()
            assert m.get("sluice_bus_over_quota") == 1, m
            assert m.get("sluice_ingest_paused_total", 0) > 0, m
            assert m.get("sluice_ingest_failed_total") == 0, m
            assert m.get("sluice_ingest_refused_total", 0) == 0, m
            assert m.get("sluice_mqtt_connections") == len(pubs), m
            # Held, not dropped: the lag in seconds (age of the oldest unstored reading) keeps
            # growing, nothing is acknowledged, nobody is disconnected.
            time.sleep(3)
            later = sluice.metrics()
            assert later["sluice_bus_lag_seconds"] >= m["sluice_bus_lag_seconds"] + 2, (m, later)
            assert later.get("sluice_bus_over_quota") == 1, later
            assert later.get("sluice_ingest_failed_total") == 0, later
            assert later.get("sluice_mqtt_connections") == len(pubs), later
            check_publishers(pubs, sluice, "held at the quota")
            assert [p.acked_count() for p in pubs] == stalled, "acknowledged while over quota"
            print("acknowledged %r before the outage, %r at the stall; lag %.1f s -> %.1f s, bus %d bytes" % (
                before_outage, stalled, m["sluice_bus_lag_seconds"], later["sluice_bus_lag_seconds"],
                m.get("sluice_bus_bytes", 0)))

            pg_start(pg_dir)
            phases.append(("PostgreSQL started", time.time() - t0))
            # Under this load the WAL stays near its quota even with the database up, so the
            # quota is checked clear only once the publishers have finished and the lag is 0.
            wait_for(lambda: sluice.metrics().get("sluice_pipeline_database_up") == 1, 60, "database up again")
            phases.append(("pipeline reconnected", time.time() - t0))
            # Everyone is acknowledged past what it had waiting at the stall, then stops.
            wait_for(lambda: (check_publishers(pubs, sluice, "after the database returned") or
                              all(p.acked_count() >= s + 2 * p.window for p, s in zip(pubs, stalled))),
                     60, lambda: "publishers to resume (acked %r, at the stall %r)" % (
                         [p.acked_count() for p in pubs], stalled))
            phases.append(("resumed", time.time() - t0))
            for p in pubs:
                p.stop.set()
            for p in pahos:
                p.thread.join(timeout=10)
                assert not p.thread.is_alive(), "paho %s did not stop publishing" % p.label
            wait_for(lambda: all(p.outstanding() == 0 for p in pahos), 60,
                     lambda: "Paho's last PUBLISHes to be acknowledged (outstanding %r)" % [
                         p.outstanding() for p in pahos])
            for p in mosqs:
                p.feeder.join(timeout=10)
                try:
                    rc = p.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    raise AssertionError("mosquitto_pub %s did not exit: %d given, %d acknowledged" % (
                        p.key, p.given, p.acked_count()))
                p.reader.join(timeout=10)
                assert rc == 0, "mosquitto_pub %s exited with %d: %s" % (p.key, rc, p.stderr())
                assert p.acked_count() == p.given, "mosquitto_pub %s: %d given, %d acknowledged" % (
                    p.key, p.given, p.acked_count())
            phases.append(("publishers finished", time.time() - t0))
            check_publishers(pubs, sluice, "at the end")
            for p in pahos:
                p.close()
                for kind in SIZES:
                    assert p.acked[kind] == p.sent[kind], "paho %s: sent but never acknowledged: %r" % (
                        p.keys[kind], sorted(p.sent[kind] - p.acked[kind])[:10])
            m = wait_for(lambda: (lambda mm: mm if mm.get("sluice_bus_lag_messages") == 0 else None)(
                sluice.metrics()), 60, "lag 0")
            assert m.get("sluice_ingest_failed_total") == 0, m
            assert m.get("sluice_bus_over_quota") == 0, m
            phases.append(("drained", time.time() - t0))
            sluice.stop()

            # What must be stored, once each: Paho's acknowledged readings, mosquitto_pub's lines.
            expected = {}
            for p in pahos:
                for kind in SIZES:
                    expected[p.keys[kind]] = p.acked[kind]
            for p in mosqs:
                expected[p.key] = set(range(1, p.given + 1))
            stored = {}
            for line in psql(db_url, "SELECT d.key, t.value::bigint, count(*) FROM sluice_telemetry.telemetry t "
                                     "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1, 2").splitlines():
                key, value, count = line.split("|")
                stored.setdefault(key, {})[int(value)] = int(count)
            per_device = {}
            for line in psql(db_url, "SELECT d.key, count(*), count(DISTINCT t.value) "
                                     "FROM sluice_telemetry.telemetry t "
                                     "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1").splitlines():
                key, rows, distinct = line.split("|")
                per_device[key] = (int(rows), int(distinct))
            assert sorted(per_device) == sorted(expected), (sorted(per_device), sorted(expected))
            report = []
            for key, want in sorted(expected.items()):
                got = stored.get(key, {})
                lost = sorted(want - set(got))
                dups = sorted(v for v, c in got.items() if c > 1)
                extra = sorted(set(got) - want)
                report.append("%s %d/%d" % (key, per_device[key][0], len(want)))
                assert not lost, "%s: %d acknowledged readings not stored, e.g. %r" % (key, len(lost), lost[:10])
                assert not dups, "%s: %d readings stored more than once, e.g. %r" % (
                    key, len(dups), [(v, got[v]) for v in dups[:5]])
                assert not extra, "%s: stored readings never acknowledged: %r" % (key, extra[:10])
                assert per_device[key] == (len(want), len(want)), (key, per_device[key], len(want))
            dead = psql(db_url, "SELECT count(*) FROM sluice_telemetry.dead_letters")
            assert dead == "0", "dead letters: %s" % dead
            print("stored exactly once (rows/acknowledged): " + ", ".join(report))
            print("phases: " + ", ".join("%s %.1f s" % ph for ph in phases))
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            for p in pubs:
                p.stop.set()
            for p in mosqs:
                if p.proc is not None and p.proc.poll() is None:
                    p.proc.kill()
                    p.proc.wait(timeout=10)
            for p in pahos:
                p.closing = True
                p.client.disconnect()
                p.client.loop_stop()
            sluice.kill()
            for p in pahos:
                if p.thread is not None:
                    p.thread.join(timeout=10)
            for p in mosqs:
                for t in (p.feeder, p.reader):
                    if t is not None:
                        t.join(timeout=10)
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
