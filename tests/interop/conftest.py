# SPDX-License-Identifier: Apache-2.0
#
# Makes tests/support importable and provides its fixtures (broker, uid) to these tests.

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from fixtures import broker, uid  # noqa: E402,F401
