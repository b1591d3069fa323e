// SPDX-License-Identifier: Apache-2.0
//
// The telemetry store: where decoded readings, dead letters and bus offsets land in
// PostgreSQL. The pipeline sees only this abstract interface (LevelDB's db.h shape);
// the libpq implementation lives in store/pg_store.cc. The store knows nothing of MQTT.
// Physical layout, rollups, partitions and the exactly-once rule: docs/storage.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/errc.h"

namespace sluice::store {

// One reading. time_us: microseconds since the Unix epoch (UTC), within
// [1970-01-01, 2200-01-01); the store refuses other times with errc::invalid_data.
struct row {
    int64_t time_us;
    int32_t device_id;
    int32_t metric_id;
    double value;
    int16_t flags;
};

// A payload the pipeline could not decode or validate. Text fields are stored as
// UTF-8; invalid sequences and NUL bytes are replaced by U+FFFD (payload is bytea, verbatim).
struct dead_letter {
    int64_t received_at_us;
    std::string topic;
    std::string client_id;
    std::string payload;
    std::string reason;
};

// "Consumer `consumer` has stored everything of bus partition `partition` below
// `next_offset`." Written in the same transaction as the batch it covers.
// A device's last accepted payload sequence number, stored with the batch that took it,
// so that after a crash the pipeline still recognises resent payloads (QoS 1 duplicates).
struct sequence_update {
    int32_t device_id;
    int64_t last_seq;
};

// With `fenced`, the update is a compare-and-set: it applies only if the stored offset
// still equals `expected_offset` (-1: no offset stored yet), so a writer that lost its
// partition to another (a consumer-group rebalance, a paused or partitioned worker)
// cannot commit a batch the new owner has already moved past or repeated.
struct offset_update {
    std::string consumer;
    int32_t partition;
    int64_t next_offset;
    bool fenced = false;
    int64_t expected_offset = -1;
};

// Named points inside write_batch where a test's failure probe runs (in order).
enum class write_stage { after_rows_copied, after_dead_letters, before_commit };

// Physical layout of the packed readings, chosen at the first migration and recorded in
// sluice_telemetry.settings (docs/storage.md "Layouts"): automatic = TimescaleDB when it can
// load in the telemetry database (created there, or in shared_preload_libraries), else
// native partitions; timescale = TimescaleDB or errc::layout_unavailable; native = never.
enum class layout_choice { automatic, native, timescale };

// "auto" | "native" | "timescale"; false for anything else.
bool parse_layout(std::string_view text, layout_choice& out);

struct store_options {
    std::string telemetry_url;     // libpq URL or key=value string of the telemetry database
    std::string app_url;           // libpq URL of the application database (devices, metrics)
    int parallel_connections = 2;  // write_batch may run this many calls at once
    // Raw readings older than this are dropped; 0 = keep. maintain() applies it on native
    // partitions; on TimescaleDB migrate() makes a Timescale job (hourly) follow it.
    std::chrono::hours retention{0};
    int partitions_ahead_days = 3;  // maintain() creates daily partitions this far ahead
    layout_choice layout = layout_choice::automatic;
    std::chrono::seconds connect_timeout{10};
    // Tests only: called at each write_stage inside the open transaction; an error
    // aborts the write (rolled back) and is returned by write_batch.
    std::function<result<void>(write_stage)> failure_probe;
};

// Lifecycle: open_postgres() connects lazily (the first call connects), migrate()
// once at start-up, then write_batch() from any number of threads (up to
// parallel_connections run at once, the rest wait), maintain() periodically.
//
// Durability contract: when write_batch() returns success, the batch's rows (with
// the aggregates the rollups are computed from), dead letters and offsets are
// committed (fsync'ed by PostgreSQL) in ONE transaction; on any error none of them is visible and the connection is
// reset if it broke, so the next call reconnects. After a crash the pipeline resumes
// from load_offset(): exactly once. Rule for parallel writers: batches of one bus
// partition must be written in offset order (one writer per partition at a time);
// an offset_update that does not advance the stored offset (or, when fenced, finds
// another stored offset than the one expected) fails the whole batch with
// errc::stale_offset, which fences zombie writers: reload the offset and resume there.
class telemetry_store {
public:
    virtual ~telemetry_store() = default;

    // Creates or upgrades the schema (versioned, schema_version table); idempotent
    // and safe to run concurrently. Returns errc::schema_too_new if a newer Sluice migrated it,
    // errc::layout_unavailable when options.layout = timescale and TimescaleDB cannot load,
    // errc::layout_mismatch when the database was migrated with another explicit layout.
    virtual result<void> migrate() = 0;

    // One transaction: binary COPY of the packed rows (which carry the rollup
    // aggregates) and dead letters, offsets upsert. Returns connection_failed (retry later),
    // stale_offset (already stored: skip), invalid_data/constraint_violation (data
    // error: dead-letter), conflict/resource_exhausted (retry), query_failed.
    // `sequences` are upserted into device_sequences in the same transaction.
    virtual result<void> write_batch(std::span<const row> rows, std::span<const dead_letter> dead_letters,
                                     std::span<const offset_update> offsets,
                                     std::span<const sequence_update> sequences) = 0;
    result<void> write_batch(std::span<const row> rows, std::span<const dead_letter> dead_letters,
                             std::span<const offset_update> offsets) {
        return write_batch(rows, dead_letters, offsets, {});
    }

    // Every device's stored last sequence number.
    virtual result<std::vector<sequence_update>> load_sequences() = 0;

    // The stored next offset of (consumer, partition), or nullopt if none was stored.
    virtual result<std::optional<int64_t>> load_offset(std::string_view consumer, int32_t partition) = 0;

    // True when the database has TimescaleDB and the schema uses it.
    virtual bool timescale() const = 0;

    // Creates partitions ahead of `now`, drops partitions past retention (native; the
    // Timescale job does it on TimescaleDB), merges
    // the fragments of closed time windows into one packed row each. Call every
    // minute or so; safe to run concurrently with write_batch.
    virtual result<void> maintain(std::chrono::system_clock::time_point now) = 0;
};

result<std::unique_ptr<telemetry_store>> open_postgres(const store_options& options);

}  // namespace sluice::store
