# SPDX-License-Identifier: Apache-2.0
#
# `sluice serve --bus kafka` end to end, on librdkafka's mock cluster
# (build/bin/sluice-kafka-mock, a process of its own) and a real PostgreSQL: devices publish
# numbered readings at QoS 1 while a Kafka broker goes down and comes back, partition
# leaders move and sluice is killed -9. Every acknowledged reading is in PostgreSQL exactly
# once, counted per device.
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from kafka_load import (GROUP_CONFIG, TOPIC, Device, Load, check_exactly_once, kafka_args,  # noqa: E402
                        stored_counts, wait_all_stored)
from sluice_process import KafkaMock, Sluice, pg_start, pg_stop  # noqa: E402


def test_serve_on_kafka_exactly_once_through_broker_outage_leader_move_and_kill():
    with tempfile.TemporaryDirectory(prefix="sluice-kafka-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        db_url = pg_start(pg_dir)
        mock = KafkaMock(brokers=3, partitions=4, topic=TOPIC)
        config = os.path.join(tmp, "sluice.toml")
        with open(config, "w") as f:
            f.write("[kafka]\ndelivery_timeout_ms = 5000\n" + GROUP_CONFIG)
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        node = Sluice(data_dir, db_url, config_path=config, extra_args=kafka_args(mock))
        devices = [Device(i) for i in range(6)]
        try:
            node.start()
            load = Load(devices, lambda: node.port)
            time.sleep(2)
            mock.command("down 1")          # a Kafka broker (leader of some partitions) dies
            time.sleep(3)
            mock.command("up 1")
            mock.command("leader %s 0 2" % TOPIC)
            mock.command("leader %s 1 3" % TOPIC)
            time.sleep(2)
            node.kill()                     # kill -9 with records in flight to Kafka
            node.start()
            time.sleep(2)
            load.finish()
            wait_all_stored(db_url, devices)
            m = node.metrics()
            assert m.get("sluice_kafka_consumergroup_group_offset", 0) > 0
            assert "sluice_kafka_consumergroup_group_lag" in m
            node.stop()
            total = check_exactly_once(stored_counts(db_url), devices, 300)
            print("acknowledged %d readings, stored exactly once" % total)
        finally:
            node.kill()
            mock.close()
            pg_stop(pg_dir)
