#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Shell-level test of scripts/pg-start and scripts/pg-stop: first start initdb's, a
# second start is a no-op printing the same URL, the URL works, data survives a
# stop/start, stop is idempotent. The instance is always stopped and removed (trap).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
dir=$(mktemp -d /tmp/sluice-pg-script-XXXXXX)
dir2=$(mktemp -d /tmp/sluice-pg-script-XXXXXX)
trap '"$root/scripts/pg-stop" "$dir" >/dev/null 2>&1 || true; "$root/scripts/pg-stop" "$dir2" >/dev/null 2>&1 || true; rm -rf "$dir" "$dir2"' EXIT

url=$("$root/scripts/pg-start" "$dir")
[[ $url == "postgresql://postgres@/sluice?host=$dir&port=5432" ]] || { echo "unexpected url: $url"; exit 1; }
url2=$("$root/scripts/pg-start" "$dir")
[[ $url2 == "$url" ]] || { echo "second start printed $url2"; exit 1; }
psql "$url" -qtAc "CREATE TABLE t (x int); INSERT INTO t VALUES (42)" >/dev/null
"$root/scripts/pg-stop" "$dir"
"$root/scripts/pg-stop" "$dir"
if psql "$url" -qtAc "SELECT 1" >/dev/null 2>&1; then echo "server still answers after pg-stop"; exit 1; fi
url3=$("$root/scripts/pg-start" "$dir")
[[ $(psql "$url3" -qtAc "SELECT x FROM t") == 42 ]] || { echo "data lost across restart"; exit 1; }
[[ $(psql "$url3" -qtAc "SHOW fsync") == on ]] || { echo "fsync is not on"; exit 1; }
# pg-env points plain psql at the instance, with Sluice's schemas on the search path.
[[ $(env -u PGHOST -u PGPORT bash -c "eval \"\$('$root/scripts/pg-env' '$dir')\"; psql -qtAc 'SELECT x FROM t; SHOW search_path'" | head -1) == 42 ]] ||
  { echo "pg-env does not reach the instance"; exit 1; }
# Preloads: TimescaleDB when installed, our planner module when built; --no-timescale
# (and SLUICE_PG_TIMESCALE=0) leave TimescaleDB out.
preload=$(psql "$url3" -qtAc "SHOW shared_preload_libraries")
if [[ -f /usr/lib/postgresql/15/lib/timescaledb.so ]]; then
  [[ $preload == timescaledb* ]] || { echo "timescaledb installed but not preloaded: '$preload'"; exit 1; }
  [[ $(psql "$url3" -qtAc "CREATE EXTENSION timescaledb; SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 1 ]] ||
    { echo "CREATE EXTENSION timescaledb failed"; exit 1; }
  [[ $(psql "$url3" -qtAc "SHOW timescaledb.telemetry_level") == off ]] || { echo "telemetry_level not off"; exit 1; }
else
  echo "pg-start: TimescaleDB not installed here; its preload is not checked"
fi
if [[ -f $root/build/lib/sluice_readings.so ]]; then
  [[ $preload == *"/sluice_readings.so" ]] || { echo "sluice_readings not preloaded: '$preload'"; exit 1; }
  cmp -s "$root/build/lib/sluice_readings.so" "$(readlink -f "$dir")/sluice_readings.so" || { echo "module not copied into DIR"; exit 1; }
fi
url4=$("$root/scripts/pg-start" --no-timescale "$dir2" 2>/dev/null)
preload2=$(psql "$url4" -qtAc "SHOW shared_preload_libraries")
[[ $preload2 != *timescaledb* ]] || { echo "--no-timescale still preloads: '$preload2'"; exit 1; }
"$root/scripts/pg-stop" "$dir2"
url5=$(SLUICE_PG_TIMESCALE=0 "$root/scripts/pg-start" "$dir2")
[[ $(psql "$url5" -qtAc "SHOW shared_preload_libraries") != *timescaledb* ]] ||
  { echo "SLUICE_PG_TIMESCALE=0 still preloads timescaledb"; exit 1; }
echo "pg-start/pg-stop: ok"
