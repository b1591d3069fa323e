// SPDX-License-Identifier: Apache-2.0
//
// Error codes of the store module. They keep the KIND of failure so that the
// pipeline can act on it without parsing PostgreSQL messages: retry with backoff
// when the database is unreachable (connection_failed, conflict, resource_exhausted),
// skip a batch the database already holds (stale_offset), dead-letter the batch's
// readings on data errors (invalid_data, constraint_violation).
#pragma once

#include <system_error>

namespace sluice::store {

enum class errc {
    connection_failed = 1,  // cannot connect, or the connection broke (DB down, restart); retryable
    query_failed,           // the server rejected a statement for another reason (bug, permissions)
    constraint_violation,   // SQLSTATE class 23: unique/check/foreign-key/not-null violated
    invalid_data,           // SQLSTATE class 22 or a row the store refuses (time out of range)
    conflict,               // serialization failure or deadlock (40001, 40P01); retryable
    resource_exhausted,     // disk full, out of memory, too many connections (class 53); retryable
    stale_offset,           // an offset_update does not advance the stored offset: batch already stored
    schema_too_new,         // the database was migrated by a newer Sluice
    schema_missing,         // migrate() has not been run on this database
    invalid_argument,       // the caller passed an impossible value (bad URL option, empty consumer)
    injected_failure,       // a test's failure probe asked the write to fail (tests only)
    layout_unavailable,     // store.layout = timescale, but TimescaleDB cannot load in that database
    layout_mismatch,        // the database was migrated with another layout than store.layout asks for
    timeout,                // statement_timeout cancelled the statement (SQLSTATE 57014)
};

const std::error_category& store_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// True for failures that a later attempt of the same call may not hit: connection
// loss, serialization conflicts, exhausted resources. Data errors are not retryable.
bool is_retryable(std::error_code ec) noexcept;

}  // namespace sluice::store

template <>
struct std::is_error_code_enum<sluice::store::errc> : std::true_type {};
