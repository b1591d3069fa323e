#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs a browser test of tests/browser with Node's test runner, for ctest (labels
# browser;integration) or by hand: `run.sh [FILE]`, FILE defaulting to dashboard.test.mjs
# (websocket.test.mjs: MQTT.js in the page over ws and wss; login.test.mjs: the dashboard
# login). It fails, never skips, when
# a prerequisite is missing, and says which. Environment: SLUICE_BIN (default
# build/bin/sluice), CHROMIUM (default /usr/bin/chromium), SCREENSHOT (/tmp/dashboard.png).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export SLUICE_BIN=${SLUICE_BIN:-$repo/build/bin/sluice}

test_file=${1:-dashboard.test.mjs}
[[ -f $here/$test_file ]] || { echo "browser test: no such test file: $here/$test_file" >&2; exit 1; }

missing=()
command -v node >/dev/null || missing+=("node (apt-get install nodejs)")
command -v mosquitto_pub >/dev/null || missing+=("mosquitto_pub (apt-get install mosquitto-clients)")
[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || missing+=("chromium (apt-get install chromium)")
[[ -f $repo/tests/node_modules/playwright-core/package.json ]] ||
  missing+=("playwright-core (cd tests && npm install)")
if [[ $test_file == websocket.test.mjs ]]; then
  command -v openssl >/dev/null || missing+=("openssl (apt-get install openssl)")
  [[ -f $repo/tests/node_modules/mqtt/dist/mqtt.min.js ]] || missing+=("mqtt (cd tests && npm install)")
fi
[[ -x $SLUICE_BIN ]] || missing+=("the sluice binary at $SLUICE_BIN (build it, or set SLUICE_BIN)")
if ((${#missing[@]})); then
  printf 'browser test: missing %s\n' "${missing[@]}" >&2
  exit 1
fi
exec node --test --test-reporter=spec "$here/$test_file"
