# SPDX-License-Identifier: Apache-2.0
#
# Issue 11, "a cardinality burst stalls everyone": 4 messages carrying 50,000 new metric
# names each used to stall the pipeline for minutes for every device (each new name was
# registered with its own INSERT and commit). Now the new names of a polled batch are
# registered in one statement, at most [pipeline] max_new_metrics_per_device per device
# and interval; readings past that are dead-lettered with the reason. The test publishes
# the burst from one device while a steady device publishes a reading every 50 ms, and
# asserts that the steady device's readings keep being stored (bounded time), that the
# burst device got its allowance registered and the rest dead-lettered with the reason.
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, PUBACK, Client, gen_publish  # noqa: E402

from sluice_process import PG_STOP, pg_start, psql, Sluice, wait_for  # noqa: E402

NAMES = 50000
BURSTS = 4
ALLOWANCE = 1000  # the default [pipeline] max_new_metrics_per_device


def burst_payload(b):
    return ("{" + ", ".join('"b%d_m%d": %d' % (b, i, i) for i in range(NAMES)) + "}").encode()


def steady_rows(db_url):
    return int(psql(db_url, "SELECT count(*) FROM sluice_telemetry.telemetry t JOIN sluice_app.devices d "
                            "ON d.id = t.device_id WHERE d.key = 'steady'"))


def test_cardinality_burst_does_not_stall_other_devices():
    with tempfile.TemporaryDirectory(prefix="sluice-card-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        db_url = pg_start(pg_dir)
        sluice = Sluice(data_dir, db_url, log_path=os.path.join(tmp, "sluice.log"), log_level="info")
        stop = threading.Event()
        sent = []
        errors = []

        def steady():
            try:
                c = Client(sluice.port, V311, timeout=30)
                c.connect("steady", keepalive=60)
                n = 0
                while not stop.is_set():
                    n += 1
                    c.send(gen_publish("devices/steady/telemetry", 1, ('{"temperature": %d}' % n).encode(),
                                       mid=n % 65535 + 1, proto_ver=V311))
                    if c.recv_packet(timeout=30).type == PUBACK:
                        sent.append(n)
                    time.sleep(0.05)
                c.close()
            except Exception as e:  # noqa: BLE001 - reported by the test below
                errors.append(repr(e))

        t = None
        try:
            sluice.start()
            wait_for(lambda: sluice.metrics().get("sluice_pipeline_database_up") == 1, 30, "database up")
            t = threading.Thread(target=steady)
            t.start()
            wait_for(lambda: steady_rows(db_url) > 0, 30, "the steady device's first rows")

            b = Client(sluice.port, V311, timeout=60)
            b.connect("burst", keepalive=60)
            for i in range(BURSTS):
                b.send(gen_publish("devices/burst/telemetry", 1, burst_payload(i), mid=i + 1, proto_ver=V311))
            acked = 0
            while acked < BURSTS:
                if b.recv_packet(timeout=60).type == PUBACK:
                    acked += 1
            b.close()
            burst_acked_at = time.time()
            acked_steady = len(sent)

            # Within a bounded time after the burst, the steady device's later readings are stored.
            wait_for(lambda: steady_rows(db_url) >= acked_steady + 20, 30,
                     "the steady device's readings after the burst (%d acknowledged before it)" % acked_steady)
            took = time.time() - burst_acked_at
            wait_for(lambda: int(psql(db_url, "SELECT count(*) FROM sluice_telemetry.dead_letters "
                                              "WHERE client_id = 'burst'")) == BURSTS, 60,
                     "the burst's dead letters")
            reasons = psql(db_url, "SELECT reason FROM sluice_telemetry.dead_letters WHERE client_id = 'burst'")
            assert "new metric names over the device's limit" in reasons, reasons[:500]
            registered = int(psql(db_url, "SELECT count(*) FROM sluice_app.metrics WHERE name LIKE 'b%\\_m%'"))
            assert registered == ALLOWANCE, registered
            burst_rows = int(psql(db_url, "SELECT count(*) FROM sluice_telemetry.telemetry t JOIN sluice_app.devices d "
                                          "ON d.id = t.device_id WHERE d.key = 'burst'"))
            assert burst_rows == ALLOWANCE, burst_rows
            stop.set()
            t.join(timeout=60)
            assert not errors, errors
            print("steady device stored 20 more readings %.1f s after the burst" % took)
            sluice.stop()
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            stop.set()
            if t is not None:
                t.join(timeout=30)
            sluice.kill()
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
