# SPDX-License-Identifier: Apache-2.0
#
# Runs the Paho C++ interop program (tests/interop/paho_cpp, built by tests/CMakeLists.txt
# as PAHO_INTEROP_BIN) against the broker under test, for MQTT 3.1.1 and 5.0. A missing
# program is a failure, never a skip.

import os
import subprocess

import pytest

from broker import REPO


def program():
    return os.environ.get("PAHO_INTEROP_BIN") or os.path.join(
        REPO, "build", "tests", "paho_interop")


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
def test_paho_cpp(broker, version):
    exe = program()
    assert os.access(exe, os.X_OK), "Paho C++ interop program not built: %s" % exe
    r = subprocess.run([exe, str(broker.port), str(version)], capture_output=True, text=True,
                       timeout=90)
    print(r.stdout)
    assert r.returncode == 0, "Paho C++ interop failed:\n%s\n%s" % (r.stdout, r.stderr)
    assert r.stdout.count("ok ") == 4, r.stdout
