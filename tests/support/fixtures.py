# SPDX-License-Identifier: Apache-2.0
#
# pytest fixtures shared by tests/integration and tests/interop (each conftest.py imports
# this module). One broker per test keeps tests independent: no retained message, session
# or subscription leaks from one test into the next. After the test the broker must still
# be alive (a crash is a failure even if the test's assertions passed) and must stop
# cleanly on SIGTERM with exit code 0.

import itertools
import os

import pytest

import broker as broker_mod

_counter = itertools.count()

# Tests that check a MUST of the specification that mosquitto 2.0.11 does not honour.
# They run against Sluice and are skipped, with the reason, against mosquitto.
def spec_strict(reason):
    return pytest.mark.skipif(broker_mod.is_mosquitto(),
                              reason="spec-strict (mosquitto 2.0.11 deviates): " + reason)


def _finish(b):
    try:
        if b.proc is not None:
            assert b.alive(), "broker died during the test:\n" + b.log_tail()
            code = b.stop()
            assert code == 0, "broker exit code %s on SIGTERM:\n%s" % (code, b.log_tail())
    finally:
        b.cleanup()


@pytest.fixture
def broker():
    """A fresh broker (Sluice, or mosquitto when BROKER=mosquitto); .port is its MQTT port."""
    b = broker_mod.Broker()
    try:
        b.start()
    except Exception:
        b.cleanup()
        raise
    yield b
    _finish(b)


@pytest.fixture
def uid(request):
    """A short unique string for client ids and topics of this test."""
    name = request.node.name.replace("[", "-").replace("]", "")[:24]
    return "%s-%d-%d" % (name, os.getpid(), next(_counter))
