# SPDX-License-Identifier: Apache-2.0
#
# Promise 2: exactly once into the database. Devices publish JSON readings with a
# per-device sequence number at QoS 1 while (a) Sluice is killed with SIGKILL several
# times and (b) PostgreSQL is stopped for a few seconds. Devices resend what was not
# acknowledged after each reconnect, as MQTT clients do. At the end, once the pipeline
# has caught up, every acknowledged reading is in the telemetry table exactly once and
# no reading appears twice.
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, V5, ConnectionClosed, MqttError, Client, gen_publish, PUBACK  # noqa: E402

from sluice_process import PG_START, PG_STOP, Sluice, psql  # noqa: E402


class Device:
    """Publishes {"seq": n, "v": n} at QoS 1; resends unacknowledged seqs on reconnect."""

    def __init__(self, index, proto):
        self.index = index
        self.proto = proto
        self.key = "eo-%d" % index
        self.topic = "devices/%s/telemetry" % self.key
        self.next_seq = 1
        self.acked = set()
        self.sent = set()

    def run(self, port, stop, rate_limit):
        try:
            c = Client(port, self.proto, timeout=2)
            c.connect("eo-client-%d" % self.index)
        except (OSError, MqttError):
            return
        inflight = {}
        pending = sorted(self.sent - self.acked)
        mid = 0
        try:
            while not stop.is_set():
                while len(inflight) < 8:
                    seq = pending.pop(0) if pending else self.next_seq
                    if seq == self.next_seq:
                        self.next_seq += 1
                    mid = mid % 65535 + 1
                    payload = ('{"seq": %d, "v": %d}' % (seq, seq)).encode()
                    c.send(gen_publish(self.topic, 1, payload, mid=mid, proto_ver=self.proto))
                    self.sent.add(seq)
                    inflight[mid] = seq
                p = c.recv_packet(timeout=3)
                if p.type == PUBACK:
                    seq = inflight.pop(p.mid, None)
                    if seq is not None:
                        self.acked.add(seq)
                time.sleep(rate_limit)
        except (OSError, MqttError, ConnectionClosed):
            pass
        finally:
            c.close()


def run_round(sluice, devices, seconds, rate_limit=0.001):
    stop = threading.Event()
    threads = [threading.Thread(target=d.run, args=(sluice.port, stop, rate_limit)) for d in devices]
    for t in threads:
        t.start()
    time.sleep(seconds)
    return stop, threads


def finish_round(stop, threads):
    stop.set()
    for t in threads:
        t.join(timeout=15)


def test_exactly_once_across_kills_and_database_outage():
    rng = random.Random(int(os.environ.get("SLUICE_TEST_SEED", "42")))
    with tempfile.TemporaryDirectory(prefix="sluice-eo-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user and must reach pg_dir
        pg_dir = os.path.join(tmp, "pg")
        db_url = subprocess.run([PG_START, pg_dir], capture_output=True, text=True, check=True,
                                timeout=120).stdout.strip()
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        sluice = Sluice(data_dir, db_url)
        devices = [Device(i, V5 if i % 2 else V311) for i in range(6)]
        try:
            # Kills during load.
            for _ in range(5):
                sluice.start()
                stop, threads = run_round(sluice, devices, rng.uniform(0.5, 1.5))
                sluice.kill()
                finish_round(stop, threads)
            # The database goes away for a while during load, then comes back. Wait for the
            # pipeline first: start-up (migration check) takes longer on the TimescaleDB
            # layout, which pg-start selects when TimescaleDB is installed.
            sluice.start()
            deadline = time.time() + 30
            while time.time() < deadline and sluice.metric("pipeline_running") != 1:
                time.sleep(0.05)
            stop, threads = run_round(sluice, devices, 0.5)
            subprocess.run([PG_STOP, pg_dir], check=True, timeout=120)
            time.sleep(3)
            lag_while_down = sluice.metric("bus_lag_messages")
            subprocess.run([PG_START, pg_dir], check=True, timeout=120, capture_output=True)
            time.sleep(1)
            finish_round(stop, threads)
            # One last kill right after the outage, then a clean run to let everything drain.
            sluice.kill()
            sluice.start()
            stop, threads = run_round(sluice, devices, 1.0)
            finish_round(stop, threads)
            deadline = time.time() + 60
            while time.time() < deadline:
                lag = sluice.metric("bus_lag_messages")
                if lag == 0:
                    break
                time.sleep(0.2)
            assert lag == 0, "pipeline did not catch up: lag %s" % lag
            sluice.stop()

            assert lag_while_down and lag_while_down > 0, "lag should grow while the database is down"
            rows = psql(db_url, "SELECT d.key, t.value::bigint, count(*) FROM sluice_telemetry.telemetry t "
                                "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1, 2")
            stored = {}
            for line in rows.splitlines():
                key, value, count = line.split("|")
                stored[(key, int(value))] = int(count)
            total_acked = 0
            for d in devices:
                total_acked += len(d.acked)
                for seq in d.acked:
                    assert stored.get((d.key, seq)) == 1, "%s seq %d stored %s times, acknowledged once" % (
                        d.key, seq, stored.get((d.key, seq)))
            for (key, seq), count in stored.items():
                assert count == 1, "%s seq %d stored %d times" % (key, seq, count)
                d = devices[int(key.split("-")[1])]
                assert seq in d.sent, "%s seq %d stored but never sent" % (key, seq)
            assert total_acked > 500, "too little traffic: %d" % total_acked
            print("acknowledged %d readings, stored %d rows, lag while the database was down: %d" % (
                total_acked, len(stored), lag_while_down))
        finally:
            if sluice.proc and sluice.proc.poll() is None:
                sluice.proc.kill()
            subprocess.run([PG_STOP, pg_dir], timeout=120)
