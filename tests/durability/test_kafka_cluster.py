# SPDX-License-Identifier: Apache-2.0
#
# `sluice broker` + `sluice pipeline` workers in one consumer group, on librdkafka's mock
# cluster (build/bin/sluice-kafka-mock) and a real PostgreSQL: a worker is killed -9 mid-load,
# another joins, and one is frozen (SIGSTOP) past its session timeout so that its partitions
# move while it still holds a batch; thawed, it must not store that batch (fencing:
# compare-and-set of the offset in the database). Every acknowledged reading is in
# PostgreSQL exactly once, counted per device.
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from kafka_load import (GROUP_CONFIG, TOPIC, Device, Load, check_exactly_once, kafka_args,  # noqa: E402
                        stored_counts, wait_all_stored)
from sluice_process import KafkaMock, Sluice, pg_start, pg_stop  # noqa: E402


def test_broker_and_pipeline_workers_rebalance_and_fence_a_frozen_worker():
    with tempfile.TemporaryDirectory(prefix="sluice-kafka-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        db_url = pg_start(pg_dir)
        mock = KafkaMock(brokers=3, partitions=6, topic=TOPIC)
        config = os.path.join(tmp, "sluice.toml")
        with open(config, "w") as f:
            f.write("[kafka]\ndelivery_timeout_ms = 10000\n" + GROUP_CONFIG)

        def node(name, role):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            return Sluice(d, db_url, config_path=config, role=role, extra_args=kafka_args(mock), log_level="info")

        broker = node("broker", "broker")
        workers = [node("w1", "pipeline"), node("w2", "pipeline")]
        devices = [Device(i) for i in range(8)]
        frozen = None
        try:
            broker.start()
            for w in workers:
                w.start()
            load = Load(devices, lambda: broker.port)
            time.sleep(3)
            workers[0].kill()                # a worker crashes mid-load
            time.sleep(2)
            w3 = node("w3", "pipeline")      # a worker joins mid-load
            w3.start()
            workers.append(w3)
            # Once the group is stable (w2 and w3 share the 6 partitions; w1 is gone) and w2's
            # runners hold batches, w2 freezes; its partitions move after the session timeout.
            frozen = workers[1]
            deadline = time.time() + 40
            while time.time() < deadline:
                owned = [frozen.metric("pipeline_partitions_owned"), w3.metric("pipeline_partitions_owned")]
                if owned[0] and owned[1] and owned[0] + owned[1] == 6:
                    break
                time.sleep(0.3)
            assert owned[0] and owned[0] + owned[1] == 6, "the group did not settle: %s" % owned
            time.sleep(1.5)
            frozen.proc.send_signal(signal.SIGSTOP)
            deadline = time.time() + 40
            while time.time() < deadline:
                if w3.metric("pipeline_partitions_owned") == 6:
                    break
                time.sleep(0.3)
            assert w3.metric("pipeline_partitions_owned") == 6, "the frozen worker's partitions did not move"
            time.sleep(2)                    # w3 commits past where w2 stopped
            frozen.proc.send_signal(signal.SIGCONT)
            time.sleep(3)
            load.finish()
            wait_all_stored(db_url, devices)
            time.sleep(2)                    # anything still to come would be a duplicate
            total = check_exactly_once(stored_counts(db_url), devices, 500)
            fenced = frozen.metric("pipeline_fenced_batches_total") or 0
            assert fenced >= 1, "the thawed worker's stale batch was not fenced: %s" % frozen.log_tail()
            print("acknowledged %d readings, stored exactly once; %d stale batch(es) fenced" % (total, fenced))
            broker.stop()
            for w in workers[1:]:
                w.stop()
        finally:
            if frozen is not None and frozen.proc is not None:
                frozen.proc.send_signal(signal.SIGCONT)
            for n in [broker] + workers:
                n.kill()
            mock.close()
            pg_stop(pg_dir)
