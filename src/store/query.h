// SPDX-License-Identifier: Apache-2.0
//
// The read side of the store: the questions the HTTP API asks of the telemetry and
// application databases, as an abstract interface (store.h is the write side), so that
// the tables, views and SQL behind the answers live in this module only and a schema
// change touches nothing outside it. The PostgreSQL implementation is store/pg_query.cc.
//
// Times are ISO 8601 text in UTC with milliseconds ("2026-11-22T00:30:00.123Z"), as the
// database's calendar formats them (5-digit years included); a time it cannot format
// (-infinity, infinity) is nullopt.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/errc.h"

namespace sluice::store {

struct device_info {
    int32_t id;
    std::string key;
    std::string name;
    std::string site;
    std::string line;
    std::optional<std::string> created_at;
    std::optional<std::string> last_reading;  // nullopt: no reading in the last two days
};

struct metric_info {
    int32_t id;
    std::string name;
    std::string unit;
};

enum class series_resolution { raw, hour, day };

struct series_request {
    std::string device_key;
    std::string metric_name;
    // Timestamp text as the client wrote it (ISO 8601; the database's timestamptz input
    // syntax). nullopt: `to` defaults to now, `from` to one hour before `to`.
    std::optional<std::string> from;
    std::optional<std::string> to;
    series_resolution resolution = series_resolution::raw;
    int limit = 10000;  // at most this many points; a longer series sets `truncated`
};

// One reading (series_resolution::raw).
struct reading_point {
    std::string time;
    double value;  // NaN when the stored value is NaN
    int flags;
};

// One rollup bucket (hour, day): aggregates of the readings in [time, time + bucket).
struct rollup_point {
    std::string time;
    double avg;
    double min;
    double max;
    int64_t count;
};

struct series {
    enum class lookup { found, unknown_device, unknown_metric };
    lookup status = lookup::found;    // not found: only status is set
    std::optional<std::string> from;  // the range read, [from, to)
    std::optional<std::string> to;
    bool truncated = false;
    std::vector<reading_point> readings;  // series_resolution::raw, in time order
    std::vector<rollup_point> buckets;    // hour and day, in time order
};

struct dead_letter_info {
    std::optional<std::string> received_at;
    std::string topic;
    std::string client_id;
    std::string reason;
    int64_t payload_bytes;     // the whole payload's length
    std::string payload_head;  // its first preview_bytes bytes, verbatim
};

// One partition's position stored with the data (sluice_offsets, written in each batch's
// transaction): the authoritative one, whatever the bus says.
struct stored_offset {
    int32_t partition;
    int64_t next_offset;
    std::optional<std::string> updated_at;
};

// Errors of every call: errc::connection_failed - no database (none configured, down,
// or the connection broke twice in a row); errc::timeout - the statement ran past the
// session's statement timeout; errc::invalid_data - the database refused a value while
// reading; other store errc values - any other failure. read_series also returns
// errc::invalid_argument when `from` or `to` is not a timestamp.
//
// Not thread-safe: one caller at a time (the HTTP server's thread).
class telemetry_query {
public:
    virtual ~telemetry_query() = default;

    // Devices ordered by key, at most `limit`.
    virtual result<std::vector<device_info>> devices(int limit) = 0;

    // Metrics ordered by name (at most 1000); with `device_key`, only those it has readings of.
    virtual result<std::vector<metric_info>> metrics(std::optional<std::string_view> device_key) = 0;

    // One device's metric over [from, to): the readings, or hourly/daily rollups.
    virtual result<series> read_series(const series_request& request) = 0;

    // Dead letters, newest first, at most `limit`, payloads cut to `preview_bytes`.
    virtual result<std::vector<dead_letter_info>> dead_letters(int limit, int preview_bytes) = 0;

    // The offsets `consumer` stored (the pipeline's: "sluice-pipeline" with the WAL, "kafka:<topic>"), by partition.
    virtual result<std::vector<stored_offset>> offsets(std::string_view consumer) = 0;
};

struct query_options {
    // libpq URL of the instance holding both sluice_telemetry and sluice_app; empty:
    // every call fails with errc::connection_failed.
    std::string url;
    std::chrono::milliseconds statement_timeout{5000};
};

// One lazily (re)connected read-only session, which runs as the SELECT-only role
// schema::k_reader_role when it can (docs/http-api.md "Database access"). Never fails:
// connection errors come back from the calls.
std::unique_ptr<telemetry_query> open_postgres_query(const query_options& options);

// Outcome of one statement in probe_postgres_query.
struct query_probe_step {
    std::string sqlstate;  // "" when the statement succeeded, else its SQLSTATE ("25006", "42501", ...)
    std::string value;     // first column of the first row, when it returned rows
};
struct query_probe {
    bool connected = false;    // false: no connection could be made (steps is empty)
    bool reader_role = false;  // SET ROLE schema::k_reader_role succeeded on this connection
    std::vector<query_probe_step> steps;
};

// Test hook: opens a session set up exactly as open_postgres_query's (statement timeout,
// UTC, read-only transactions, reader role), runs each of `statements` on it in order, each
// on its own (autocommit), and reports what happened.
query_probe probe_postgres_query(const std::string& url, const std::vector<std::string>& statements);

}  // namespace sluice::store
