# SPDX-License-Identifier: Apache-2.0
#
# Promise 1: an acknowledgement means durable. Publishers send QoS 1 messages with
# sequence numbers to ingest topics while the broker is killed with SIGKILL at random
# moments (12 times). After each restart they reconnect and resend whatever was not
# acknowledged. At the end the WAL, read back with sluice-wal-dump, must hold every
# acknowledged message; a message may appear twice only if it was sent twice (QoS 1
# resend after an unacknowledged attempt), never otherwise.
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from mqtt_raw import V311, V5, ConnectionClosed, MqttError, Client, gen_publish, PUBACK  # noqa: E402

from sluice_process import WAL_DUMP, Sluice  # noqa: E402


class Publisher:
    """Sends QoS 1 messages 'p<k>-<seq>' with up to `window` in flight; remembers what
    was acknowledged and what was sent more than once."""

    def __init__(self, index, proto):
        self.index = index
        self.proto = proto
        self.topic = "devices/crash-%d/telemetry" % index
        self.next_seq = 0
        self.acked = set()
        self.sent_count = {}
        self.window = 16

    def run(self, port, stop):
        try:
            c = Client(port, self.proto, timeout=2)
            c.connect("crash-pub-%d" % self.index)
        except (OSError, MqttError):
            return
        inflight = {}  # mid -> seq
        # Whatever was sent before and never acknowledged is sent again first.
        pending = sorted(s for s in self.sent_count if s not in self.acked)
        mid = 0
        try:
            while not stop.is_set():
                while len(inflight) < self.window:
                    if pending:
                        seq = pending.pop(0)
                    else:
                        seq = self.next_seq
                        self.next_seq += 1
                    mid = mid % 65535 + 1
                    payload = ("p%d-%d" % (self.index, seq)).encode()
                    c.send(gen_publish(self.topic, 1, payload, mid=mid, proto_ver=self.proto))
                    self.sent_count[seq] = self.sent_count.get(seq, 0) + 1
                    inflight[mid] = seq
                p = c.recv_packet(timeout=2)
                if p.type == PUBACK:
                    seq = inflight.pop(p.mid, None)
                    if seq is not None:
                        self.acked.add(seq)
        except (OSError, MqttError, ConnectionClosed):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass


def read_wal(data_dir):
    out = subprocess.run([WAL_DUMP, os.path.join(data_dir, "wal"), "--records"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    counts = {}
    for m in re.finditer(r'payload=\d+B "(p\d+-\d+)"', out):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_acknowledged_messages_survive_kill_9():
    rng = random.Random(int(os.environ.get("SLUICE_TEST_SEED", "1234")))
    with tempfile.TemporaryDirectory(prefix="sluice-crash-") as data_dir:
        publishers = [Publisher(0, V311), Publisher(1, V5), Publisher(2, V311), Publisher(3, V5)]
        kills = 0
        for round_ in range(12):
            sluice = Sluice(data_dir)
            sluice.start()
            port = sluice.port
            stop = threading.Event()
            threads = [threading.Thread(target=p.run, args=(port, stop)) for p in publishers]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 0.8))
            sluice.kill()
            kills += 1
            stop.set()
            for t in threads:
                t.join(timeout=10)
        # A last clean run so the final unacknowledged messages get their chance.
        sluice = Sluice(data_dir)
        sluice.start()
        port = sluice.port
        stop = threading.Event()
        threads = [threading.Thread(target=p.run, args=(port, stop)) for p in publishers]
        for t in threads:
            t.start()
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        sluice.stop()

        in_log = read_wal(data_dir)
        total_acked = 0
        for p in publishers:
            total_acked += len(p.acked)
            for seq in p.acked:
                key = "p%d-%d" % (p.index, seq)
                assert in_log.get(key, 0) >= 1, "acknowledged %s missing from the WAL" % key
            for seq, sent in p.sent_count.items():
                key = "p%d-%d" % (p.index, seq)
                assert in_log.get(key, 0) <= sent, "%s is in the WAL %d times but was sent %d times" % (
                    key, in_log.get(key, 0), sent)
        assert kills >= 10
        assert total_acked > 1000, "too little traffic to mean anything: %d acknowledged" % total_acked
        print("acknowledged %d messages across %d kills; WAL holds %d distinct" % (
            total_acked, kills, len(in_log)))
