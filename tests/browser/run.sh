#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs the dashboard's browser test (tests/browser/dashboard.test.mjs) with Node's test
# runner, for ctest (labels browser;integration) or by hand. It fails, never skips, when
# a prerequisite is missing, and says which. Environment: SLUICE_BIN (default
# build/bin/sluice), CHROMIUM (default /usr/bin/chromium), SCREENSHOT (/tmp/dashboard.png).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export SLUICE_BIN=${SLUICE_BIN:-$repo/build/bin/sluice}

missing=()
command -v node >/dev/null || missing+=("node (apt-get install nodejs)")
command -v mosquitto_pub >/dev/null || missing+=("mosquitto_pub (apt-get install mosquitto-clients)")
[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || missing+=("chromium (apt-get install chromium)")
[[ -f $repo/tests/node_modules/playwright-core/package.json ]] ||
  missing+=("playwright-core (cd tests && npm install)")
[[ -x $SLUICE_BIN ]] || missing+=("the sluice binary at $SLUICE_BIN (build it, or set SLUICE_BIN)")
if ((${#missing[@]})); then
  printf 'browser test: missing %s\n' "${missing[@]}" >&2
  exit 1
fi
exec node --test --test-reporter=spec "$here/dashboard.test.mjs"
