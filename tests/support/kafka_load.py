# SPDX-License-Identifier: Apache-2.0
#
# Shared by the Kafka durability tests: devices that publish numbered readings at QoS 1 and
# resend what was not acknowledged, and the per-device exactly-once check against
# PostgreSQL.
import threading
import time

from mqtt_raw import V311, V5, ConnectionClosed, MqttError, Client, gen_publish, PUBACK  # noqa: E402

from sluice_process import psql  # noqa: E402

TOPIC = "sluice-telemetry"

# Fast group timing so that a dead worker's partitions move within seconds.
GROUP_CONFIG = """
[kafka.properties]
"session.timeout.ms" = "4000"
"heartbeat.interval.ms" = "500"
"reconnect.backoff.max.ms" = "500"
"""


class Device:
    """Publishes {"seq": n, "v": n} at QoS 1 and reconnects after errors; resends what was
    not acknowledged, as MQTT clients do."""

    def __init__(self, index):
        self.index = index
        self.proto = V5 if index % 2 else V311
        self.key = "kd-%d" % index
        self.topic = "devices/%s/telemetry" % self.key
        self.next_seq = 1
        self.acked = set()
        self.sent = set()

    def run(self, port_of, stop, rate_limit=0.002):
        while not stop.is_set():
            try:
                c = Client(port_of(), self.proto, timeout=2)
                c.connect("kd-client-%d" % self.index)
            except (OSError, MqttError, TypeError):
                time.sleep(0.2)
                continue
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
                    p = c.recv_packet(timeout=5)
                    if p.type == PUBACK:
                        seq = inflight.pop(p.mid, None)
                        if seq is not None:
                            self.acked.add(seq)
                    time.sleep(rate_limit)
            except (OSError, MqttError, ConnectionClosed):
                time.sleep(0.1)
            finally:
                c.close()


class Load:
    def __init__(self, devices, port_of, rate_limit=0.002):
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=d.run, args=(port_of, self.stop, rate_limit)) for d in devices]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


def stored_counts(db_url):
    rows = psql(db_url, "SELECT d.key, t.value::bigint, count(*) FROM sluice_telemetry.telemetry t "
                        "JOIN sluice_app.devices d ON d.id = t.device_id WHERE d.key LIKE 'kd-%' GROUP BY 1, 2")
    stored = {}
    for line in rows.splitlines():
        key, value, count = line.split("|")
        stored[(key, int(value))] = int(count)
    return stored


def wait_all_stored(db_url, devices, timeout=60):
    deadline = time.time() + timeout
    missing = None
    while time.time() < deadline:
        stored = stored_counts(db_url)
        missing = [(d.key, s) for d in devices for s in d.acked if (d.key, s) not in stored]
        if not missing:
            return stored
        time.sleep(0.5)
    raise AssertionError("%d acknowledged readings not stored, e.g. %s" % (len(missing), missing[:5]))


def check_exactly_once(stored, devices, minimum):
    total_acked = 0
    by_key = {d.key: d for d in devices}
    for d in devices:
        total_acked += len(d.acked)
        for seq in d.acked:
            assert stored.get((d.key, seq)) == 1, "%s seq %d stored %s times, acknowledged once" % (
                d.key, seq, stored.get((d.key, seq)))
    for (key, seq), count in stored.items():
        assert count == 1, "%s seq %d stored %d times" % (key, seq, count)
        assert seq in by_key[key].sent, "%s seq %d stored but never sent" % (key, seq)
    assert total_acked >= minimum, "too little traffic: %d acknowledged" % total_acked
    return total_acked


def kafka_args(mock):
    return ["--bus", "kafka", "--kafka-brokers", mock.bootstraps, "--kafka-topic", TOPIC]
