#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Integration smoke test for sluice-loadgen against the real broker: starts
# $SLUICE_BIN on port 0 in a temporary directory, runs a small fleet (20 devices, 3 s,
# QoS 1, compact binary batches on devices/{device}/telemetry, so every PUBACK waits for
# the WAL's fsync) with the in-process subscriber, and asserts from --json that every
# acknowledged message was received exactly once.
set -euo pipefail
: "${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}"
LOADGEN=${SLUICE_LOADGEN:-$(dirname "$SLUICE_BIN")/sluice-loadgen}
dir=$(mktemp -d)
broker_pid=
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

"$SLUICE_BIN" serve --mqtt-port 0 --bind 127.0.0.1 --data-dir "$dir/data" 2>"$dir/broker.log" &
broker_pid=$!
for _ in $(seq 1 100); do
    [[ -s "$dir/data/mqtt.port" ]] && break
    sleep 0.1
done
port=$(cat "$dir/data/mqtt.port")
echo "broker on port $port"

"$LOADGEN" --port "$port" --devices 20 --rate 20 --duration 3 --qos 1 --subscribe --quiet \
    --json "$dir/result.json"

python3 - "$dir/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print({k: r[k] for k in ("sent", "acked", "received", "unique_received", "lost", "duplicates", "gaps", "errors")})
assert r["acked"] > 0, "nothing was acknowledged"
assert r["acked"] == r["sent"], "some messages were never acknowledged"
assert r["lost"] == 0, "acknowledged messages were lost"
assert r["duplicates"] == 0, "duplicates delivered"
assert r["gaps"] == 0, "gaps in per-device sequences"
assert r["unique_received"] == r["acked"], "received != acknowledged"
assert r["errors"] == 0, "connection errors"
print("loadgen smoke: OK")
PY
