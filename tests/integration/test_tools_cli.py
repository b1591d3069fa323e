# SPDX-License-Identifier: Apache-2.0
#
# The command-line contract of sluice and the tools beside it (sluice-loadgen,
# sluice-wal-dump), run as programs: --help and --version print on stdout and exit 0, the version is the
# project's (CMakeLists.txt), and a usage error exits 2 with a message on stderr that names
# the flag. Bench scripts and docs rely on these exits; base/cli.h implements them.

import os
import re
import subprocess

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN_DIR = os.path.dirname(os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "bin", "sluice")))
GOLDEN_WAL = os.path.join(ROOT, "tests", "golden", "wal", "v1")
TOOLS = ["sluice", "sluice-loadgen", "sluice-wal-dump"]
# Arguments that make each tool's command line valid, so that only the flag under test is wrong.
VALID_ARGS = {"sluice": ["serve"], "sluice-loadgen": [], "sluice-wal-dump": [GOLDEN_WAL]}


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(sluice VERSION ([0-9.]+)", f.read())
    assert m, "project(sluice VERSION x.y.z) not found in CMakeLists.txt"
    return m.group(1)


def run(tool, *args):
    path = os.path.join(BIN_DIR, tool)
    assert os.access(path, os.X_OK), "%s not built (build/bin)" % path
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("tool", TOOLS)
def test_help_on_stdout_exit_zero(tool):
    r = run(tool, "--help")
    assert r.returncode == 0, r.stderr
    assert "--help" in r.stdout and "--version" in r.stdout, r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("tool", TOOLS)
def test_version_is_the_project_version(tool):
    r = run(tool, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s %s" % (tool, project_version())


@pytest.mark.parametrize("tool", TOOLS)
def test_unknown_flag_exits_2_naming_it(tool):
    r = run(tool, *VALID_ARGS[tool], "--no-such-flag")
    assert r.returncode == 2
    assert "--no-such-flag" in r.stderr, r.stderr
    assert r.stderr.startswith(tool + ": ")
    assert r.stdout == ""


def test_loadgen_bad_value_names_the_flag_before_connecting():
    r = run("sluice-loadgen", "--port", "1", "--devices", "0")
    assert r.returncode == 2
    assert "--devices" in r.stderr, r.stderr


def test_loadgen_help_keeps_every_documented_flag():
    r = run("sluice-loadgen", "--help")
    with open(os.path.join(ROOT, "docs", "loadgen.md")) as f:
        documented = set(re.findall(r"`(--[a-z][a-z0-9-]*)", f.read()))
    assert documented, "docs/loadgen.md names its flags in backquotes"
    missing = sorted(flag for flag in documented if flag not in r.stdout)
    assert not missing, "documented but not in --help: %s" % missing


def test_wal_dump_needs_a_directory():
    r = run("sluice-wal-dump")
    assert r.returncode == 2
    assert "DIR" in r.stderr, r.stderr


def test_wal_dump_reads_a_golden_segment():
    segment = os.path.join(GOLDEN_WAL, "partition-0", "00000000000000000000.log")
    r = run("sluice-wal-dump", segment, "--from", "0")
    assert r.returncode == 0, r.stderr
    assert "segment" in r.stdout and "offset=" in r.stdout, r.stdout


def test_sluice_wal_dump_runs_the_reader():
    segment = os.path.join(GOLDEN_WAL, "partition-0", "00000000000000000000.log")
    r = run("sluice", "wal", "dump", segment, "--from", "0")
    assert r.returncode == 0, r.stderr
    assert "segment" in r.stdout and "offset=" in r.stdout, r.stdout


def test_sluice_help_lists_the_subcommands():
    r = run("sluice", "--help")
    assert r.returncode == 0, r.stderr
    for sub in ("serve", "broker", "pipeline", "passwd", "wal"):
        assert sub in r.stdout, r.stdout


def test_sluice_bad_flag_value_exits_2_before_starting(tmp_path):
    data_dir = tmp_path / "data"
    r = run("sluice", "serve", "--data-dir", str(data_dir), "--mqtt-port", "70000")
    assert r.returncode == 2
    assert r.stderr.startswith("sluice: ") and "--mqtt-port" in r.stderr, r.stderr
    assert not data_dir.exists()


def test_sluice_pipeline_refuses_mqtt_flags():
    r = run("sluice", "pipeline", "--bus", "kafka", "--kafka-brokers", "127.0.0.1:1", "--db", "postgresql:///x",
            "--mqtt-port", "1")
    assert r.returncode == 2
    assert "--mqtt-port does not apply" in r.stderr, r.stderr
