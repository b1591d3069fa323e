# SPDX-License-Identifier: Apache-2.0
#
# The pipeline end to end, as a user sees it: real MQTT clients (mosquitto_pub and Eclipse
# Paho Python, MQTT 3.1.1 and 5.0) publish JSON readings with explicit timestamps to
# devices/{device}/telemetry, and the test reads the result back with SQL from a private
# PostgreSQL: exact values and times, unit conversion from the metric dictionary, the
# warn/valid-range/sequence-gap flags, dead letters with their reasons (and the valid
# messages around them unharmed), and hourly rollups equal to aggregates recomputed from
# the raw rows. Unit tests cover each stage alone; this file checks that they are wired
# together the way docs/payload-formats.md and docs/storage.md say. It runs on both store
# layouts (native partitions; TimescaleDB, skipped with the reason where it is not
# installed), and reads the result back through the readings relation users query.
import json
import os
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as paho
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from sluice_process import (PG_STOP, SLUICE, TIMESCALE_SKIP_REASON, Sluice, pg_start, psql, rows,  # noqa: E402
                            timescale_installed)

# Metric dictionary defined before the pipeline starts.
SCALE_F = 5.0 / 9.0
OFFSET_F = -160.0 / 9.0


def mosquitto_pub(port, topic, payload, version, client_id):
    """Publishes one QoS 1 message with the mosquitto_pub CLI; returns once acknowledged."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", version, "-i", client_id,
            "-t", topic]
    if isinstance(payload, bytes):
        args += ["-s"]
        out = subprocess.run(args, input=payload, capture_output=True, timeout=20)
    else:
        args += ["-m", payload]
        out = subprocess.run(args, capture_output=True, timeout=20)
    assert out.returncode == 0, "mosquitto_pub failed: %r" % out.stderr


class PahoPublisher:
    def __init__(self, port, client_id, protocol):
        self.client = paho.Client(client_id=client_id, protocol=protocol)
        self.connected = False
        self.client.on_connect = self._on_connect
        if protocol == paho.MQTTv5:
            self.client.connect("127.0.0.1", port, keepalive=30, clean_start=True)
        else:
            self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        deadline = time.time() + 10
        while not self.connected and time.time() < deadline:
            time.sleep(0.01)
        assert self.connected, "paho client %s did not connect" % client_id

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connected = (rc == 0)

    def publish(self, topic, payload):
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), "no PUBACK for %s" % topic

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def epoch_ms_sql(col="time"):
    return "(extract(epoch from %s) * 1000)::bigint" % col


@pytest.mark.parametrize("layout", ["native", "timescale"])
def test_pipeline_end_to_end(layout):
    if layout == "timescale" and not timescale_installed():
        pytest.skip(TIMESCALE_SKIP_REASON)
    now_ms = int(time.time() * 1000)
    hour_ms = 3600 * 1000
    # Five hours in the past, hour-aligned: readings spread over several hourly buckets,
    # none in the future (flag 8 must stay clear).
    t0 = (now_ms // hour_ms - 5) * hour_ms
    with tempfile.TemporaryDirectory(prefix="sluice-e2e-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user and must reach pg_dir
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        db_url = pg_start(pg_dir, timescale=layout == "timescale")
        sluice = Sluice(data_dir, db_url, log_path=os.path.join(tmp, "sluice.log"), log_level="info",
                        extra_args=["--store-layout", layout])
        clients = []
        try:
            # First start migrates the empty database; the metric dictionary is then defined
            # and loaded by the second start.
            sluice.start()
            deadline = time.time() + 30
            while time.time() < deadline:
                if psql(db_url, "SELECT to_regclass('sluice_app.metrics') IS NOT NULL "
                                "AND to_regclass('sluice_telemetry.telemetry') IS NOT NULL") == "t":
                    break
                time.sleep(0.1)
            sluice.stop()
            assert psql(db_url, "SELECT value FROM sluice_telemetry.settings WHERE key = 'layout'") == layout
            psql(db_url, """
                INSERT INTO sluice_app.metrics (name, unit, scale, "offset", valid_min, valid_max, warn_low, warn_high)
                VALUES ('temp_f', 'degC', 5.0 / 9.0, -160.0 / 9.0, -50, 150, NULL, 90),
                       ('pressure', 'bar', 1, 0, 0, 10, 0.5, 8),
                       ('humidity', 'percent', 1, 0, NULL, NULL, NULL, NULL)""")
            sluice.start()
            gaps_before = sluice.metric("pipeline_sequence_gaps_total") or 0
            dead_before = sluice.metric("pipeline_dead_letters_total") or 0

            # expected[(device, metric, ts_ms)] = (value, flags)
            expected = {}

            def conv_f(raw):
                return raw * SCALE_F + OFFSET_F

            # --- mosquitto_pub, MQTT 3.1.1 and 5.0, single readings ---
            single = [
                # device, version, ts, temp_f raw, pressure, expected flags (temp, pressure)
                ("e2e-mosq4", "mqttv311", t0 + 1000, 68.0, 1.25, 0, 0),
                ("e2e-mosq4", "mqttv311", t0 + hour_ms + 2500, 212.0, 9.5, 2, 2),     # 100 degC > warn 90
                ("e2e-mosq5", "mqttv5", t0 + 1500, 32.0, 0.25, 0, 2),                 # pressure < warn_low
                ("e2e-mosq5", "mqttv5", t0 + 2 * hour_ms + 10, 400.0, 12.0, 3, 3),    # 204 degC, 12 bar: both
                ("e2e-mosq5", "mqttv5", t0 + 2 * hour_ms + 20, -76.0, -1.0, 1, 3),    # -60 degC < valid_min
            ]
            for i, (dev, ver, ts, tf, pr, ft, fp) in enumerate(single):
                mosquitto_pub(sluice.port, "devices/%s/telemetry" % dev,
                              json.dumps({"ts": ts, "temp_f": tf, "pressure": pr}), ver, "%s-%d" % (dev, i))
                expected[(dev, "temp_f", ts)] = (conv_f(tf), ft)
                expected[(dev, "pressure", ts)] = (pr, fp)

            # --- Paho, MQTT 3.1.1 and 5.0, batches with seq, no gaps ---
            for proto, dev in ((paho.MQTTv311, "e2e-paho4"), (paho.MQTTv5, "e2e-paho5")):
                pub = PahoPublisher(sluice.port, dev + "-client", proto)
                clients.append(pub)
                for seq in range(1, 7):
                    readings = []
                    for k in range(5):
                        ts = t0 + seq * 1700 * 1000 + k * 61_000 + 7  # spread across hours 0..2
                        hum = round(40.0 + seq * 1.25 + k * 0.5, 3)
                        readings.append({"ts": ts, "humidity": hum})
                        expected[(dev, "humidity", ts)] = (hum, 0)
                    pub.publish("devices/%s/telemetry" % dev, json.dumps({"seq": seq, "readings": readings}))
                # A single reading from Paho too.
                ts = t0 + 3 * hour_ms + 123
                pub.publish("devices/%s/telemetry" % dev, json.dumps({"ts": ts, "pressure": 2.5}))
                expected[(dev, "pressure", ts)] = (2.5, 0)

            # --- a sequence gap: 1, 2, then 5 (3 and 4 lost) ---
            gap_pub = PahoPublisher(sluice.port, "e2e-gap-client", paho.MQTTv5)
            clients.append(gap_pub)
            for seq in (1, 2, 5, 6):
                readings = [{"ts": t0 + 4 * hour_ms + seq * 1000 + k, "humidity": float(seq * 10 + k)}
                            for k in range(3)]
                gap_pub.publish("devices/e2e-gap/telemetry", json.dumps({"seq": seq, "readings": readings}))
                for r in readings:
                    expected[("e2e-gap", "humidity", r["ts"])] = (r["humidity"], 16 if seq == 5 else 0)

            # --- bad payloads between valid ones on one device ---
            bad_dev = "e2e-bad"
            topic = "devices/%s/telemetry" % bad_dev
            bad_pub = PahoPublisher(sluice.port, "e2e-bad-client", paho.MQTTv311)
            clients.append(bad_pub)
            bad_payloads = [
                (b'{"ts": 1, "humidity": 5', ["invalid json"]),
                (json.dumps({"ts": t0 + 5000, "humidity": "high"}).encode(), ["humidity", "not a number"]),
                (bytes([0xB7, 0x01, 0x02, 0x03]), ["0xb7", "magic byte"]),
                (bytes([0xA7, 0x00, 0x01]), ["binary", "unsupported version 7"]),
            ]
            good_ts = []
            for i, (payload, _) in enumerate(bad_payloads + [(None, None)]):
                ts = t0 + 6000 + i
                good_ts.append(ts)
                bad_pub.publish(topic, json.dumps({"ts": ts, "humidity": 50.0 + i}))
                expected[(bad_dev, "humidity", ts)] = (50.0 + i, 0)
                if payload is not None:
                    bad_pub.publish(topic, payload)

            for c in clients:
                c.close()
            clients = []

            m = sluice.wait_caught_up(len(expected))
            assert m.get("sluice_pipeline_sequence_gaps_total", 0) - gaps_before == 1, m
            assert m.get("sluice_pipeline_dead_letters_total", 0) - dead_before == len(bad_payloads), m

            # --- every reading stored once, with its exact time, value and flags ---
            got = rows(db_url, "SELECT d.key, m.name, %s, t.value, t.flags FROM sluice_telemetry.telemetry t "
                               "JOIN sluice_app.devices d ON d.id = t.device_id "
                               "JOIN sluice_app.metrics m ON m.id = t.metric_id" % epoch_ms_sql("t.time"))
            stored = {}
            for dev, metric, ts, value, flags in got:
                key = (dev, metric, int(ts))
                assert key not in stored, "reading stored twice: %r" % (key,)
                stored[key] = (float(value), int(flags))
            assert set(stored) == set(expected), "missing %r, unexpected %r" % (
                sorted(set(expected) - set(stored))[:10], sorted(set(stored) - set(expected))[:10])
            for key, (value, flags) in expected.items():
                sv, sf = stored[key]
                if key[1] == "temp_f":
                    assert abs(sv - value) <= 1e-9, "%r: stored %r, expected %r (converted)" % (key, sv, value)
                else:
                    assert sv == value, "%r: stored %r, expected %r" % (key, sv, value)
                assert sf == flags, "%r: flags %d, expected %d" % (key, sf, flags)
            # The same readings by name through sluice_telemetry.readings (what users query),
            # with the metric's unit, and a time-bounded query returning exactly its range.
            by_name = rows(db_url, "SELECT device, metric, %s, value, flags, unit FROM sluice_telemetry.readings"
                           % epoch_ms_sql())
            units = {"temp_f": "degC", "pressure": "bar", "humidity": "percent"}
            assert len(by_name) == len(got)
            for dev, metric, ts, value, flags, unit in by_name:
                assert stored[(dev, metric, int(ts))] == (float(value), int(flags)), (dev, metric, ts)
                assert unit == units[metric], (metric, unit)
            in_hour = [k for k in expected if t0 + hour_ms <= k[2] < t0 + 2 * hour_ms]
            assert in_hour
            assert psql(db_url, "SELECT count(*) FROM sluice_telemetry.readings WHERE time >= to_timestamp(%d / 1000.0) "
                                "AND time < to_timestamp(%d / 1000.0)" % (t0 + hour_ms, t0 + 2 * hour_ms)) == \
                str(len(in_hour))
            # Spot check of the conversion itself: 212 degF is 100 degC.
            assert abs(stored[("e2e-mosq4", "temp_f", t0 + hour_ms + 2500)][0] - 100.0) < 1e-9

            # --- dead letters: one per bad payload, reason naming the problem ---
            dl = rows(db_url, "SELECT encode(payload, 'hex'), reason, topic, client_id "
                              "FROM sluice_telemetry.dead_letters ORDER BY id")
            assert len(dl) == len(bad_payloads), dl
            by_payload = {bytes.fromhex(p): (reason, t, c) for p, reason, t, c in dl}
            for payload, words in bad_payloads:
                assert payload in by_payload, "no dead letter for %r: %r" % (payload, dl)
                reason, t, c = by_payload[payload]
                for w in words:
                    assert w in reason.lower(), "reason %r should mention %r" % (reason, w)
                assert t == topic and c == "e2e-bad-client", (t, c)

            # --- telemetry_1h equals aggregates recomputed from the raw rows ---
            raw = rows(db_url, """
                SELECT device_id, metric_id, %s, avg(value), min(value), max(value), count(*)
                FROM sluice_telemetry.telemetry
                GROUP BY device_id, metric_id, date_bin('1 hour', time, timestamptz '2000-01-01 00:00:00+00')
                """ % epoch_ms_sql("date_bin('1 hour', time, timestamptz '2000-01-01 00:00:00+00')"))
            rollup = rows(db_url, "SELECT device_id, metric_id, %s, avg, min, max, count "
                                  "FROM sluice_telemetry.telemetry_1h" % epoch_ms_sql("bucket"))
            raw_by = {(r[0], r[1], int(r[2])): tuple(map(float, r[3:])) for r in raw}
            roll_by = {(r[0], r[1], int(r[2])): tuple(map(float, r[3:])) for r in rollup}
            assert set(raw_by) == set(roll_by), "rollup buckets differ: raw-only %r rollup-only %r" % (
                sorted(set(raw_by) - set(roll_by)), sorted(set(roll_by) - set(raw_by)))
            hours = set(k[2] for k in raw_by)
            assert len(hours) >= 4, "readings should span several hours: %r" % sorted(hours)
            for k, (avg, mn, mx, n) in raw_by.items():
                ravg, rmn, rmx, rn = roll_by[k]
                assert abs(avg - ravg) <= 1e-9 * max(1.0, abs(avg)), (k, avg, ravg)
                assert (mn, mx, n) == (rmn, rmx, rn), (k, (mn, mx, n), (rmn, rmx, rn))
            print("stored %d readings, %d dead letters, %d hourly buckets" % (len(stored), len(dl), len(raw_by)))
            sluice.stop()
        finally:
            for c in clients:
                try:
                    c.close()
                except Exception:
                    pass
            sluice.kill()
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)


def test_store_layout_timescale_refused_where_timescaledb_cannot_load():
    """--store-layout timescale against a PostgreSQL without TimescaleDB preloaded: sluice
    stops with an error saying what to put in postgresql.conf, and creates nothing."""
    with tempfile.TemporaryDirectory(prefix="sluice-layout-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        db_url = pg_start(pg_dir, timescale=False)
        try:
            proc = subprocess.run([SLUICE, "serve", "--mqtt-port", "0", "--http-port", "0", "--bind", "127.0.0.1",
                                   "--data-dir", data_dir, "--db", db_url, "--store-layout", "timescale"],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode != 0, proc.stderr
            assert "shared_preload_libraries = 'timescaledb'" in proc.stderr, proc.stderr
            assert psql(db_url, "SELECT to_regclass('sluice_telemetry.telemetry_packed') IS NULL") == "t"
        finally:
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
