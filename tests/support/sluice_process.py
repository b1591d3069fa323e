# SPDX-License-Identifier: Apache-2.0
#
# The sluice program and a private PostgreSQL, for system tests that need more than the
# broker fixture (tests/support/broker.py): restarts over one data dir, kill -9, a
# database URL and config file, /metrics. Every process started here dies with the test
# process (PR_SET_PDEATHSIG), and only the PIDs started here are ever signalled.
import ctypes
import os
import signal
import subprocess
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(REPO, "build", "bin", "sluice")
WAL_DUMP = os.path.join(os.path.dirname(SLUICE), "sluice-wal-dump")
KAFKA_MOCK = os.path.join(os.path.dirname(SLUICE), "sluice-kafka-mock")
PG_START = os.path.join(REPO, "scripts", "pg-start")
PG_STOP = os.path.join(REPO, "scripts", "pg-stop")


def die_with_parent():
    """preexec_fn: if pytest is killed (ctest TIMEOUT), the child must not outlive it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


# Where scripts/install-timescaledb puts TimescaleDB for Debian's PostgreSQL 15.
TIMESCALEDB_LIB = "/usr/lib/postgresql/15/lib/timescaledb.so"
TIMESCALE_SKIP_REASON = ("TimescaleDB is not installed for PostgreSQL 15 (scripts/bootstrap builds it from "
                         "../shared/vendor when that directory exists; a plain checkout has no vendored copy, "
                         "so the TimescaleDB layout is not tested here)")


def timescale_installed():
    return os.path.exists(TIMESCALEDB_LIB)


def pg_start(pg_dir, timescale=False):
    """Starts (initdb on first use) a private PostgreSQL in pg_dir; returns its URL. The
    parent of pg_dir must be reachable by the postgres user (chmod 755 a mkdtemp dir).
    timescale: preload TimescaleDB (when installed); otherwise started --no-timescale."""
    return subprocess.run([PG_START] + ([] if timescale else ["--no-timescale"]) + [pg_dir], capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def pg_stop(pg_dir):
    subprocess.run([PG_STOP, pg_dir], check=True, timeout=120, capture_output=True)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def rows(url, sql):
    return [line.split("|") for line in psql(url, sql).splitlines() if line]


def wait_for(pred, timeout, what):
    """Polls pred() every 0.2 s until it returns something true (returned) or `timeout`
    seconds pass. what: a string, or a function giving one (evaluated at the timeout, so it
    can show the counts then)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what() if callable(what) else what))


class KafkaMock:
    """build/bin/sluice-kafka-mock: librdkafka's mock cluster in its own process, shared by
    several sluice processes; command() injects faults (see tools/kafka_mock/main.cc)."""

    def __init__(self, brokers=3, partitions=4, topic="sluice-telemetry"):
        self.topic = topic
        self.proc = subprocess.Popen([KAFKA_MOCK, "--brokers", str(brokers), "--partitions", str(partitions),
                                      "--topic", topic], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
        self.bootstraps = self.proc.stdout.readline().strip()
        assert self.bootstraps, "sluice-kafka-mock did not start"

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", "%s: %s" % (line, answer)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Sluice:
    """`sluice serve` (or `sluice broker` / `sluice pipeline`: role) on ports 0 over a data
    dir that survives restarts; extra_args are appended to the command line."""

    def __init__(self, data_dir, db_url=None, config_path=None, log_path=None, log_level="warn", role="serve",
                 extra_args=()):
        self.role = role
        self.extra_args = list(extra_args)
        self.data_dir = data_dir
        self.db_url = db_url
        self.config_path = config_path
        self.log_path = log_path or os.path.join(data_dir, "broker.log")
        self.log_level = log_level
        self.proc = None
        self.port = None
        self.http = None

    def start(self):
        for f in ("mqtt.port", "http.port"):
            p = os.path.join(self.data_dir, f)
            if os.path.exists(p):
                os.unlink(p)
        args = [SLUICE, self.role] + (["--mqtt-port", "0"] if self.role != "pipeline" else []) + [
            "--http-port", "0", "--bind", "127.0.0.1", "--data-dir", self.data_dir, "--log-level", self.log_level]
        if self.db_url:
            args += ["--db", self.db_url]
        if self.config_path:
            args += ["--config", self.config_path]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"),
                                     stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.role != "pipeline":
                    self.port = int(open(os.path.join(self.data_dir, "mqtt.port")).read())
                self.http = int(open(os.path.join(self.data_dir, "http.port")).read())
                return
            except (FileNotFoundError, ValueError):
                pass
            assert self.proc.poll() is None, "sluice exited with %s: %s" % (self.proc.returncode, self.log_tail())
            time.sleep(0.02)
        raise AssertionError("sluice did not start: %s" % self.log_tail())

    def log_tail(self):
        try:
            return open(self.log_path).read()[-int(os.environ.get("SLUICE_LOG_TAIL", "3000")):]
        except OSError:
            return ""

    def kill(self):
        """SIGKILL: no chance to save anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self):
        """SIGTERM; a clean shutdown must exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.proc = None
        assert rc == 0, "sluice exited with %s on SIGTERM: %s" % (rc, self.log_tail())

    def metrics(self):
        """GET /metrics as {name: value summed over labels}."""
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.http, timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def metric(self, name):
        return self.metrics().get("sluice_" + name)

    def wait_caught_up(self, expected_rows=0, timeout=60):
        """Waits (bounded) until bus lag is 0 and the pipeline has stored expected_rows."""
        deadline = time.time() + timeout
        m = {}
        while time.time() < deadline:
            m = self.metrics()
            if m.get("sluice_bus_lag_messages") == 0 and m.get("sluice_pipeline_rows_total", 0) >= expected_rows:
                return m
            time.sleep(0.2)
        raise AssertionError("pipeline did not catch up: lag %s rows %s (expected %d)" % (
            m.get("sluice_bus_lag_messages"), m.get("sluice_pipeline_rows_total"), expected_rows))
