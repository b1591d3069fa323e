# SPDX-License-Identifier: Apache-2.0
#
# Issue 11, "lag goes blind": sluice_bus_lag_seconds is the age of the oldest reading not
# yet stored, so it keeps growing while the database is down even when nothing new
# arrives (it used to be "newest durable minus newest stored" and froze); and every lag
# and pipeline metric exists from the first scrape, also after a restart with the database
# down (they used to appear only once the database answered).
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, PUBACK, Client, gen_publish  # noqa: E402

from sluice_process import PG_STOP, pg_start, pg_stop, Sluice, wait_for  # noqa: E402

METRICS = ("sluice_bus_lag_messages", "sluice_bus_lag_seconds", "sluice_pipeline_database_up",
           "sluice_pipeline_committed_offset", "sluice_pipeline_rows_total", "sluice_pipeline_retries_total",
           "sluice_bus_over_quota", "sluice_pipeline_running")


def publish(port, count):
    c = Client(port, V311, timeout=10)
    c.connect("lag-client", keepalive=60)
    for n in range(count):
        c.send(gen_publish("devices/lag/telemetry", 1, ('{"v": %d}' % n).encode(), mid=n + 1, proto_ver=V311))
    acked = 0
    while acked < count:
        if c.recv_packet(timeout=10).type == PUBACK:
            acked += 1
    c.close()


def test_lag_grows_while_database_down_and_exists_after_restart():
    with tempfile.TemporaryDirectory(prefix="sluice-lag-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        db_url = pg_start(pg_dir)
        log = os.path.join(tmp, "sluice.log")
        sluice = Sluice(data_dir, db_url, log_path=log, log_level="info")
        try:
            sluice.start()
            wait_for(lambda: sluice.metrics().get("sluice_pipeline_database_up") == 1, 30, "database up")
            publish(sluice.port, 5)
            sluice.wait_caught_up(5)
            pg_stop(pg_dir)
            publish(sluice.port, 20)
            # Nothing new arrives; the waiting readings age, and the lag says so.
            first = wait_for(lambda: sluice.metrics().get("sluice_bus_lag_seconds", 0) > 0 and sluice.metrics(),
                             30, "lag seconds > 0")
            time.sleep(3)
            second = sluice.metrics()
            assert second["sluice_bus_lag_messages"] == 20, second
            assert second["sluice_bus_lag_seconds"] >= first["sluice_bus_lag_seconds"] + 2.5, (first, second)

            # Restart with the database still down: every metric from the very first scrape.
            sluice.kill()
            sluice.start()
            m = sluice.metrics()
            missing = [k for k in METRICS if k not in m]
            assert not missing, "absent after a restart with the database down: %r" % missing
            assert m["sluice_pipeline_database_up"] == 0, m
            assert m["sluice_bus_lag_messages"] == 20, m
            assert m["sluice_bus_lag_seconds"] >= second["sluice_bus_lag_seconds"], (second, m)
            time.sleep(2)
            later = sluice.metrics()
            assert later["sluice_bus_lag_seconds"] >= m["sluice_bus_lag_seconds"] + 1.5, (m, later)

            # The database returns: the backlog drains and the lag goes back to 0.
            pg_start(pg_dir)
            m = wait_for(lambda: (lambda mm: mm if mm.get("sluice_bus_lag_messages") == 0 else None)(
                sluice.metrics()), 60, "lag 0")
            assert m["sluice_bus_lag_seconds"] == 0, m
            assert m["sluice_pipeline_database_up"] == 1, m
            sluice.stop()
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            sluice.kill()
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
