# SPDX-License-Identifier: Apache-2.0
#
# The provisioned Grafana dashboards (grafana/dashboards/*.json) against a real database with
# data, on both store layouts (TimescaleDB skipped with the reason where it is not installed):
# every PostgreSQL panel's SQL, with Grafana's macros expanded the way Grafana's PostgreSQL
# data source expands them ($__timeFilter, $__timeFrom, $__timeTo, $__timeGroupAlias) and the
# template variables set, runs, returns rows, and reads only the partitions/chunks of its
# time range (from EXPLAIN ANALYZE). The Prometheus panels name metrics sluice exports.
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

from sluice_process import (PG_STOP, REPO, TIMESCALE_SKIP_REASON, Sluice, pg_start, psql,  # noqa: E402
                            timescale_installed)

DASHBOARDS = sorted(glob.glob(os.path.join(REPO, "grafana", "dashboards", "*.json")))
PART = re.compile(r"(telemetry_packed_p[0-9]{8}|_hyper_[0-9]+_[0-9]+_chunk)")


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def interval_seconds(text):
    n, unit = int(text[:-1]), text[-1]
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def expand(sql, t_from, t_to, variables):
    """Grafana's PostgreSQL macro engine (pkg/tsdb/grafana-postgresql-datasource/macros.go)."""
    f, t = rfc3339(t_from), rfc3339(t_to)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: "%s BETWEEN '%s' AND '%s'" % (m.group(1).strip(), f, t), sql)
    sql = sql.replace("$__timeFrom()", "'%s'" % f).replace("$__timeTo()", "'%s'" % t)

    def group(m, alias):
        col, iv = [a.strip() for a in m.group(1).split(",")[:2]]
        s = interval_seconds(iv.strip("'"))
        return "floor(extract(epoch from %s)/%d)*%d%s" % (col, s, s, ' AS "time"' if alias else "")
    sql = re.sub(r"\$__timeGroupAlias\(([^)]+)\)", lambda m: group(m, True), sql)
    sql = re.sub(r"\$__timeGroup\(([^)]+)\)", lambda m: group(m, False), sql)
    for name, value in variables.items():
        sql = sql.replace("$" + name, value)
    assert "$" not in sql, "unexpanded macro or variable in %r" % sql
    return sql


# Three days of packed rows ending 10 minutes ago: 3 devices x 2 metrics, one reading every
# 10 s (60 per window); device 1's readings are flagged.
LOAD = """
INSERT INTO sluice_telemetry.device_names VALUES (1, 'press-1'), (2, 'press-2'), (3, 'oven-7');
INSERT INTO sluice_telemetry.metric_names VALUES (1, 'temperature', 'degC'), (2, 'pressure', 'bar');
SELECT sluice_telemetry.ensure_partition(d)
FROM generate_series(now() - interval '3 days', now() + interval '1 day', interval '1 day') d;
INSERT INTO sluice_telemetry.telemetry_packed
  (device_id, metric_id, window_start, n, sum, min, max, last_off, last_value, time_deltas, vals, flags)
SELECT d, m, w, 60, 60 * (d * 10 + m) + 1770, d * 10 + m, d * 10 + m + 59, 590000000, d * 10 + m + 59,
       ARRAY[0] || array_fill(10000000, ARRAY[59]),
       ARRAY(SELECT (d * 10 + m + i)::float8 FROM generate_series(0, 59) i),
       CASE WHEN d = 1 THEN array_fill(1::int2, ARRAY[60]) END
FROM generate_series(1, 3) d, generate_series(1, 2) m,
     generate_series(date_bin('10 minutes', now() - interval '3 days', timestamptz '2000-01-01'),
                     now() - interval '20 minutes', interval '10 minutes') w;
"""


def test_dashboards_are_valid_and_name_exported_metrics():
    assert len(DASHBOARDS) == 3, DASHBOARDS
    # The names /api/overview reads too are written once, in http/metric_names.h.
    exported = "".join(open(os.path.join(REPO, "src", *f)).read() for f in
                       (("app", "metrics.cc"), ("app", "pipeline_service.cc"), ("http", "metric_names.h")))
    for path in DASHBOARDS:
        d = json.load(open(path))
        assert d["uid"] and d["title"] and d["panels"]
        for p in d["panels"]:
            for t in p["targets"]:
                if p["datasource"]["type"] == "prometheus":
                    for name in re.findall(r"sluice_([a-z_]+)", t["expr"]):
                        assert '"%s"' % name in exported, "%s: %s is not exported" % (path, name)


@pytest.mark.parametrize("layout", ["native", "timescale"])
def test_every_panel_sql_runs_and_prunes(layout):
    if layout == "timescale" and not timescale_installed():
        pytest.skip(TIMESCALE_SKIP_REASON)
    with tempfile.TemporaryDirectory(prefix="sluice-grafana-") as tmp:
        os.chmod(tmp, 0o755)
        pg_dir = os.path.join(tmp, "pg")
        data_dir = os.path.join(tmp, "data")
        os.makedirs(data_dir)
        db_url = pg_start(pg_dir, timescale=layout == "timescale")
        sluice = Sluice(data_dir, db_url, extra_args=["--store-layout", layout])
        try:
            sluice.start()  # migrates the schema
            deadline = time.time() + 30
            while time.time() < deadline and sluice.metric("pipeline_running") != 1:
                time.sleep(0.05)
            sluice.stop()
            assert psql(db_url, "SELECT value FROM sluice_telemetry.settings WHERE key = 'layout'") == layout
            psql(db_url, LOAD)
            all_parts = set(PART.findall(psql(db_url, "EXPLAIN ANALYZE SELECT count(*) FROM sluice_telemetry.readings")))
            assert len(all_parts) >= 4, all_parts
            now = datetime.datetime.now(datetime.timezone.utc)
            ran = 0
            for path in DASHBOARDS:
                d = json.load(open(path))
                for p in d["panels"]:
                    if p["datasource"]["type"] != "grafana-postgresql-datasource":
                        continue
                    for t in p["targets"]:
                        for hours in (1, 6):
                            sql = expand(t["rawSql"], now - datetime.timedelta(hours=hours), now,
                                         {"metric": "temperature", "device": "press-1"})
                            out = psql(db_url, sql)
                            assert out.strip(), "%s / %s returned no rows:\n%s" % (path, p["title"], sql)
                            plan = psql(db_url, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql)
                            scanned = set(PART.findall(plan))
                            if "readings" in sql:
                                # The range spans at most 2 UTC days; the data 4.
                                assert 1 <= len(scanned) <= 2, "%s / %s read %s:\n%s" % (
                                    path, p["title"], sorted(scanned), plan)
                            ran += 1
            assert ran >= 16, ran
        finally:
            sluice.kill()
            subprocess.run([PG_STOP, pg_dir], timeout=120, capture_output=True)
