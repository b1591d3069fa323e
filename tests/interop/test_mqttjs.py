# SPDX-License-Identifier: Apache-2.0
#
# Runs the MQTT.js interop program (tests/interop/mqttjs/interop.js) against the broker
# under test, for MQTT 3.1.1 and 5.0. MQTT.js comes from tests/node_modules, installed by
# scripts/bootstrap (`npm install` in tests/); if it is missing the test fails rather
# than silently passing.

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mqttjs", "interop.js")
NODE_MODULES = os.path.join(HERE, "..", "node_modules", "mqtt")


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
def test_mqttjs(broker, version):
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed (scripts/bootstrap installs nodejs)"
    assert os.path.isdir(NODE_MODULES), (
        "MQTT.js missing: run `npm install` in tests/ (scripts/bootstrap does)")
    r = subprocess.run([node, SCRIPT, str(broker.port), str(version)], capture_output=True,
                       text=True, timeout=90)
    print(r.stdout)
    assert r.returncode == 0, "MQTT.js interop failed:\n%s\n%s" % (r.stdout, r.stderr)
    assert r.stdout.count("ok ") == 4, r.stdout
