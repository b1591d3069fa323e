# SPDX-License-Identifier: Apache-2.0
#
# GET /api/cluster and `sluice status` with two `sluice pipeline` workers and a `sluice
# broker` on librdkafka's mock cluster (build/bin/sluice-kafka-mock) and a real PostgreSQL:
# asked of the broker node, which is not in the group, both workers appear and every
# partition has exactly one owner, lag reaches 0 once the readings are stored; a worker
# killed -9 loses its partitions to the other within a bounded time.
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from kafka_load import GROUP_CONFIG, TOPIC, Device, Load, kafka_args, wait_all_stored  # noqa: E402
from sluice_process import SLUICE, KafkaMock, Sluice, pg_start, pg_stop  # noqa: E402

PARTITIONS = 4


def cluster(node):
    return json.loads(urllib.request.urlopen("http://127.0.0.1:%d/api/cluster" % node.http, timeout=15).read())


def wait_for(node, pred, timeout, what):
    deadline = time.time() + timeout
    c = None
    while time.time() < deadline:
        c = cluster(node)
        if pred(c):
            return c
        time.sleep(0.3)
    raise AssertionError("%s: %s" % (what, json.dumps(c, indent=1)))


def one_owner_each(c, members):
    return (len(c["members"]) == members and not c["unowned"]
            and all(p["owners"] == 1 for p in c["partitions"]) and len(c["partitions"]) == PARTITIONS)


def test_cluster_view_names_both_workers_and_moves_a_dead_ones_partitions():
    with tempfile.TemporaryDirectory(prefix="sluice-kafka-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        db_url = pg_start(pg_dir)
        mock = KafkaMock(brokers=1, partitions=PARTITIONS, topic=TOPIC)
        config = os.path.join(tmp, "sluice.toml")
        with open(config, "w") as f:
            f.write(GROUP_CONFIG)

        def node(name, role):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            return Sluice(d, db_url, config_path=config, role=role, extra_args=kafka_args(mock), log_level="info")

        broker = node("b", "broker")
        workers = [node("w1", "pipeline"), node("w2", "pipeline")]
        try:
            for n in [broker] + workers:
                n.start()
            c = wait_for(broker, lambda c: one_owner_each(c, 2), 40, "both workers, one owner per partition")
            assert c["bus"] == "kafka" and c["topic"] == TOPIC and c["group"] == "sluice-pipeline"
            assert c["source"] in ("describe-groups", "offset-metadata")
            assert {m["client_id"] for m in c["members"]} == {"sluice-pipeline"}
            owned = sorted(p for m in c["members"] for p in m["partitions"])
            assert owned == list(range(PARTITIONS)), c

            devices = [Device(i) for i in range(4)]
            load = Load(devices, lambda: broker.port, rate_limit=0.01)
            time.sleep(2)
            load.finish()
            wait_all_stored(db_url, devices, timeout=60)
            c = wait_for(broker, lambda c: all(p["lag"] == 0 for p in c["partitions"]) and c["database"], 30,
                         "lag 0 once stored")
            assert sum(p["end_offset"] for p in c["partitions"]) > 0

            # The same table from the command line.
            out = subprocess.run([SLUICE, "status", "--http", "http://127.0.0.1:%d" % broker.http],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert "group sluice-pipeline" in out.stdout and "NO OWNER" not in out.stdout, out.stdout
            for m in c["members"]:
                assert m["member_id"] in out.stdout

            # A worker dies: within the session timeout (4 s) and a rebalance, the survivor
            # owns every partition.
            dead = workers[0]
            dead.kill()
            start = time.time()
            c = wait_for(broker, lambda c: one_owner_each(c, 1), 30, "the dead worker's partitions move")
            print("partitions moved %.1f s after kill -9" % (time.time() - start))
            assert sorted(c["members"][0]["partitions"]) == list(range(PARTITIONS))

            # The last worker stops too: every partition is flagged without an owner.
            workers[1].stop()
            c = wait_for(broker, lambda c: len(c["unowned"]) == PARTITIONS, 40, "no owner left")
            out = subprocess.run([SLUICE, "status", "--http", "http://127.0.0.1:%d" % broker.http],
                                 capture_output=True, text=True, timeout=30)
            assert "%d partition(s) without an owner" % PARTITIONS in out.stdout, out.stdout
            broker.stop()
        finally:
            for n in [broker] + workers:
                n.kill()
            mock.close()
            pg_stop(pg_dir)
