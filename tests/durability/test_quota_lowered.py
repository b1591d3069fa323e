# SPDX-License-Identifier: Apache-2.0
#
# Issue 11, "lowering the quota below the active segment stops ingest forever": the log is
# filled (database down) with a 3 MB active segment under a large quota; sluice restarts
# with a 1 MiB quota and the database up. Only sealed segments can be deleted, so before
# the fix the active segment kept the log over its quota forever: over_quota stayed 1 and
# no new PUBLISH was ever acknowledged. Now the oversized last segment is sealed at start,
# deleted once the pipeline stored it, and ingest resumes; every acknowledged reading is
# stored exactly once.
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, PUBACK, Client, gen_publish  # noqa: E402

from sluice_process import PG_STOP, pg_start, pg_stop, psql, Sluice, wait_for  # noqa: E402

BIG = """
[wal]
quota_bytes = 268435456
segment_bytes = 33554432
"""
SMALL = """
[wal]
quota_bytes = 1048576
segment_bytes = 33554432

[ingest]
over_quota = "pause"
"""
PAD = 3000


def publish(port, key, first, count, timeout):
    """QoS 1, a window of 32; returns the values acknowledged (raises on timeout)."""
    c = Client(port, V311, timeout=timeout)
    c.connect("lowered-" + key, keepalive=120)
    topic = "devices/%s/telemetry" % key
    acked, inflight, mid = set(), {}, 0
    deadline = time.time() + timeout
    n = first
    try:
        while len(acked) < count:
            assert time.time() < deadline, "only %d of %d acknowledged in %ds" % (len(acked), count, timeout)
            if n < first + count and len(inflight) < 32:
                mid = mid % 65535 + 1
                head = '{"v": %d' % n
                c.send(gen_publish(topic, 1, (head + " " * PAD + "}").encode(), mid=mid, proto_ver=V311))
                inflight[mid] = n
                n += 1
                continue
            p = c.recv_packet(timeout=max(0.1, deadline - time.time()))
            if p.type == PUBACK and p.mid in inflight:
                acked.add(inflight.pop(p.mid))
    finally:
        c.close()
    return acked


def test_restart_with_quota_below_active_segment_resumes():
    with tempfile.TemporaryDirectory(prefix="sluice-lowered-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        big, small = os.path.join(tmp, "big.toml"), os.path.join(tmp, "small.toml")
        open(big, "w").write(BIG)
        open(small, "w").write(SMALL)
        db_url = pg_start(pg_dir)
        log = os.path.join(tmp, "sluice.log")
        sluice = Sluice(data_dir, db_url, config_path=big, log_path=log, log_level="info")
        try:
            pg_stop(pg_dir)
            sluice.start()
            first = publish(sluice.port, "dev", 1, 1000, 60)  # ~3 MB (2.9 MiB), all in the active segment
            m = sluice.metrics()
            assert m.get("sluice_bus_bytes", 0) > 2 * 1048576, m
            sluice.stop()

            pg_start(pg_dir)
            sluice = Sluice(data_dir, db_url, config_path=small, log_path=log, log_level="info")
            sluice.start()
            # The pipeline stores the backlog, the sealed segment goes, the quota clears.
            wait_for(lambda: sluice.metrics().get("sluice_bus_over_quota") == 0, 60, "over_quota back to 0")
            second = publish(sluice.port, "dev", 1001, 200, 60)
            wait_for(lambda: sluice.metrics().get("sluice_bus_lag_messages") == 0, 60, "lag 0")
            assert sluice.metrics().get("sluice_ingest_failed_total") == 0
            sluice.stop()

            acked = first | second
            out = psql(db_url, "SELECT t.value::bigint, count(*) FROM sluice_telemetry.telemetry t "
                               "JOIN sluice_app.devices d ON d.id = t.device_id WHERE d.key = 'dev' GROUP BY 1")
            stored = {int(v): int(c) for v, c in (line.split("|") for line in out.splitlines())}
            assert all(c == 1 for c in stored.values()), "duplicates: %r" % {v: c for v, c in stored.items() if c != 1}
            assert set(stored) == acked, "stored %d, acknowledged %d" % (len(stored), len(acked))
        except BaseException:
            print("---- sluice log (tail) ----\n" + sluice.log_tail())
            raise
        finally:
            sluice.kill()
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
