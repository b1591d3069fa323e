# SPDX-License-Identifier: Apache-2.0
#
# Interoperability with the mosquitto command-line clients (Debian's mosquitto-clients:
# mosquitto_pub and mosquitto_sub), MQTT 3.1.1 and 5.0: QoS 0/1/2, retained messages,
# wills, and persistent sessions. These are the tools operators reach for first, so they
# must work against Sluice exactly as against any other broker.

import os
import signal
import subprocess
import time

import pytest

from mqtt_raw import V5, connected

TIMEOUT = 15
VERSIONS = pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
FMT = "%t|%q|%r|%p"  # topic|qos|retain|payload


def base(port, version):
    return ["-h", "127.0.0.1", "-p", str(port), "-V", version]


def pub(port, version, topic, message, qos=0, retain=False, extra=()):
    args = ["mosquitto_pub"] + base(port, version) + ["-t", topic, "-m", message,
                                                        "-q", str(qos)]
    if retain:
        args.append("-r")
    r = subprocess.run(args + list(extra), capture_output=True, timeout=TIMEOUT, text=True)
    assert r.returncode == 0, r.stderr


class Sub:
    """mosquitto_sub in the background; started() returns once its SUBACK arrived."""

    def __init__(self, port, version, topic, qos, count, extra=()):
        args = ["stdbuf", "-oL", "mosquitto_sub"] + base(port, version) + [
            "-t", topic, "-q", str(qos), "-C", str(count), "-W", str(TIMEOUT), "-d",
            "-F", FMT] + list(extra)
        # stdbuf: mosquitto_sub's stdout is block-buffered on a pipe otherwise.
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if "received SUBACK" in line or "Received SUBACK" in line:
                return
        self.kill()
        raise AssertionError("mosquitto_sub did not subscribe: %r" % (self.lines,))

    def messages(self):
        """Waits for exit (bounded by -W) and returns (topic, qos, retain, payload) tuples."""
        # Keep reading through the same buffered file object: part of the output may
        # already sit in its buffer.
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
        self.proc.wait(TIMEOUT + 5)
        assert self.proc.returncode == 0, (self.proc.returncode, self.lines)
        return [tuple(l.split("|", 3)) for l in self.lines
                if "|" in l and not l.startswith("Client ")]

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(TIMEOUT)


@VERSIONS
def test_qos_levels(broker, uid, version):
    topic = "mc/" + uid
    sub = Sub(broker.port, version, topic, 2, 3)
    for qos in (0, 1, 2):
        pub(broker.port, version, topic, "m%d" % qos, qos=qos)
    assert sub.messages() == [(topic, str(q), "0", "m%d" % q) for q in (0, 1, 2)]


@VERSIONS
def test_retained(broker, uid, version):
    topic = "mr/" + uid
    pub(broker.port, version, topic, "kept", qos=1, retain=True)
    sub = Sub(broker.port, version, topic, 1, 1)
    assert sub.messages() == [(topic, "1", "1", "kept")]
    # Clear it: an empty retained message (-n sends a zero-length payload).
    r = subprocess.run(["mosquitto_pub"] + base(broker.port, version) +
                       ["-t", topic, "-n", "-r", "-q", "1"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0
    r = subprocess.run(["mosquitto_sub"] + base(broker.port, version) +
                       ["-t", topic, "-q", "1", "-W", "1", "-F", FMT],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.stdout.strip() == ""  # nothing retained any more (-W timeout exits 27)


@VERSIONS
def test_will(broker, uid, version):
    topic = "mw/" + uid
    watcher = connected(broker.port, uid + "-w", V5)
    watcher.subscribe(topic, qos=1)
    victim = Sub(broker.port, version, "mw-other/" + uid, 0, 1,
                 extra=["--will-topic", topic, "--will-payload", "gone", "--will-qos", "1"])
    victim.kill()  # SIGKILL: no DISCONNECT
    p = watcher.receive()
    assert (p.topic, p.payload, p.qos) == (topic, b"gone", 1)
    # A clean exit (-C reached, DISCONNECT sent) publishes no will.
    polite = Sub(broker.port, version, "mw-x/" + uid, 0, 1,
                 extra=["--will-topic", topic, "--will-payload", "never"])
    pub(broker.port, version, "mw-x/" + uid, "bye")
    assert polite.messages() == [("mw-x/" + uid, "0", "0", "bye")]
    watcher.expect_nothing(1.0)
    watcher.disconnect()


@VERSIONS
def test_persistent_session(broker, uid, version):
    topic = "mp/" + uid
    session = ["-c", "-i", uid + "-ps"] + (["-x", "300"] if version == "mqttv5" else [])
    r = subprocess.run(["mosquitto_sub"] + base(broker.port, version) +
                       ["-t", topic, "-q", "2", "-E"] + session,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    for k, qos in enumerate((1, 2, 1, 2)):
        pub(broker.port, version, topic, "queued-%d" % k, qos=qos)
    sub = Sub(broker.port, version, topic, 2, 4, extra=session)
    got = sub.messages()
    assert sorted(got) == sorted((topic, str(q), "0", "queued-%d" % k)
                                 for k, q in enumerate((1, 2, 1, 2)))
