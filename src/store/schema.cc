// SPDX-License-Identifier: Apache-2.0
//
// The SQL of every schema version. Append new versions; never change what a released one creates.
#include "store/schema.h"

#include <atomic>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"

namespace sluice::store::schema {
namespace {

// Decoding of one packed row p into readings x(off, value, flags): the running sum of the
// int4 deltas gives microseconds since window_start; a NULL flags array means all 0.
// k_unpack_select is the SQL of it over the arrays @A@; v1 and v3 wrote it inline
// (unpack_inline()), v5 made it the function unpack_window (k_unpack_call), which
// migrate_telemetry makes the C one of sluice_readings.so where it can.
const char* const k_unpack_select =
    "SELECT sum(u.d) OVER (ORDER BY u.i ROWS UNBOUNDED PRECEDING) AS off, u.v AS value, "
    "coalesce(u.f, 0::int2) AS flags FROM unnest(@A@) WITH ORDINALITY AS u(d, v, f, i)";
const char* const k_packed_arrays = "p.time_deltas, p.vals, p.flags";
const char* const k_unpack_call =
    "CROSS JOIN LATERAL sluice_telemetry.unpack_window(p.time_deltas, p.vals, p.flags) x ";

// unpack_window's declaration; @BODY@ is the language and body. Not STRICT (flags may be
// NULL), and a STRICT SQL function would not be inlined. ROWS: a window of 1 Hz readings.
const char* const k_unpack_window_fn = R"sql(
CREATE OR REPLACE FUNCTION sluice_telemetry.unpack_window(p_deltas int4[], p_vals float8[], p_flags int2[])
RETURNS TABLE (off int8, value float8, flags int2)
IMMUTABLE PARALLEL SAFE ROWS 600 @BODY@;
)sql";

// The view and functions of v1 that decode packed rows; @UNPACK@ is the decoding.
const char* const k_telemetry_decoders = R"sql(
CREATE OR REPLACE VIEW sluice_telemetry.telemetry AS
SELECT p.window_start + x.off * interval '1 microsecond' AS time, p.device_id, p.metric_id, x.value, x.flags
FROM sluice_telemetry.telemetry_packed p @UNPACK@;

CREATE OR REPLACE FUNCTION sluice_telemetry.telemetry_range(p_device int4, p_metric int4, p_from timestamptz,
                                                            p_to timestamptz)
RETURNS TABLE ("time" timestamptz, device_id int4, metric_id int4, value float8, flags int2)
LANGUAGE sql STABLE AS $fn$
  SELECT r.t, r.d, r.m, r.value, r.flags FROM (
    SELECT p.window_start + x.off * interval '1 microsecond' AS t, p.device_id AS d, p.metric_id AS m, x.value, x.flags
    FROM sluice_telemetry.telemetry_packed p @UNPACK@
    WHERE p.device_id = p_device AND p.metric_id = p_metric
      AND p.window_start > p_from - interval '10 minutes' AND p.window_start < p_to) r
  WHERE r.t >= p_from AND r.t < p_to
  ORDER BY r.t
$fn$;

-- Merges the fragments (one packed row per batch) of each (device, metric, window)
-- with window_start in [lo, hi) into one packed row. Readings are ordered by time;
-- rows written concurrently stay as they are (a later call merges them).
CREATE OR REPLACE FUNCTION sluice_telemetry.compact_windows(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE merged bigint;
BEGIN
  WITH frag AS (
    SELECT device_id, metric_id, window_start FROM sluice_telemetry.telemetry_packed
    WHERE window_start >= lo AND window_start < hi
    GROUP BY 1, 2, 3 HAVING count(*) > 1),
  moved AS (
    DELETE FROM sluice_telemetry.telemetry_packed p USING frag f
    WHERE p.window_start >= lo AND p.window_start < hi AND p.device_id = f.device_id
      AND p.metric_id = f.metric_id AND p.window_start = f.window_start
    RETURNING p.*),
  readings AS (
    SELECT p.device_id, p.metric_id, p.window_start, x.off, x.value, x.flags
    FROM moved p @UNPACK@),
  ordered AS (
    SELECT r.*,
      r.off - coalesce(lag(r.off) OVER w, 0) AS d,
      row_number() OVER w AS rn
    FROM readings r
    WINDOW w AS (PARTITION BY r.device_id, r.metric_id, r.window_start ORDER BY r.off, r.value, r.flags))
  INSERT INTO sluice_telemetry.telemetry_packed
    (device_id, metric_id, window_start, n, sum, min, max, last_off, last_value, time_deltas, vals, flags)
  SELECT device_id, metric_id, window_start, count(*)::int4, sum(value), min(value), max(value),
         max(off)::int4, (array_agg(value ORDER BY rn DESC))[1],
         array_agg(d::int4 ORDER BY rn), array_agg(value ORDER BY rn),
         CASE WHEN bool_or(flags <> 0) THEN array_agg(flags ORDER BY rn) END
  FROM ordered GROUP BY 1, 2, 3;
  GET DIAGNOSTICS merged = ROW_COUNT;
  RETURN merged;
END
$fn$;
)sql";

// The same of v3.
const char* const k_readings_decoders = R"sql(
CREATE OR REPLACE VIEW sluice_telemetry.readings AS
SELECT p.window_start + x.off * interval '1 microsecond' AS time, d.key AS device, m.name AS metric,
       x.value, m.unit, x.flags
FROM sluice_telemetry.telemetry_packed p
JOIN sluice_telemetry.device_names d ON d.id = p.device_id
JOIN sluice_telemetry.metric_names m ON m.id = p.metric_id @UNPACK@;

CREATE OR REPLACE FUNCTION sluice_telemetry.readings_between(p_from timestamptz, p_to timestamptz)
RETURNS TABLE ("time" timestamptz, device text, metric text, value float8, unit text, flags int2)
LANGUAGE sql STABLE AS $fn$
  SELECT r.time, r.device, r.metric, r.value, r.unit, r.flags FROM (
    SELECT p.window_start + x.off * interval '1 microsecond' AS time, d.key AS device, m.name AS metric,
           x.value, m.unit, x.flags
    FROM sluice_telemetry.telemetry_packed p
    JOIN sluice_telemetry.device_names d ON d.id = p.device_id
    JOIN sluice_telemetry.metric_names m ON m.id = p.metric_id @UNPACK@
    WHERE p.window_start > p_from - interval '10 minutes' AND p.window_start < p_to) r
  WHERE r.time >= p_from AND r.time < p_to
$fn$;
)sql";

const char* const k_telemetry_common_v1 = R"sql(
CREATE TABLE sluice_telemetry.settings (key text PRIMARY KEY, value text NOT NULL);

CREATE INDEX telemetry_packed_series ON sluice_telemetry.telemetry_packed (device_id, metric_id, window_start);
CREATE INDEX telemetry_packed_window ON sluice_telemetry.telemetry_packed USING brin (window_start);
)sql";

const char* const k_telemetry_rest_v1 = R"sql(
COMMENT ON VIEW sluice_telemetry.telemetry IS
  'One row per reading. Filter on device_id and metric_id (index); for time ranges prefer telemetry_range(), which also prunes by window.';

-- Rollups. Every packed row carries the aggregates of its readings (sum, n, min, max,
-- last), and windows nest in hours, so hourly and daily rollups are exact GROUP BYs
-- over those columns, without reading the arrays: no extra write per batch.
-- telemetry_1h_state keeps the hourly aggregates of partitions dropped by retention
-- (drop_partitions_before archives them first), so rollups outlive raw readings.
CREATE TABLE sluice_telemetry.telemetry_1h_state (
  device_id int4 NOT NULL, metric_id int4 NOT NULL, bucket timestamptz NOT NULL,
  sum float8 NOT NULL, count int8 NOT NULL, min float8 NOT NULL, max float8 NOT NULL,
  last_time timestamptz NOT NULL, last_value float8 NOT NULL);
CREATE INDEX telemetry_1h_state_series ON sluice_telemetry.telemetry_1h_state (device_id, metric_id, bucket);

CREATE VIEW sluice_telemetry.telemetry_1h_parts AS
SELECT date_bin('1 hour', window_start, timestamptz '2000-01-01 00:00:00+00') AS bucket, device_id, metric_id,
       sum, n::int8 AS count, min, max, window_start + last_off * interval '1 microsecond' AS last_time, last_value
FROM sluice_telemetry.telemetry_packed
UNION ALL
SELECT bucket, device_id, metric_id, sum, count, min, max, last_time, last_value
FROM sluice_telemetry.telemetry_1h_state;

CREATE VIEW sluice_telemetry.telemetry_1h AS
SELECT bucket, device_id, metric_id, sum(sum) / sum(count) AS avg, min(min) AS min, max(max) AS max,
       sum(count)::int8 AS count, (array_agg(last_value ORDER BY last_time DESC))[1] AS last
FROM sluice_telemetry.telemetry_1h_parts
GROUP BY 1, 2, 3;

CREATE VIEW sluice_telemetry.telemetry_1d AS
SELECT date_bin('1 day', bucket, timestamptz '2000-01-01 00:00:00+00') AS bucket, device_id, metric_id,
       sum(sum) / sum(count) AS avg, min(min) AS min, max(max) AS max, sum(count)::int8 AS count,
       (array_agg(last_value ORDER BY last_time DESC))[1] AS last
FROM sluice_telemetry.telemetry_1h_parts
GROUP BY 1, 2, 3;

-- Rollup of one series in [p_from, p_to) with buckets of p_bucket ('1 hour', '1 day',
-- any multiple of 10 minutes that date_bin accepts), pruned by window_start: the
-- time-bounded counterpart of telemetry_1h/telemetry_1d (which filter after grouping).
CREATE FUNCTION sluice_telemetry.telemetry_rollup(p_device int4, p_metric int4, p_from timestamptz,
                                                  p_to timestamptz, p_bucket interval)
RETURNS TABLE (bucket timestamptz, avg float8, min float8, max float8, count int8, last float8)
LANGUAGE sql STABLE AS $fn$
  SELECT date_bin(p_bucket, r.b, timestamptz '2000-01-01 00:00:00+00') AS bk,
         sum(r.s) / sum(r.c), min(r.mn), max(r.mx), sum(r.c)::int8,
         (array_agg(r.lv ORDER BY r.lt DESC))[1]
  FROM (
    SELECT p.window_start AS b, p.sum AS s, p.n::int8 AS c, p.min AS mn, p.max AS mx,
           p.window_start + p.last_off * interval '1 microsecond' AS lt, p.last_value AS lv
    FROM sluice_telemetry.telemetry_packed p
    WHERE p.device_id = p_device AND p.metric_id = p_metric AND p.window_start >= p_from AND p.window_start < p_to
    UNION ALL
    SELECT a.bucket, a.sum, a.count, a.min, a.max, a.last_time, a.last_value
    FROM sluice_telemetry.telemetry_1h_state a
    WHERE a.device_id = p_device AND a.metric_id = p_metric AND a.bucket >= p_from AND a.bucket < p_to) r
  GROUP BY 1
  ORDER BY 1
$fn$;

-- Archives the hourly aggregates of the packed rows of one relation (a partition or
-- chunk about to be dropped) into telemetry_1h_state.
CREATE FUNCTION sluice_telemetry.archive_rollups(rel regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE format('INSERT INTO sluice_telemetry.telemetry_1h_state '
    '(bucket, device_id, metric_id, sum, count, min, max, last_time, last_value) '
    'SELECT date_bin(''1 hour'', window_start, timestamptz ''2000-01-01 00:00:00+00''), device_id, metric_id, '
    'sum(sum), sum(n), min(min), max(max), max(window_start + last_off * interval ''1 microsecond''), '
    '(array_agg(last_value ORDER BY window_start + last_off * interval ''1 microsecond'' DESC))[1] '
    'FROM %s GROUP BY 1, 2, 3', rel);
END
$fn$;

CREATE TABLE sluice_telemetry.dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at timestamptz NOT NULL, topic text NOT NULL, client_id text NOT NULL,
  payload bytea NOT NULL, reason text NOT NULL);
CREATE INDEX dead_letters_received_at ON sluice_telemetry.dead_letters (received_at);

CREATE TABLE sluice_telemetry.sluice_offsets (
  consumer text NOT NULL, partition int4 NOT NULL, next_offset int8 NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, partition));
)sql";

// v3: names and the user-facing relation. device_names/metric_names are the telemetry
// database's copy of the registry's keys (the application database may be another one);
// the registry upserts them whenever it registers or loads a name, before any reading
// carrying that id is written. readings is the relation users and Grafana query; the
// planner module sluice_readings.so (store/pg_module) turns `time` predicates on it into
// window_start bounds, and readings_between() prunes without the module.
const char* const k_names_v3 = R"sql(
CREATE TABLE sluice_telemetry.device_names (id int4 PRIMARY KEY, key text NOT NULL UNIQUE);
CREATE TABLE sluice_telemetry.metric_names (id int4 PRIMARY KEY, name text NOT NULL UNIQUE,
                                            unit text NOT NULL DEFAULT '');
)sql";

const char* const k_readings_rest_v3 = R"sql(
COMMENT ON VIEW sluice_telemetry.readings IS
  'One row per reading, by name. WHERE time >= .. AND time < .. reads only the windows in range when sluice_readings is in shared_preload_libraries; readings_between(from, to) prunes in any case.';

-- Latest reading of every (device, metric) by name: one index probe per pair, from the
-- packed rows' last_off/last_value (no array is read).
CREATE VIEW sluice_telemetry.latest AS
SELECT d.key AS device, m.name AS metric, l.time, l.value, m.unit
FROM sluice_telemetry.device_names d
CROSS JOIN sluice_telemetry.metric_names m
CROSS JOIN LATERAL (
  SELECT p.window_start + p.last_off * interval '1 microsecond' AS time, p.last_value AS value
  FROM sluice_telemetry.telemetry_packed p
  WHERE p.device_id = d.id AND p.metric_id = m.id
  ORDER BY p.window_start DESC, p.last_off DESC
  LIMIT 1) l;
)sql";

// v4: retention in one function, used by maintain() on native partitions and, on
// TimescaleDB, by a Timescale job (retention_job, registered by ensure_retention_job):
// one owner per layout.
const char* const k_retention_v4 = R"sql(
-- Drops raw partitions (chunks) that end at or before cutoff, after archiving their
-- hourly rollups, and dead letters received before it; returns how many partitions.
CREATE FUNCTION sluice_telemetry.apply_retention(cutoff timestamptz) RETURNS int4
LANGUAGE plpgsql AS $fn$
DECLARE dropped int4;
BEGIN
  dropped := sluice_telemetry.drop_partitions_before(cutoff);
  DELETE FROM sluice_telemetry.dead_letters WHERE received_at < cutoff;
  RETURN dropped;
END
$fn$;
)sql";

const char* const k_timescale_retention_v4 = R"sql(
-- A TimescaleDB job (timescaledb_information.jobs): config {"drop_after": interval}.
CREATE PROCEDURE sluice_telemetry.retention_job(job_id int4, config jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE dropped int4;
BEGIN
  dropped := sluice_telemetry.apply_retention(now() - (config->>'drop_after')::interval);
  IF dropped > 0 THEN
    RAISE LOG 'sluice retention job %: dropped % chunks older than %', job_id, dropped, config->>'drop_after';
  END IF;
END
$fn$;

-- Makes the retention job match store.retention: one job running retention_job hourly
-- with drop_after, or none when drop_after is NULL. Returns the job's id (NULL: none).
-- The advisory lock serializes concurrent start-ups.
CREATE FUNCTION sluice_telemetry.ensure_retention_job(drop_after interval) RETURNS int4
LANGUAGE plpgsql AS $fn$
DECLARE
  ids int4[];
  keep int4;
  config jsonb := jsonb_build_object('drop_after', drop_after);
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('sluice_telemetry.retention_job'));
  SELECT array_agg(j.job_id ORDER BY j.job_id) INTO ids FROM timescaledb_information.jobs j
  WHERE j.proc_schema = 'sluice_telemetry' AND j.proc_name = 'retention_job';
  IF drop_after IS NOT NULL THEN
    IF ids IS NULL THEN
      -- First run an hour from now, like every later one: not in the middle of start-up.
      keep := add_job('sluice_telemetry.retention_job', interval '1 hour', config => config,
                      initial_start => now() + interval '1 hour', job_name => 'sluice retention');
    ELSE
      keep := ids[1];
      PERFORM alter_job(keep, schedule_interval => interval '1 hour', config => config);
    END IF;
  END IF;
  PERFORM delete_job(id) FROM unnest(ids) AS id WHERE keep IS NULL OR id <> keep;
  RETURN keep;
END
$fn$;
)sql";

// v6: hourly rollups materialised behind a watermark. maintain() (roll_hours) moves the
// aggregates of closed hours into telemetry_1h_state and advances settings.rolled_until;
// readers count packed rows only from the watermark on, so a rollup over many days reads one
// state row per hour instead of six packed rows (each on its own heap page). A batch that
// lands behind the watermark (late readings) adds its windows' aggregates to the state in
// its own transaction (pg_store.cc, add_late_rollups). The advisory lock orders the two:
// roll_hours holds it exclusively while it aggregates and moves the watermark, writers hold
// it shared from the moment they read the watermark (writer_rolled_until) to their commit,
// so a packed row is counted either by the roll or by its writer, never both or neither.
const char* const k_rollups_v6 = R"sql(
-- The watermark: hours before it are in telemetry_1h_state; -infinity before the first roll.
CREATE FUNCTION sluice_telemetry.rolled_until() RETURNS timestamptz
LANGUAGE sql STABLE AS $fn$
  SELECT coalesce((SELECT timestamptz 'epoch' + value::int8 * interval '1 microsecond'
                   FROM sluice_telemetry.settings WHERE key = 'rolled_until'), '-infinity')
$fn$;

-- For writers, after their rows are written: takes the shared side of the rollups lock
-- (held to commit), then reads the watermark in a snapshot taken after the lock (VOLATILE:
-- a fresh snapshot inside). Microseconds since the Unix epoch; NULL: never rolled.
CREATE FUNCTION sluice_telemetry.writer_rolled_until() RETURNS int8
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(hashtext('sluice_telemetry.rollups'));
  RETURN (SELECT value::int8 FROM sluice_telemetry.settings WHERE key = 'rolled_until');
END
$fn$;

-- Materialises the hours from the watermark up to hi (exclusive, a whole UTC hour) into
-- telemetry_1h_state and moves the watermark to hi; returns the state rows added (0 when
-- the watermark is already at or past hi).
CREATE FUNCTION sluice_telemetry.roll_hours(hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
  lo timestamptz;
  rolled bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('sluice_telemetry.rollups'));
  lo := sluice_telemetry.rolled_until();
  IF hi <= lo THEN RETURN 0; END IF;
  INSERT INTO sluice_telemetry.telemetry_1h_state
    (bucket, device_id, metric_id, sum, count, min, max, last_time, last_value)
  SELECT date_bin('1 hour', window_start, timestamptz '2000-01-01 00:00:00+00'), device_id, metric_id,
         sum(sum), sum(n), min(min), max(max), max(window_start + last_off * interval '1 microsecond'),
         (array_agg(last_value ORDER BY window_start + last_off * interval '1 microsecond' DESC))[1]
  FROM sluice_telemetry.telemetry_packed
  WHERE window_start >= lo AND window_start < hi
  GROUP BY 1, 2, 3;
  GET DIAGNOSTICS rolled = ROW_COUNT;
  INSERT INTO sluice_telemetry.settings
  VALUES ('rolled_until', ((extract(epoch FROM hi) * 1000000)::int8)::text)
  ON CONFLICT (key) DO UPDATE SET value = excluded.value;
  RETURN rolled;
END
$fn$;

CREATE OR REPLACE VIEW sluice_telemetry.telemetry_1h_parts AS
SELECT date_bin('1 hour', window_start, timestamptz '2000-01-01 00:00:00+00') AS bucket, device_id, metric_id,
       sum, n::int8 AS count, min, max, window_start + last_off * interval '1 microsecond' AS last_time, last_value
FROM sluice_telemetry.telemetry_packed
WHERE window_start >= sluice_telemetry.rolled_until()
UNION ALL
SELECT bucket, device_id, metric_id, sum, count, min, max, last_time, last_value
FROM sluice_telemetry.telemetry_1h_state;

-- Retention takes the rollups lock before any table lock (as writers do), so that rolling
-- and archiving never count the same rows twice and never wait for each other in a cycle.
CREATE OR REPLACE FUNCTION sluice_telemetry.apply_retention(cutoff timestamptz) RETURNS int4
LANGUAGE plpgsql AS $fn$
DECLARE dropped int4;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('sluice_telemetry.rollups'));
  dropped := sluice_telemetry.drop_partitions_before(cutoff);
  DELETE FROM sluice_telemetry.dead_letters WHERE received_at < cutoff;
  RETURN dropped;
END
$fn$;

-- Hours already rolled are in the state: a dropped partition archives only the rest.
CREATE OR REPLACE FUNCTION sluice_telemetry.archive_rollups(rel regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE format('INSERT INTO sluice_telemetry.telemetry_1h_state '
    '(bucket, device_id, metric_id, sum, count, min, max, last_time, last_value) '
    'SELECT date_bin(''1 hour'', window_start, timestamptz ''2000-01-01 00:00:00+00''), device_id, metric_id, '
    'sum(sum), sum(n), min(min), max(max), max(window_start + last_off * interval ''1 microsecond''), '
    '(array_agg(last_value ORDER BY window_start + last_off * interval ''1 microsecond'' DESC))[1] '
    'FROM %s WHERE window_start >= sluice_telemetry.rolled_until() GROUP BY 1, 2, 3', rel);
END
$fn$;
)sql";

// telemetry_rollup, created by v6 and created again by v7 (which reads the watermark with a
// plan PL/pgSQL keeps: planning rolled_until() on every call was 10-20% of a 30-day hourly
// query's CPU).
const char* const k_telemetry_rollup_fn = R"sql(
-- PL/pgSQL with a generic plan, planned once per session: planning the UNION ALL over the
-- partitions on every call (the inlined SQL function of v1) cost 3-4x reading the rows.
-- The watermark and the rows come from the caller's snapshot (STABLE): a roll is seen
-- whole or not at all.
CREATE OR REPLACE FUNCTION sluice_telemetry.telemetry_rollup(p_device int4, p_metric int4, p_from timestamptz,
                                                             p_to timestamptz, p_bucket interval)
RETURNS TABLE (bucket timestamptz, avg float8, min float8, max float8, count int8, last float8)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
  rolled timestamptz;
BEGIN
  -- rolled_until()'s query, inline: PL/pgSQL keeps its plan (the SQL function was planned
  -- again on every call).
  SELECT timestamptz 'epoch' + s.value::int8 * interval '1 microsecond' INTO rolled
  FROM sluice_telemetry.settings s WHERE s.key = 'rolled_until';
  rolled := coalesce(rolled, '-infinity');
  RETURN QUERY
  SELECT date_bin(p_bucket, r.b, timestamptz '2000-01-01 00:00:00+00') AS bk,
         sum(r.s) / sum(r.c), min(r.mn), max(r.mx), sum(r.c)::int8,
         (array_agg(r.lv ORDER BY r.lt DESC))[1]
  FROM (
    SELECT p.window_start AS b, p.sum AS s, p.n::int8 AS c, p.min AS mn, p.max AS mx,
           p.window_start + p.last_off * interval '1 microsecond' AS lt, p.last_value AS lv
    FROM sluice_telemetry.telemetry_packed p
    WHERE p.device_id = p_device AND p.metric_id = p_metric AND p.window_start >= greatest(p_from, rolled)
      AND p.window_start < p_to
    UNION ALL
    SELECT a.bucket, a.sum, a.count, a.min, a.max, a.last_time, a.last_value
    FROM sluice_telemetry.telemetry_1h_state a
    WHERE a.device_id = p_device AND a.metric_id = p_metric AND a.bucket >= p_from AND a.bucket < p_to) r
  GROUP BY 1
  ORDER BY 1;
END
$fn$;
)sql";

// Columns of the packed table; COMPRESSION lz4 on the arrays, which the storage
// parameter toast_tuple_target = 128 (set per partition) makes PostgreSQL compress.
const char* const k_packed_columns = R"sql(
  device_id int4 NOT NULL, metric_id int4 NOT NULL, window_start timestamptz NOT NULL,
  n int4 NOT NULL,
  sum float8 NOT NULL, min float8 NOT NULL, max float8 NOT NULL,
  last_off int4 NOT NULL,     -- microseconds from window_start to the latest reading
  last_value float8 NOT NULL, -- its value
  time_deltas int4[] COMPRESSION lz4 NOT NULL,
  vals float8[] COMPRESSION lz4 NOT NULL,
  flags int2[] COMPRESSION lz4)sql";

const char* const k_native_v1 = R"sql(
-- Daily partitions, created ahead by maintain() and on demand by write_batch.
CREATE FUNCTION sluice_telemetry.ensure_partition(day timestamptz) RETURNS boolean
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $fn$
DECLARE
  d timestamptz := date_trunc('day', day);
  part text := 'telemetry_packed_p' || to_char(d, 'YYYYMMDD');
BEGIN
  IF to_regclass('sluice_telemetry.' || part) IS NOT NULL THEN RETURN false; END IF;
  PERFORM pg_advisory_xact_lock(hashtext('sluice_telemetry.partitions'));
  IF to_regclass('sluice_telemetry.' || part) IS NOT NULL THEN RETURN false; END IF;
  BEGIN
    EXECUTE format('CREATE TABLE sluice_telemetry.%I PARTITION OF sluice_telemetry.telemetry_packed '
                   'FOR VALUES FROM (%L) TO (%L) WITH (toast_tuple_target = 128)', part, d, d + interval '1 day');
  EXCEPTION WHEN duplicate_table THEN
    RETURN false;  -- created by another session since our catalog lookup
  END;
  EXECUTE format('ALTER TABLE sluice_telemetry.%I ALTER COLUMN time_deltas SET COMPRESSION lz4, '
                 'ALTER COLUMN vals SET COMPRESSION lz4, ALTER COLUMN flags SET COMPRESSION lz4', part);
  RETURN true;
END
$fn$;

-- Drops the daily partitions that end at or before cutoff; returns how many.
CREATE FUNCTION sluice_telemetry.drop_partitions_before(cutoff timestamptz) RETURNS int4
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $fn$
DECLARE
  r record;
  dropped int4 := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('sluice_telemetry.partitions'));
  FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'sluice_telemetry.telemetry_packed'::regclass
             AND c.relname ~ '^telemetry_packed_p[0-9]{8}$' LOOP
    IF to_timestamp(substr(r.relname, 19), 'YYYYMMDD') + interval '1 day' <= cutoff THEN
      IF dropped = 0 THEN
        -- Dropping a partition locks the parent exclusively anyway; taking that lock
        -- before archiving makes sure no writer adds rows the archive would miss.
        LOCK TABLE sluice_telemetry.telemetry_packed IN ACCESS EXCLUSIVE MODE;
      END IF;
      PERFORM sluice_telemetry.archive_rollups(format('sluice_telemetry.%I', r.relname)::regclass);
      EXECUTE format('DROP TABLE sluice_telemetry.%I', r.relname);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END
$fn$;

-- Start of the earliest partition (where compaction starts), NULL when there is none.
CREATE FUNCTION sluice_telemetry.first_window() RETURNS timestamptz
LANGUAGE sql STABLE SET TimeZone = 'UTC' AS $fn$
  SELECT min(to_timestamp(substr(c.relname, 19), 'YYYYMMDD'))
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = 'sluice_telemetry.telemetry_packed'::regclass
    AND c.relname ~ '^telemetry_packed_p[0-9]{8}$'
$fn$;
)sql";

// TimescaleDB: the same packed rows in a hypertable on window_start (daily chunks,
// retention by drop_chunks, run by a Timescale job: k_timescale_retention_v4).
const char* const k_timescale_v1 = R"sql(
CREATE FUNCTION sluice_telemetry.ensure_partition(day timestamptz) RETURNS boolean
LANGUAGE sql AS $fn$ SELECT false $fn$;

CREATE FUNCTION sluice_telemetry.drop_partitions_before(cutoff timestamptz) RETURNS int4
LANGUAGE plpgsql AS $fn$
DECLARE
  c regclass;
  dropped int4 := 0;
BEGIN
  FOR c IN SELECT show_chunks('sluice_telemetry.telemetry_packed', older_than => cutoff) LOOP
    PERFORM sluice_telemetry.archive_rollups(c);
    dropped := dropped + 1;
  END LOOP;
  PERFORM drop_chunks('sluice_telemetry.telemetry_packed', older_than => cutoff);
  RETURN dropped;
END
$fn$;

CREATE FUNCTION sluice_telemetry.first_window() RETURNS timestamptz
LANGUAGE sql STABLE AS $fn$
  SELECT min(range_start) FROM timescaledb_information.chunks
  WHERE hypertable_schema = 'sluice_telemetry' AND hypertable_name = 'telemetry_packed'
$fn$;
)sql";

result<int> current_version(pg::connection& conn, const char* schema) {
    const std::string create =
        std::string("CREATE SCHEMA IF NOT EXISTS ") + schema + "; CREATE TABLE IF NOT EXISTS " + schema +
        ".schema_version (version int4 PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())";
    if (auto r = conn.exec(create.c_str()); !r) return r.error();
    const std::string select = std::string("SELECT coalesce(max(version), 0) FROM ") + schema + ".schema_version";
    auto q = conn.query(select.c_str());
    if (!q) return q.error();
    int v = 0;
    const auto text = q->get(0, 0);
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

// Runs `steps` (version i+1 = steps[i]) above the current version in one transaction.
result<void> run_migrations(pg::connection& conn, const char* schema, const std::vector<std::string>& steps,
                            int known) {
    if (auto r = conn.ensure(); !r) return r;
    auto fail = [&](std::error_code ec) -> result<void> {
        conn.abort_transaction();
        return ec;
    };
    if (auto r = conn.exec("BEGIN"); !r) return fail(r.error());
    const std::string lock = std::string("SELECT pg_advisory_xact_lock(hashtext('") + schema + ".migrate'))";
    if (auto r = conn.exec(lock.c_str()); !r) return fail(r.error());
    auto version = current_version(conn, schema);
    if (!version) return fail(version.error());
    if (*version > known) {
        SLUICE_ERROR("store", "schema %s is at version %d, this build knows up to %d", schema, *version, known);
        return fail(errc::schema_too_new);
    }
    for (int v = *version + 1; v <= known; ++v) {
        if (auto r = conn.exec(steps[static_cast<size_t>(v - 1)].c_str()); !r) return fail(r.error());
        const std::string record =
            std::string("INSERT INTO ") + schema + ".schema_version (version) VALUES (" + std::to_string(v) + ")";
        if (auto r = conn.exec(record.c_str()); !r) return fail(r.error());
        SLUICE_INFO("store", "migrated schema %s to version %d", schema, v);
    }
    if (auto r = conn.exec("COMMIT"); !r) return fail(r.error());
    return ok();
}

// The read-only role of the HTTP API (schema.h k_reader_role), for schema @S@: created if
// missing, granted USAGE and SELECT on everything in the schema (and, by default
// privileges, on tables the connecting user creates there later: new native partitions;
// TimescaleDB copies the hypertable's grants to every chunk), and granted to the
// connecting user so that its sessions may SET ROLE to it. Each part runs only when
// something is missing, so a set-up that is done costs a few catalog lookups. What
// cannot be done is collected, not raised: it ends up in the transaction-local setting
// sluice.reader_role_problem ("" when all is well), read back by ensure_reader_role.
// Concurrency: one set-up per database at a time (advisory lock: concurrent GRANTs on
// one object fail with "tuple concurrently updated"); the role and its memberships are
// server-wide, so a set-up in another database can race with this one: CREATE ROLE
// then fails with duplicate_object or, when both passed the existence check,
// unique_violation on pg_authid, and GRANT ... TO with unique_violation on
// pg_auth_members. Both mean it is done.
const char* const k_reader_role_sql = R"sql(
DO $do$
DECLARE
  me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
  me_super boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
  ns oid := '@S@'::regnamespace;
  missing text;
  problems text[] := '{}';
BEGIN
  PERFORM set_config('sluice.reader_role_problem', '', true);
  PERFORM pg_advisory_xact_lock(hashtext('sluice.reader_role'));
  IF to_regrole('@R@') IS NULL THEN
    BEGIN
      CREATE ROLE @R@ NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL;  -- created meanwhile by another set-up
      WHEN OTHERS THEN
        PERFORM set_config('sluice.reader_role_problem',
          'cannot create role @R@ (' || SQLSTATE || ': ' || SQLERRM || ')', true);
        RETURN;
    END;
  END IF;

  IF NOT has_schema_privilege('@R@', ns, 'USAGE')
     OR EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = ns AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  AND NOT has_table_privilege('@R@', c.oid, 'SELECT'))
     OR NOT EXISTS (SELECT FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
                    WHERE d.defaclrole = me AND d.defaclnamespace = ns AND d.defaclobjtype = 'r'
                      AND a.grantee = '@R@'::regrole AND a.privilege_type = 'SELECT') THEN
    BEGIN
      GRANT USAGE ON SCHEMA @S@ TO @R@;
      GRANT SELECT ON ALL TABLES IN SCHEMA @S@ TO @R@;
      ALTER DEFAULT PRIVILEGES IN SCHEMA @S@ GRANT SELECT ON TABLES TO @R@;
    EXCEPTION WHEN OTHERS THEN
      problems := problems || ('cannot grant it SELECT on @S@ (' || SQLSTATE || ': ' || SQLERRM || ')');
    END;
    -- A GRANT on a table the user does not own may grant nothing, with a mere warning.
    SELECT string_agg(c.relname, ', ' ORDER BY c.relname) INTO missing
    FROM pg_class c WHERE c.relnamespace = ns AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT has_table_privilege('@R@', c.oid, 'SELECT');
    IF missing IS NOT NULL THEN
      problems := problems || ('it cannot read @S@.{' || left(missing, 200) || '} (run Sluice once as their owner)');
    END IF;
  END IF;

  -- Superusers may SET ROLE to any role, but the explicit membership documents the intent.
  IF NOT EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = '@R@'::regrole AND m.member = me)
     AND (me_super OR NOT pg_has_role(me, '@R@'::regrole, 'MEMBER')) THEN
    BEGIN
      GRANT @R@ TO CURRENT_USER;
    EXCEPTION
      WHEN unique_violation THEN NULL;  -- granted meanwhile by a set-up in another database
      WHEN OTHERS THEN
        problems := problems || ('cannot grant it to ' || current_user || ' (' || SQLSTATE || ': ' || SQLERRM || ')');
    END;
  END IF;

  IF (SELECT rolsuper FROM pg_roles WHERE rolname = '@R@') THEN
    problems := problems || 'it is a superuser, so it can write: make it a plain NOLOGIN role'::text;
  END IF;
  PERFORM set_config('sluice.reader_role_problem', array_to_string(problems, '; '), true);
END
$do$
)sql";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

// The decoding inline (v1, v3) or through unpack_window (v5).
std::string unpack_inline() {
    return "CROSS JOIN LATERAL (" + replace_all(k_unpack_select, "@A@", k_packed_arrays) + ") x ";
}

std::string unpack_window_sql() {
    return replace_all(
        k_unpack_window_fn, "@BODY@",
        "LANGUAGE sql AS $fn$ " + replace_all(k_unpack_select, "@A@", "p_deltas, p_vals, p_flags") + " $fn$");
}

// bucket_window: per-bucket partial aggregates of one packed row (count, sum, min, max,
// earliest and latest time of its readings in lo..hi), which the planner module uses for
// grouped aggregates over the readings views (pg_module/bucket_partials.c). C only: it
// exists only where the module is preloaded, and is dropped where it is not.
const char* const k_bucket_window_fn = R"sql(
CREATE OR REPLACE FUNCTION sluice_telemetry.bucket_window(
  p_window_start timestamptz, p_deltas int4[], p_vals float8[], p_width int8, p_origin timestamptz,
  p_lo timestamptz, p_lo_strict bool, p_hi timestamptz, p_hi_strict bool)
RETURNS TABLE (first timestamptz, last timestamptz, n int4, sum float8, min float8, max float8)
IMMUTABLE STRICT PARALLEL SAFE ROWS 10 LANGUAGE C AS %1$L, 'sluice_bucket_window';
)sql";
const char* const k_bucket_window_sig =
    "sluice_telemetry.bucket_window(timestamptz, int4[], float8[], int8, timestamptz, timestamptz, bool, "
    "timestamptz, bool)";

// decode_window: unpack_window with each reading's time (window_start + offset) computed in
// C, which the planner module puts in the readings views in place of unpack_window
// (pg_module/decode_window.c). C only, created and dropped with bucket_window.
const char* const k_decode_window_fn = R"sql(
CREATE OR REPLACE FUNCTION sluice_telemetry.decode_window(
  p_window_start timestamptz, p_deltas int4[], p_vals float8[], p_flags int2[])
RETURNS TABLE ("time" timestamptz, value float8, flags int2)
IMMUTABLE PARALLEL SAFE ROWS 600 LANGUAGE C AS %1$L, 'sluice_decode_window';
)sql";
const char* const k_decode_window_sig = "sluice_telemetry.decode_window(timestamptz, int4[], float8[], int2[])";

// Makes unpack_window the C function of sluice_readings.so when the server preloads it and
// we may create it (superusers only: C is untrusted), else (again) the SQL one, on every
// start: a server restarted without the module, or with a module of its own path, gets a
// working function. A module of an older Sluice, without the function, leaves the SQL one.
// bucket_window and decode_window follow (without the module, none).
const char* const k_choose_unpack = R"sql(
DO $do$
DECLARE
  lib text;
  cur text;
  cur_bucket text;
  cur_decode text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('sluice_telemetry.unpack_window'));
  SELECT CASE WHEN l.lanname = 'c' THEN p.probin END INTO cur
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
  WHERE p.oid = 'sluice_telemetry.unpack_window(int4[], float8[], int2[])'::regprocedure;
  SELECT p.probin INTO cur_bucket FROM pg_proc p WHERE p.oid = to_regprocedure('@BUCKET_SIG@');
  SELECT p.probin INTO cur_decode FROM pg_proc p WHERE p.oid = to_regprocedure('@DECODE_SIG@');
  BEGIN
    FOR lib IN SELECT trim(both ' "' FROM e)
               FROM regexp_split_to_table(current_setting('shared_preload_libraries'), ',') e
               WHERE e ~ 'sluice_readings' LOOP
      IF lib = cur AND lib = cur_bucket AND lib = cur_decode THEN RETURN; END IF;
      BEGIN
        EXECUTE format($c$@C@$c$, lib);
      EXCEPTION WHEN OTHERS THEN
        PERFORM set_config('sluice.unpack_problem', SQLERRM, true);
        CONTINUE;
      END;
      BEGIN
        EXECUTE format($c$@BUCKET@ @DECODE@$c$, lib);
      EXCEPTION WHEN OTHERS THEN
        PERFORM set_config('sluice.bucket_problem', SQLERRM, true);
      END;
      RETURN;
    END LOOP;
  EXCEPTION WHEN insufficient_privilege THEN
    PERFORM set_config('sluice.unpack_problem', SQLERRM, true);
  END;
  IF cur IS NOT NULL THEN @SQL@ END IF;
  DROP FUNCTION IF EXISTS @BUCKET_SIG@;
  DROP FUNCTION IF EXISTS @DECODE_SIG@;
END
$do$
)sql";

void choose_unpack(pg::connection& conn) {
    const std::string c_fn = replace_all(k_unpack_window_fn, "@BODY@", "LANGUAGE C AS %L, 'sluice_unpack_window'");
    std::string sql =
        replace_all(replace_all(replace_all(replace_all(k_choose_unpack, "@C@", c_fn), "@SQL@", unpack_window_sql()),
                                "@BUCKET@", k_bucket_window_fn),
                    "@BUCKET_SIG@", k_bucket_window_sig);
    sql = replace_all(replace_all(sql, "@DECODE@", k_decode_window_fn), "@DECODE_SIG@", k_decode_window_sig);
    auto fail = [&](std::error_code ec) {
        conn.abort_transaction();
        SLUICE_WARN("store", "could not choose sluice_telemetry.unpack_window's implementation (%s)",
                    ec.message().c_str());
    };
    if (auto r = conn.exec("BEGIN"); !r) return fail(r.error());
    if (auto r = conn.exec(sql.c_str()); !r) return fail(r.error());
    const std::string check =
        "SELECT l.lanname = 'c', coalesce(p.probin, ''), coalesce(current_setting('sluice.unpack_problem', true), ''), "
        "to_regprocedure('" +
        std::string(k_bucket_window_sig) + "') IS NOT NULL AND to_regprocedure('" + k_decode_window_sig +
        "') IS NOT NULL, coalesce(current_setting('sluice.bucket_problem', true), '') "
        "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
        "WHERE p.oid = 'sluice_telemetry.unpack_window(int4[], float8[], int2[])'::regprocedure";
    auto q = conn.query(check.c_str());
    if (!q) return fail(q.error());
    if (auto r = conn.exec("COMMIT"); !r) return fail(r.error());
    if (q->get(0, 0) == "t") {
        SLUICE_INFO("store", "readings are decoded in C (sluice_telemetry.unpack_window from %s)",
                    std::string(q->get(0, 1)).c_str());
        if (q->get(0, 3) != "t")
            SLUICE_WARN("store",
                        "sluice_telemetry.bucket_window and decode_window could not be created (%s): grouped "
                        "aggregates over readings decode every reading, and times are computed in SQL",
                        std::string(q->get(0, 4)).c_str());
    } else {
        const std::string problem(q->get(0, 2));
        SLUICE_INFO("store",
                    "readings are decoded in SQL (sluice_telemetry.unpack_window), %s: preload sluice_readings.so "
                    "(docs/storage.md) and migrate as a superuser to decode in C",
                    problem.empty() ? "sluice_readings.so is not preloaded" : problem.c_str());
    }
}

const char* layout_name(bool timescale) {
    return timescale ? "timescale" : "native";
}

// The layout recorded at the first migration, or "" on a fresh database.
result<std::string> recorded_layout(pg::connection& conn) {
    auto exists = conn.query("SELECT to_regclass('sluice_telemetry.settings') IS NOT NULL");
    if (!exists) return exists.error();
    if (exists->get(0, 0) != "t") return std::string();
    auto q = conn.query("SELECT value FROM sluice_telemetry.settings WHERE key = 'layout'");
    if (!q) return q.error();
    return q->rows() ? std::string(q->get(0, 0)) : std::string();
}

}  // namespace

result<std::string> ensure_reader_role(pg::connection& conn, const char* schema) {
    if (auto r = conn.ensure(); !r) return r.error();
    const std::string sql = replace_all(replace_all(k_reader_role_sql, "@S@", schema), "@R@", k_reader_role);
    auto fail = [&](std::error_code ec) -> result<std::string> {
        conn.abort_transaction();
        SLUICE_WARN("store",
                    "could not set up the HTTP API's read-only role %s for schema %s (%s); the API reads in "
                    "read-only transactions as the pipeline's database user until it is set up",
                    k_reader_role, schema, ec.message().c_str());
        return ec;
    };
    if (auto r = conn.exec("BEGIN"); !r) return fail(r.error());
    if (auto r = conn.exec(sql.c_str()); !r) return fail(r.error());
    auto q = conn.query("SELECT current_setting('sluice.reader_role_problem', true)");
    if (!q) return fail(q.error());
    std::string problem = q->rows() ? q->get_opt(0, 0).value_or("") : "";
    if (auto r = conn.exec("COMMIT"); !r) return fail(r.error());
    if (!problem.empty()) {
        // Without CREATEROLE both schemas report the same thing: say it once per process.
        static std::atomic<bool> cannot_create_logged{false};
        const bool cannot_create = problem.rfind("cannot create role", 0) == 0;
        if (!cannot_create || !cannot_create_logged.exchange(true)) {
            SLUICE_WARN("store",
                        "read-only role %s for the HTTP API (schema %s): %s. Until an administrator fixes this "
                        "(e.g. CREATE ROLE %s NOLOGIN; GRANT %s TO <sluice's user>; then restart Sluice), the API "
                        "reads in read-only transactions as the pipeline's database user (docs/http-api.md)",
                        k_reader_role, schema, problem.c_str(), k_reader_role, k_reader_role);
        }
    }
    return problem;
}

result<void> migrate_telemetry(pg::connection& conn, layout_choice layout) {
    if (auto r = conn.ensure(); !r) return r;
    // TimescaleDB can load when it is already created here, or preloaded. Installed but not
    // in shared_preload_libraries, CREATE EXTENSION fails. shared_preload_libraries is only
    // visible to superusers and pg_read_all_settings (pg_settings hides it from others,
    // where current_setting() would fail): for other users, the preloaded loader's own
    // setting timescaledb.disable_load says it is there.
    auto avail = conn.query(
        "SELECT installed_version IS NOT NULL"
        "    OR coalesce((SELECT setting ~ '(^|[ ,])\"?timescaledb\"?($|[ ,])' FROM pg_settings"
        "                 WHERE name = 'shared_preload_libraries'),"
        "                EXISTS (SELECT FROM pg_settings WHERE name = 'timescaledb.disable_load'))"
        "  FROM pg_available_extensions WHERE name = 'timescaledb'");
    if (!avail) return avail.error();
    const bool installed = avail->rows() != 0;
    const bool can_load = installed && avail->get(0, 0) == "t";
    const char* why_not = !installed ? "TimescaleDB is not installed on the PostgreSQL server"
                                     : "TimescaleDB is installed but not in shared_preload_libraries";

    // The layout is chosen once, on a fresh database, and recorded in settings; later
    // start-ups check the request against the record.
    auto recorded = recorded_layout(conn);
    if (!recorded) return recorded.error();
    bool timescale = false;
    if (!recorded->empty()) {
        timescale = *recorded == "timescale";
        if ((layout == layout_choice::native && timescale) || (layout == layout_choice::timescale && !timescale)) {
            SLUICE_ERROR("store",
                         "store.layout = %s, but this telemetry database was created with the %s layout; "
                         "set store.layout = %s (or auto), or use a fresh database",
                         layout == layout_choice::native ? "native" : "timescale", recorded->c_str(),
                         recorded->c_str());
            return errc::layout_mismatch;
        }
        if (timescale && !can_load) {
            SLUICE_ERROR("store",
                         "this telemetry database uses the timescale layout, but %s: add "
                         "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart PostgreSQL",
                         why_not);
            return errc::layout_unavailable;
        }
    } else if (layout == layout_choice::timescale) {
        if (!can_load) {
            SLUICE_ERROR("store",
                         "store.layout = timescale, but %s: add shared_preload_libraries = 'timescaledb' "
                         "to postgresql.conf and restart PostgreSQL (or set store.layout = auto)",
                         why_not);
            return errc::layout_unavailable;
        }
        timescale = true;
    } else if (layout == layout_choice::automatic) {
        timescale = can_load;
        if (!can_load) {
            SLUICE_INFO("store",
                        "store.layout = auto: using native partitions, because %s (add "
                        "shared_preload_libraries = 'timescaledb' to postgresql.conf before the first start "
                        "to use TimescaleDB)",
                        why_not);
        }
    }

    std::string v1;
    if (timescale) {
        v1 = std::string(
                 "CREATE EXTENSION IF NOT EXISTS timescaledb;\n"
                 "CREATE TABLE sluice_telemetry.telemetry_packed (") +
             k_packed_columns +
             ") WITH (toast_tuple_target = 128);\n"
             "SELECT create_hypertable('sluice_telemetry.telemetry_packed', 'window_start', "
             "chunk_time_interval => interval '1 day', create_default_indexes => false);\n" +
             k_timescale_v1;
    } else {
        v1 = std::string("CREATE TABLE sluice_telemetry.telemetry_packed (") + k_packed_columns +
             ") PARTITION BY RANGE (window_start);\n" + k_native_v1;
    }
    v1 += k_telemetry_common_v1 + replace_all(k_telemetry_decoders, "@UNPACK@", unpack_inline()) + k_telemetry_rest_v1;
    v1 += std::string("INSERT INTO sluice_telemetry.settings VALUES ('layout', '") + layout_name(timescale) +
          "'), ('window_us', '600000000');\n";
    // v2: per-device last payload sequence numbers, written with each batch (deduplication
    // of QoS 1 resends across pipeline restarts).
    const std::string v2 = R"sql(
CREATE TABLE sluice_telemetry.device_sequences (
  device_id int4 PRIMARY KEY,
  last_seq int8 NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
)sql";
    std::string v4 = k_retention_v4;
    if (timescale) v4 += k_timescale_retention_v4;
    const std::string v3 =
        k_names_v3 + replace_all(k_readings_decoders, "@UNPACK@", unpack_inline()) + k_readings_rest_v3;
    // v5: decoding through unpack_window (SQL here; choose_unpack makes it C where it can).
    const std::string v5 = unpack_window_sql() + replace_all(std::string(k_telemetry_decoders) + k_readings_decoders,
                                                             "@UNPACK@", k_unpack_call);
    if (auto r = run_migrations(
            conn, "sluice_telemetry",
            {v1, v2, v3, v4, v5, std::string(k_rollups_v6) + k_telemetry_rollup_fn, k_telemetry_rollup_fn},
            k_telemetry_version);
        !r)
        return r;
    choose_unpack(conn);
    (void)ensure_reader_role(conn, "sluice_telemetry");  // logged; never fails the migration
    return ok();
}

result<void> ensure_retention_job(pg::connection& conn, std::chrono::hours retention) {
    if (auto r = conn.ensure(); !r) return r;
    std::optional<std::string> drop_after;
    if (retention.count() > 0) {
        const auto hours = retention.count();
        drop_after = hours % 24 == 0 ? std::to_string(hours / 24) + " days" : std::to_string(hours) + " hours";
    }
    auto q = conn.query("SELECT sluice_telemetry.ensure_retention_job($1::interval)", {drop_after});
    if (!q) return q.error();
    if (drop_after) {
        SLUICE_INFO("store", "retention: TimescaleDB job %s drops chunks older than %s (hourly)",
                    std::string(q->get(0, 0)).c_str(), drop_after->c_str());
    }
    return ok();
}

result<void> migrate_app(pg::connection& conn) {
    static const std::vector<std::string> steps = {R"sql(
CREATE TABLE sluice_app.devices (
  id int4 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  site text NOT NULL DEFAULT '',
  line text NOT NULL DEFAULT '',
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now());

-- canonical value = raw * scale + "offset"; valid_* bound valid readings, warn_* flag anomalies.
CREATE TABLE sluice_app.metrics (
  id int4 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  name text NOT NULL UNIQUE,
  unit text NOT NULL DEFAULT '',
  scale float8 NOT NULL DEFAULT 1,
  "offset" float8 NOT NULL DEFAULT 0,
  valid_min float8, valid_max float8, warn_low float8, warn_high float8,
  created_at timestamptz NOT NULL DEFAULT now());
)sql"};
    if (auto r = run_migrations(conn, "sluice_app", steps, k_app_version); !r) return r;
    (void)ensure_reader_role(conn, "sluice_app");  // logged; never fails the migration
    return ok();
}

result<bool> telemetry_uses_timescale(pg::connection& conn) {
    if (auto r = conn.ensure(); !r) return r.error();
    auto q = conn.query("SELECT value FROM sluice_telemetry.settings WHERE key = 'layout'");
    if (!q) return q.error();
    if (q->rows() == 0) return errc::schema_missing;
    return q->get(0, 0) == "timescale";
}

}  // namespace sluice::store::schema
