# SPDX-License-Identifier: Apache-2.0
#
# Starts and stops the broker under test for black-box and interop tests. The same tests
# run against Sluice (the default) and against Debian's mosquitto (BROKER=mosquitto), which
# is how we know the tests themselves are right: a test that fails on mosquitto is either
# wrong or checks something mosquitto gets wrong, and the latter are marked spec-strict.
#
# Sluice's contract: `sluice serve --mqtt-port 0 --http-port 0 --bind 127.0.0.1 --data-dir D`
# writes the chosen port to D/mqtt.port once it accepts connections and exits 0 on SIGTERM.
# Every start is bounded in time, and every process started here is stopped (SIGTERM, then
# SIGKILL) when the test ends, whatever happened.

import ctypes
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def broker_kind():
    return os.environ.get("BROKER", "sluice").strip().lower() or "sluice"


def is_mosquitto():
    return broker_kind() == "mosquitto"


def sluice_binary():
    return os.environ.get("SLUICE_BIN") or os.path.join(REPO, "build", "bin", "sluice")


def free_port():
    """A port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class BrokerError(RuntimeError):
    pass


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Runs in the child before exec: if the test process is killed (a ctest TIMEOUT sends
    SIGKILL to pytest, which then cannot clean up), the kernel kills the broker too, so no
    broker outlives its test run."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Broker:
    """One broker process with its own data directory.

    start() returns once the MQTT port accepts connections; stop() sends SIGTERM and
    returns the exit code (SIGKILL after STOP_TIMEOUT, reported as an error). restart()
    keeps the data directory (and, for mosquitto, the port)."""

    def __init__(self, kind=None, data_dir=None, config_text=None):
        self.kind = kind or broker_kind()
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sluice-it-")
        self.config_text = config_text
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "broker.log")
        self._log = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self):
        if self.proc is not None:
            raise BrokerError("already running")
        self._log = open(self.log_path, "ab")
        if self.kind == "mosquitto":
            self._start_mosquitto()
        elif self.kind == "sluice":
            self._start_sluice()
        else:
            raise BrokerError("unknown BROKER=%r (sluice or mosquitto)" % self.kind)
        return self

    def _start_sluice(self):
        binary = sluice_binary()
        if not os.access(binary, os.X_OK):
            raise BrokerError("sluice binary not found or not executable: %s (build it, or set "
                              "SLUICE_BIN)" % binary)
        port_file = os.path.join(self.data_dir, "mqtt.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        args = [binary, "serve", "--mqtt-port", "0", "--http-port", "0", "--bind", "127.0.0.1",
                "--data-dir", self.data_dir]
        if self.config_text is not None:
            cfg = os.path.join(self.data_dir, "sluice-test.toml")
            with open(cfg, "w") as f:
                f.write(self.config_text)
            args += ["--config", cfg]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError("sluice exited with %s during start-up:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    port = int(text)
                    if _port_accepts(port):
                        self.port = port
                        return
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        self._kill()
        raise BrokerError("sluice did not write %s within %.0fs:\n%s" % (
            port_file, START_TIMEOUT, self.log_tail()))

    def _start_mosquitto(self):
        if self.port is None:
            self.port = free_port()
        conf = os.path.join(self.data_dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write("allow_anonymous true\n")
            f.write("persistence true\n")
            f.write("persistence_location %s/\n" % self.data_dir)
            f.write("log_dest stderr\n")
            f.write("log_type error\nlog_type warning\nlog_type notice\n")
            f.write("user %s\n" % getpass.getuser())
            if self.config_text:
                f.write(self.config_text)
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=self._log,
                                     stderr=self._log, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError("mosquitto exited with %s during start-up:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if _port_accepts(self.port):
                return
            time.sleep(0.02)
        self._kill()
        raise BrokerError("mosquitto did not listen on %d:\n%s" % (self.port, self.log_tail()))

    def stop(self):
        """SIGTERM and wait; returns the exit code. Kills and raises if it hangs."""
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                raise BrokerError("%s did not stop within %.0fs of SIGTERM:\n%s" % (
                    self.kind, STOP_TIMEOUT, self.log_tail()))
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return proc.returncode

    def kill(self):
        """SIGKILL (a crash), keeping the data directory."""
        self._kill()

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self):
        code = self.stop()
        self.start()
        return code

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self._kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"
