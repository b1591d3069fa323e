// SPDX-License-Identifier: Apache-2.0
//
// Versioned schema migrations of the two databases: sluice_telemetry (packed
// readings, rollups, dead letters, offsets) and sluice_app (devices, metrics).
// Each schema has a schema_version table; migrations run in one transaction under
// an advisory lock, so concurrent start-ups and re-runs are safe. The SQL here and
// store/packing.cc (the packed encoding) must change together; docs/storage.md explains both.
#pragma once

#include <chrono>

#include "base/result.h"
#include "store/pg.h"
#include "store/store.h"

namespace sluice::store::schema {

// Highest versions this build knows.
inline constexpr int k_telemetry_version = 7;
inline constexpr int k_app_version = 1;

// Migrates sluice_telemetry; on a fresh database chooses the layout (store.h
// layout_choice) and records it. Returns schema_too_new if the database is ahead,
// layout_unavailable / layout_mismatch (logged with what to change) per layout_choice.
result<void> migrate_telemetry(pg::connection& conn, layout_choice layout);
result<void> migrate_app(pg::connection& conn);

// The NOLOGIN role the HTTP API reads as (store/pg_query.cc's session runs SET ROLE with
// it). migrate_telemetry and migrate_app end by making sure, idempotently and on every
// call (so databases migrated before it existed get it too), that the role exists, has USAGE on the schema and SELECT
// on all its tables and views (and by default privileges on the tables the connecting user creates later, e.g. new
// partitions; TimescaleDB copies the hypertable's grants to its chunks), and is granted
// to the connecting user. That step never fails the migration: without CREATEROLE it logs
// one warning and the API falls back to read-only transactions under the connecting user
// (docs/http-api.md, "Database access"); other gaps (tables the user may not grant on)
// are logged the same way (docs/storage.md).
inline constexpr const char* k_reader_role = "sluice_reader";

// The reader-role step on its own (what the migrations run last), for `schema`
// ("sluice_telemetry" or "sluice_app", already migrated). Returns "" when the role is
// fully set up, else what is missing (also logged as one warning); an error only when
// the statement could not run at all (e.g. the connection broke), also logged.
result<std::string> ensure_reader_role(pg::connection& conn, const char* schema);

// TimescaleDB layout: makes the Timescale job that applies retention (hourly, dropping
// chunks older than `retention` after archiving their rollups, and older dead letters)
// match `retention`, on every start; 0 removes it. maintain() leaves retention to it.
result<void> ensure_retention_job(pg::connection& conn, std::chrono::hours retention);

// True when the migrated telemetry schema uses TimescaleDB; schema_missing before migration.
result<bool> telemetry_uses_timescale(pg::connection& conn);

}  // namespace sluice::store::schema
