# SPDX-License-Identifier: Apache-2.0
#
# Issue 12: a publish the ACL denies is neither delivered nor ingested. Real clients
# (mosquitto_pub, MQTT 3.1.1 and 5.0) authenticate with a password file and publish to
# their own telemetry topic and to another device's; only their own readings reach
# PostgreSQL, the forged ones never do (not even as dead letters), and the denials are counted.
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from sluice_process import PG_START, PG_STOP, SLUICE, Sluice, rows  # noqa: E402


def pub(port, user, topic, payload, version):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", version,
                           "-i", user + "-" + version, "-u", user, "-P", user + "-pw", "-t", topic, "-m", payload],
                          capture_output=True, timeout=20)


def test_denied_publish_never_reaches_postgresql():
    with tempfile.TemporaryDirectory(prefix="sluice-acl-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user and must reach pg_dir
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        pw = os.path.join(tmp, "pw")
        for i, user in enumerate(("alice", "bob")):
            args = [SLUICE, "passwd", "-b"] + (["-c"] if i == 0 else []) + [pw, user, user + "-pw"]
            subprocess.run(args, check=True, timeout=30)
        acl = os.path.join(tmp, "acl")
        with open(acl, "w") as f:
            f.write("pattern write devices/%u/telemetry\n")
        cfg = os.path.join(tmp, "sluice.toml")
        with open(cfg, "w") as f:
            f.write('[auth]\npassword_file = "%s"\nacl_file = "%s"\n' % (pw, acl))
        db_url = subprocess.run([PG_START, pg_dir], capture_output=True, text=True, check=True,
                                timeout=120).stdout.strip()
        sluice = Sluice(data_dir, db_url, config_path=cfg, log_path=os.path.join(tmp, "sluice.log"),
                        log_level="info")
        try:
            sluice.start()
            ts = int(time.time() * 1000) - 60_000
            for version in ("mqttv311", "mqttv5"):
                own = pub(sluice.port, "alice", "devices/alice/telemetry",
                          json.dumps({"ts": ts, "temperature": 20.5}), version)
                assert own.returncode == 0, own.stderr
                ts += 1000
                # Forged: alice writing as bob. 3.1.1 gets a plain PUBACK (dropped); 5.0 gets 0x87.
                pub(sluice.port, "alice", "devices/bob/telemetry", json.dumps({"ts": ts, "temperature": 99.0}),
                    version)
                ts += 1000
            bob = pub(sluice.port, "bob", "devices/bob/telemetry", json.dumps({"ts": ts, "temperature": 7.0}),
                      "mqttv5")
            assert bob.returncode == 0, bob.stderr
            sluice.wait_caught_up(expected_rows=3)
            time.sleep(1.0)  # anything else in flight would land now
            got = rows(db_url, "SELECT d.key, t.value FROM sluice_telemetry.telemetry t "
                               "JOIN sluice_app.devices d ON d.id = t.device_id ORDER BY t.time")
            assert got == [["alice", "20.5"], ["alice", "20.5"], ["bob", "7"]], got
            assert rows(db_url, "SELECT count(*) FROM sluice_telemetry.dead_letters") == [["0"]]
            assert sluice.metric("acl_denied_total") == 2
        finally:
            try:
                if sluice.proc is not None:
                    sluice.stop()
            finally:
                subprocess.run([PG_STOP, pg_dir], capture_output=True, timeout=120)
