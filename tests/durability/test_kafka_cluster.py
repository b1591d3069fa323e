# SPDX-License-Identifier: Apache-2.0
#
# Three `sluice broker` nodes (devices spread over them) and `sluice pipeline` workers in
# one consumer group, on librdkafka's mock cluster (build/bin/sluice-kafka-mock) and a real
# PostgreSQL: a worker is killed -9 mid-load (twice), workers join mid-load, a Kafka broker
# goes down and comes back, and a worker is frozen (SIGSTOP) past its session timeout so
# that its partitions move while it holds batches; thawed, it must not store them (fencing:
# compare-and-set of the offset in the database). Every acknowledged reading is in
# PostgreSQL exactly once, counted per device.
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from kafka_load import (GROUP_CONFIG, TOPIC, Device, Load, check_exactly_once, kafka_args,  # noqa: E402
                        stored_counts, wait_all_stored)
from sluice_process import KafkaMock, Sluice, pg_start, pg_stop  # noqa: E402


def owned(w):
    return w.metric("pipeline_partitions_owned") or 0


def settle(a, b, partitions=6, timeout=40):
    """Waits until workers a and b, both alive, share all partitions (the others are gone)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = [owned(a), owned(b)]
        if got[0] and got[1] and sum(got) == partitions:
            return
        time.sleep(0.3)
    raise AssertionError("the group did not settle: %s" % ([owned(a), owned(b)],))


def test_three_brokers_and_pipeline_workers_through_kills_joins_kafka_outage_and_a_frozen_worker():
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

        brokers = [node("b%d" % i, "broker") for i in range(3)]
        workers = [node("w1", "pipeline"), node("w2", "pipeline")]
        devices = [Device(i) for i in range(12)]
        frozen = None
        try:
            for n in brokers + workers:
                n.start()
            # Devices spread over the three broker nodes.
            # Paced so that 7 processes and PostgreSQL on CI's 2 cores keep up (the pipeline's
            # lag, not its correctness, is what an unpaced load measures here).
            loads = [Load([d for d in devices if d.index % 3 == i], lambda b=b: b.port, rate_limit=0.01)
                     for i, b in enumerate(brokers)]
            time.sleep(3)
            workers[0].kill()                # a worker crashes mid-load (1st kill -9)
            time.sleep(1)
            w3 = node("w3", "pipeline")      # a worker joins mid-load
            w3.start()
            workers.append(w3)
            mock.command("down 2")           # a Kafka broker goes down mid-load, then returns
            time.sleep(3)
            mock.command("up 2")
            settle(workers[1], w3)
            w3.kill()                        # 2nd kill -9, with its batches in hand
            w4 = node("w4", "pipeline")
            w4.start()
            workers.append(w4)
            settle(workers[1], w4)
            # w2 freezes with batches in hand; its partitions move after the session timeout,
            # and when it thaws its stale batches must be refused.
            time.sleep(1.5)
            frozen = workers[1]
            frozen.proc.send_signal(signal.SIGSTOP)
            deadline = time.time() + 40
            while time.time() < deadline and owned(w4) != 6:
                time.sleep(0.3)
            assert owned(w4) == 6, "the frozen worker's partitions did not move"
            time.sleep(2)                    # w4 commits past where w2 stopped
            frozen.proc.send_signal(signal.SIGCONT)
            time.sleep(3)
            for load in loads:
                load.finish()
            wait_all_stored(db_url, devices, timeout=90)
            time.sleep(2)                    # anything still to come would be a duplicate
            total = check_exactly_once(stored_counts(db_url), devices, 2000)
            fenced = frozen.metric("pipeline_fenced_batches_total") or 0
            assert fenced >= 1, "the thawed worker's stale batch was not fenced: %s" % frozen.log_tail()
            print("acknowledged %d readings, stored exactly once; %d stale batch(es) fenced" % (total, fenced))
            for n in brokers + [workers[1], w4]:
                n.stop()
        finally:
            if os.environ.get("KEEP_LOGS"):  # a directory to copy every node's log into
                for n in brokers + workers:
                    shutil.copy(n.log_path, os.path.join(os.environ["KEEP_LOGS"], os.path.basename(n.data_dir) + ".log"))
            if frozen is not None and frozen.proc is not None:
                frozen.proc.send_signal(signal.SIGCONT)
            for n in brokers + workers:
                n.kill()
            mock.close()
            pg_stop(pg_dir)
