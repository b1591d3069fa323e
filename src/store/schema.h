// SPDX-License-Identifier: Apache-2.0
//
// Versioned schema migrations of the two databases: sluice_telemetry (packed
// readings, rollups, dead letters, offsets) and sluice_app (devices, metrics).
// Each schema has a schema_version table; migrations run in one transaction under
// an advisory lock, so concurrent start-ups and re-runs are safe. The SQL here and
// store/packing.cc (the packed encoding) must change together; docs/storage.md explains both.
#pragma once

#include "base/result.h"
#include "store/pg.h"
#include "store/store.h"

namespace sluice::store::schema {

// Highest versions this build knows.
inline constexpr int k_telemetry_version = 3;
inline constexpr int k_app_version = 1;

// Migrates sluice_telemetry; on a fresh database chooses the layout (store.h
// layout_choice) and records it. Returns schema_too_new if the database is ahead,
// layout_unavailable / layout_mismatch (logged with what to change) per layout_choice.
result<void> migrate_telemetry(pg::connection& conn, layout_choice layout);
result<void> migrate_app(pg::connection& conn);

// True when the migrated telemetry schema uses TimescaleDB; schema_missing before migration.
result<bool> telemetry_uses_timescale(pg::connection& conn);

}  // namespace sluice::store::schema
