# SPDX-License-Identifier: Apache-2.0
#
# Issue 11, exactly once without device sequence numbers: Paho clients (MQTT 3.1.1 with
# clean session 0, MQTT 5.0 with clean start 0 and a session expiry) publish JSON readings
# without "seq" at QoS 1 while the broker is killed with SIGKILL ten times. After each
# restart Paho resends its unacknowledged PUBLISHes with DUP=1 (paho-mqtt 1.6,
# _messages_reconnect_reset_out). Some of them were already in the log when the broker
# died; the resend rule (broker/resend_window.h) must acknowledge those without logging
# them again. At the end every published reading is stored exactly once, counted per
# device, and the broker did acknowledge resends without logging them.
#
# Without the rule (mqtt.resend_window = 0) the same run stores duplicates: the rows a
# DUP=1 resend of a logged message adds are the duplicates the issue reported.
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from sluice_process import WAL_DUMP, Sluice, pg_start, pg_stop, rows  # noqa: E402

KILLS = int(os.environ.get("SLUICE_TEST_KILLS", "10"))
DEVICES = 4
# Paho's default window. The broker remembers each session's last mqtt.resend_window (32)
# logged packet ids, so a client must not have more unacknowledged than that. Paho 1.6
# resends its whole queue after a reconnect, whatever max_inflight says, so the devices
# below never queue more than MAX_INFLIGHT either.
MAX_INFLIGHT = 20


def free_port():
    # The broker restarts on the same port so that Paho's own reconnect finds it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Device:
    def __init__(self, index, port):
        self.index = index
        self.key = "ro-%d" % index
        self.topic = "devices/%s/telemetry" % self.key
        self.v5 = index % 2 == 1
        client_id = "ro-client-%d" % index
        if self.v5:
            self.client = paho.Client(client_id, protocol=paho.MQTTv5)
        else:
            self.client = paho.Client(client_id, clean_session=False, protocol=paho.MQTTv311)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        # Paho numbers messages 1..65535; a device publishes far fewer here, so a mid names
        # one reading. on_publish runs on Paho's thread holding Paho's lock: it only records.
        self.values = {}  # mid -> value
        self.acked_mids = set()
        self.acked_lock = threading.Lock()
        self.client.on_publish = self.on_publish
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.port = port

    def on_publish(self, client, userdata, mid):
        with self.acked_lock:
            self.acked_mids.add(mid)

    def start(self):
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect("127.0.0.1", self.port, keepalive=30, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        self.thread.start()

    def unacked(self):
        with self.acked_lock:
            return len(self.values) - len(self.acked_mids)

    def run(self):
        # A steady stream, connected or not (Paho queues while disconnected and resends
        # on reconnect), with at most MAX_INFLIGHT unacknowledged.
        while not self.stop.is_set():
            if self.unacked() < MAX_INFLIGHT:
                v = len(self.values) + 1
                self.values[self.client.publish(self.topic, '{"v": %d}' % v, qos=1).mid] = v
            time.sleep(0.003)

    def finish(self, timeout):
        self.stop.set()
        self.thread.join(timeout=10)
        deadline = time.time() + timeout
        while time.time() < deadline and self.unacked() > 0:
            time.sleep(0.05)
        self.client.loop_stop()
        self.client.disconnect()
        assert self.unacked() == 0, "%s: %d readings never acknowledged" % (self.key, self.unacked())

    def acked(self):
        with self.acked_lock:
            return {self.values[mid] for mid in self.acked_mids}


def test_paho_resends_after_kill_9_are_stored_once():
    with tempfile.TemporaryDirectory(prefix="sluice-resend-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the postgres user and must reach pg_dir
        pg_dir = os.path.join(tmp, "pg")
        db_url = pg_start(pg_dir)
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        port = free_port()
        sluice = Sluice(data_dir, db_url, extra_args=["--mqtt-port", str(port)])
        devices = [Device(i, port) for i in range(DEVICES)]
        resends_acknowledged = 0
        try:
            sluice.start()
            for d in devices:
                d.start()
            for kill in range(KILLS):
                time.sleep(0.8 + 0.1 * (kill % 4))
                # Resends acknowledged since the last restart (the counter starts at 0 each run).
                resends_acknowledged += sluice.metric("ingest_resends_acknowledged_total") or 0
                sluice.kill()
                sluice.start()
            time.sleep(1.0)
            for d in devices:
                d.finish(timeout=30)
            m = sluice.wait_caught_up(timeout=60)
            resends_acknowledged += m.get("sluice_ingest_resends_acknowledged_total", 0)
            sluice.stop()

            stored = {}
            for key, value, count in rows(db_url, "SELECT d.key, t.value::bigint, count(*) "
                                                  "FROM sluice_telemetry.telemetry t "
                                                  "JOIN sluice_app.devices d ON d.id = t.device_id GROUP BY 1, 2"):
                stored[(key, int(value))] = int(count)
            report = []
            for d in devices:
                acked = d.acked()
                duplicated = sorted(v for v in acked if stored.get((d.key, v), 0) > 1)
                lost = sorted(v for v in acked if (d.key, v) not in stored)
                extra = sorted(v for (k, v) in stored if k == d.key and v not in acked)
                report.append("%s (%s): %d acknowledged, %d duplicated, %d lost, %d never acknowledged" % (
                    d.key, "5.0" if d.v5 else "3.1.1", len(acked), len(duplicated), len(lost), len(extra)))
                if duplicated:  # how each copy reached the log: packet ids and receive times
                    dump = subprocess.run([WAL_DUMP, "--records", os.path.join(data_dir, "wal")], capture_output=True,
                                          text=True, timeout=60).stdout
                    for v in duplicated[:3]:
                        print("\n".join(line for line in dump.splitlines()
                                        if d.topic in line and '"{\\x22v\\x22: %d}"' % v in line))
                assert not duplicated, "%s: readings stored more than once: %s" % (d.key, duplicated[:20])
                assert not lost, "%s: acknowledged readings missing: %s" % (d.key, lost[:20])
                assert not extra, "%s: stored but never published: %s" % (d.key, extra[:20])
                assert len(acked) > 200, "too little traffic from %s: %d" % (d.key, len(acked))
            print("\n".join(report))
            print("resends acknowledged without logging: %d over %d kills" % (resends_acknowledged, KILLS))
            assert resends_acknowledged > 0, "no kill caught a logged, unacknowledged message: the rule went untested"
        except AssertionError:
            print(sluice.log_tail())
            raise
        finally:
            for d in devices:
                d.stop.set()
                d.client.loop_stop()
            if sluice.proc and sluice.proc.poll() is None:
                sluice.proc.kill()
            pg_stop(pg_dir)
