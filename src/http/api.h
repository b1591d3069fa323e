// SPDX-License-Identifier: Apache-2.0
//
// The JSON query API and the dashboard's static files (docs/http-api.md lists every
// route with an example). It exists so that people watching a fleet can see, without
// Grafana, whether data is flowing and landing: /api/overview turns the Prometheus text
// into one JSON snapshot the dashboard polls every second, and the /api/devices,
// /api/metrics, /api/telemetry and /api/dead-letters routes read PostgreSQL with
// parameterized queries on one lazily (re)connected libpq connection, which cannot
// write (read-only transactions, and the SELECT-only role k_api_reader_role). That
// connection is owned by the routes and only used on the HTTP server's thread. The pure parts
// (metrics parsing, JSON escaping, static path checks) are declared here so that unit
// tests can drive them without a server or a database.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "base/result.h"

namespace sluice::http {

class server;

struct api_config {
    // libpq URL of the instance holding both sluice_telemetry and sluice_app; empty:
    // the database routes answer 503.
    std::string db_url;
    // The current Prometheus exposition (the same text GET /metrics serves); called on
    // the HTTP thread once per GET /api/overview.
    std::function<std::string()> metrics_text;
    // Directory with index.html, app.js, style.css; empty: no static routes.
    std::string web_root;
    // Bound on every query (SET statement_timeout), in milliseconds.
    int statement_timeout_ms = 5000;
};

// Registers GET /api/overview, /api/devices, /api/metrics, /api/telemetry,
// /api/dead-letters, and (when cfg.web_root is set) GET / and GET /static/*.
// REQUIRES: called before s.start(). The routes share state that lives as long as `s`.
void register_api(server& s, api_config cfg);

enum class api_errc {
    database_unavailable = 1,  // no connection could be made (or the URL is empty)
    query_failed,              // the server reported an error for the query
    query_timeout,             // statement_timeout cancelled the query
    bad_request,               // a parameter the server rejected (e.g. an invalid timestamp)
    unsafe_path,               // a static path with '..', '.', an empty segment, '\\' or NUL
};
const std::error_category& api_category();
std::error_code make_error_code(api_errc e);

// ---- Pure helpers (exposed for tests) ----

// One sample line of a Prometheus text exposition.
struct prom_sample {
    std::string name;    // e.g. "sluice_bus_lag_messages"
    std::string labels;  // raw text between the braces, "" when none
    double value = 0;
};
// Parses sample lines; comments, blank and malformed lines are skipped.
std::vector<prom_sample> parse_prometheus(std::string_view text);

// The /api/overview body for the given exposition. Counters and per-partition gauges
// are summed over label sets, bus_lag_seconds is the maximum, database_up and
// pipeline_running are true only when every partition says 1, wal_over_quota when any
// does; a metric absent from the text is null. `now_ms` is written as time_ms.
std::string overview_json(std::string_view metrics_text, int64_t now_ms);

// Appends `s` as a JSON string literal (with quotes). Control characters are escaped,
// and bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

// Appends a JSON number; NaN and infinities (not representable in JSON) become null.
void append_json_number(std::string& out, double v);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

// True when `bytes` is valid UTF-8 with no control characters other than tab, CR, LF.
bool is_printable_utf8(std::string_view bytes);

// Maps a request path below the static prefix ("app.js", "img/logo.svg") to a file
// under `web_root`. Fails with api_errc::unsafe_path for '..', '.', empty segments,
// backslashes, NUL bytes or an absolute path; never touches the file system.
result<std::string> static_file_path(std::string_view web_root, std::string_view relative);

// Content-Type for a file name by extension; application/octet-stream when unknown.
std::string_view content_type_for(std::string_view file_name);

// ---- Database session (exposed for tests) ----

// The role the API's session switches to (SET ROLE) right after connecting: NOLOGIN,
// SELECT only, created and granted to the telemetry database's user by the store's
// schema set-up (store/schema.h k_reader_role; the two names must match).
inline constexpr const char* k_api_reader_role = "sluice_reader";

// Outcome of one statement in probe_api_session.
struct api_probe_step {
    std::string sqlstate;  // "" when the statement succeeded, else its SQLSTATE ("25006", "42501", ...)
    std::string value;     // first column of the first row, when it returned rows
};
struct api_probe {
    bool connected = false;    // false: no connection could be made (steps is empty)
    bool reader_role = false;  // SET ROLE k_api_reader_role succeeded on this connection
    std::vector<api_probe_step> steps;
};

// Test hook: opens a connection to `db_url` set up exactly as the API's routes set theirs
// up (statement_timeout, UTC, default_transaction_read_only, SET ROLE), then runs each of
// `statements` in order on it, each on its own (autocommit), and reports what happened.
api_probe probe_api_session(const std::string& db_url, const std::vector<std::string>& statements);

}  // namespace sluice::http

namespace std {
template <>
struct is_error_code_enum<sluice::http::api_errc> : true_type {};
}  // namespace std
