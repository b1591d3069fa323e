// SPDX-License-Identifier: Apache-2.0
//
// Routes of the JSON query API and the dashboard's static files. The database side is
// one libpq connection owned by the routes and used on the HTTP server thread only:
// connected on first use, dropped and reconnected when a query finds it broken, with a
// short back-off so a down database costs one failed connect per couple of seconds
// rather than one per request. Every query is a constant SQL text with parameters
// (PQexecParams): user input never becomes SQL. See docs/http-api.md.
#include "http/api.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/utf8.h"
#include "http/server.h"

namespace sluice::http {
namespace {

class api_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "sluice.http.api"; }
    std::string message(int v) const override {
        switch (static_cast<api_errc>(v)) {
            case api_errc::database_unavailable:
                return "database unavailable";
            case api_errc::query_failed:
                return "query failed";
            case api_errc::query_timeout:
                return "query timed out";
            case api_errc::bad_request:
                return "bad request";
            case api_errc::unsafe_path:
                return "unsafe path";
        }
        return "unknown api error";
    }
};

}  // namespace

const std::error_category& api_category() {
    static const api_category_impl instance;
    return instance;
}

std::error_code make_error_code(api_errc e) {
    return {static_cast<int>(e), api_category()};
}

// ---------------------------------------------------------------------------------
// Pure helpers

std::vector<prom_sample> parse_prometheus(std::string_view text) {
    std::vector<prom_sample> out;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ')
            ++i;
        prom_sample s;
        s.name = std::string(line.substr(0, i));
        if (s.name.empty()) continue;
        if (i < line.size() && line[i] == '{') {
            size_t start = ++i;
            bool in_quotes = false;
            for (; i < line.size(); ++i) {
                char c = line[i];
                if (in_quotes && c == '\\') {
                    ++i;
                } else if (c == '"') {
                    in_quotes = !in_quotes;
                } else if (c == '}' && !in_quotes) {
                    break;
                }
            }
            if (i >= line.size()) continue;  // unterminated label set
            s.labels = std::string(line.substr(start, i - start));
            ++i;
        }
        while (i < line.size() && line[i] == ' ')
            ++i;
        std::string_view value = line.substr(i);
        value = value.substr(0, value.find(' '));  // an optional timestamp follows
        if (value.empty()) continue;
        if (value == "NaN") {
            s.value = std::numeric_limits<double>::quiet_NaN();
        } else if (value == "+Inf" || value == "Inf") {
            s.value = std::numeric_limits<double>::infinity();
        } else if (value == "-Inf") {
            s.value = -std::numeric_limits<double>::infinity();
        } else {
            std::string copy(value);  // strtod needs a terminator
            char* end = nullptr;
            s.value = std::strtod(copy.c_str(), &end);
            if (end != copy.c_str() + copy.size()) continue;
        }
        out.push_back(std::move(s));
    }
    return out;
}

void append_json_number(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[40];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    SLUICE_CHECK(res.ec == std::errc{}, "to_chars of a double cannot overflow 40 bytes");
    out.append(buf, res.ptr);
}

namespace {

// all: true when every sample is non-zero (every partition up); any: when one is.
enum class agg { sum, max, all, any };

struct overview_field {
    const char* key;
    const char* metric;
    agg how;
};

// Order is the order of the JSON object.
constexpr overview_field k_overview_fields[] = {
    {"connections", "sluice_mqtt_connections", agg::sum},
    {"sessions", "sluice_mqtt_sessions", agg::sum},
    {"subscriptions", "sluice_mqtt_subscriptions", agg::sum},
    {"messages_in", "sluice_mqtt_messages_received_total", agg::sum},
    {"messages_out", "sluice_mqtt_messages_sent_total", agg::sum},
    {"ingest_appended", "sluice_ingest_appended_total", agg::sum},
    {"ingest_refused", "sluice_ingest_refused_total", agg::sum},
    {"rows", "sluice_pipeline_rows_total", agg::sum},
    {"dead_letters", "sluice_pipeline_dead_letters_total", agg::sum},
    {"lag_messages", "sluice_bus_lag_messages", agg::sum},
    {"lag_seconds", "sluice_bus_lag_seconds", agg::max},
    {"database_up", "sluice_pipeline_database_up", agg::all},
    {"pipeline_running", "sluice_pipeline_running", agg::all},
    {"sequence_gaps", "sluice_pipeline_sequence_gaps_total", agg::sum},
    {"sequence_missing", "sluice_pipeline_sequence_missing_total", agg::sum},
    {"bus_bytes", "sluice_bus_bytes", agg::sum},
    {"wal_over_quota", "sluice_bus_over_quota", agg::any},
};

}  // namespace

std::string overview_json(std::string_view metrics_text, int64_t now_ms) {
    auto samples = parse_prometheus(metrics_text);
    std::string out = "{\"time_ms\":" + std::to_string(now_ms);
    for (const auto& f : k_overview_fields) {
        bool seen = false;
        double acc = 0;
        bool all_set = true;
        bool any_set = false;
        for (const auto& s : samples) {
            if (s.name != f.metric) continue;
            all_set = all_set && s.value != 0;
            any_set = any_set || s.value != 0;
            if (!seen) {
                acc = s.value;
                seen = true;
            } else if (f.how == agg::max) {
                acc = std::max(acc, s.value);
            } else {
                acc += s.value;
            }
        }
        out += ",\"";
        out += f.key;
        out += "\":";
        if (!seen) {
            out += "null";
        } else if (f.how == agg::all) {
            out += all_set ? "true" : "false";
        } else if (f.how == agg::any) {
            out += any_set ? "true" : "false";
        } else {
            append_json_number(out, acc);
        }
    }
    out += '}';
    return out;
}

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out += '"';
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            size_t n = utf8_sequence_length(s.substr(i));
            if (n == 0) {
                out += "\\ufffd";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out += k_hex[c >> 4];
                    out += k_hex[c & 0xF];
                } else if (c == '<') {
                    out += "\\u003c";  // safe even if a page ever inlines the JSON in a <script>
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += k_alphabet[(v >> 6) & 63];
        out += k_alphabet[v & 63];
    }
    size_t rest = bytes.size() - i;
    if (rest == 1) {
        uint32_t v = u(i) << 16;
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += "==";
    } else if (rest == 2) {
        uint32_t v = (u(i) << 16) | (u(i + 1) << 8);
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += k_alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

bool is_printable_utf8(std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        auto c = static_cast<unsigned char>(bytes[i]);
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return false;
            ++i;
            continue;
        }
        size_t n = utf8_sequence_length(bytes.substr(i));
        if (n == 0) return false;
        i += n;
    }
    return true;
}

result<std::string> static_file_path(std::string_view web_root, std::string_view relative) {
    if (relative.empty() || relative.front() == '/') return api_errc::unsafe_path;
    if (relative.find('\\') != std::string_view::npos || relative.find('\0') != std::string_view::npos) {
        return api_errc::unsafe_path;
    }
    std::string_view rest = relative;
    while (true) {
        size_t slash = rest.find('/');
        std::string_view seg = rest.substr(0, slash);
        if (seg.empty() || seg == "." || seg == "..") return api_errc::unsafe_path;
        if (slash == std::string_view::npos) break;
        rest = rest.substr(slash + 1);
    }
    std::string path(web_root);
    if (path.empty() || path.back() != '/') path += '/';
    path += relative;
    return path;
}

std::string_view content_type_for(std::string_view file_name) {
    struct entry {
        std::string_view ext;
        std::string_view type;
    };
    static constexpr entry k_types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json; charset=utf-8"},
    };
    for (const auto& e : k_types) {
        if (file_name.size() >= e.ext.size() && file_name.substr(file_name.size() - e.ext.size()) == e.ext) {
            return e.type;
        }
    }
    return "application/octet-stream";
}

// ---------------------------------------------------------------------------------
// Database access

namespace {

struct pg_result_deleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, pg_result_deleter>;

using param = std::optional<std::string>;

// Owns the API's one connection. Used on the HTTP thread only.
//
// The session cannot write, whatever SQL it is given, at the database's level:
// default_transaction_read_only is on from the start-up packet (every statement runs in
// a read-only transaction), and right after connecting it switches to the NOLOGIN role
// k_api_reader_role, which may only SELECT (the store's schema set-up creates it and
// grants it to the database user). When that role is missing or not granted (database
// not migrated yet, user without CREATEROLE), the session warns once and serves anyway,
// read-only transactions being the only guard, and tries SET ROLE again on every new
// connection and every k_role_retry on the current one. docs/http-api.md, "Database access".
class db_session {
public:
    db_session(std::string url, int statement_timeout_ms)
        : url_(std::move(url)),
          options_("-c statement_timeout=" + std::to_string(statement_timeout_ms) +
                   " -c TimeZone=UTC -c default_transaction_read_only=on") {}
    ~db_session() {
        if (conn_ != nullptr) PQfinish(conn_);
    }
    db_session(const db_session&) = delete;
    db_session& operator=(const db_session&) = delete;

    // Runs `sql` (constant text) with text parameters; nullopt is SQL NULL. A broken
    // connection is replaced and the (read-only) query retried once.
    // Returns: the result on success. api_errc::database_unavailable - no connection.
    // api_errc::bad_request - the server rejected a parameter (SQLSTATE class 22).
    // api_errc::query_timeout - statement_timeout hit. api_errc::query_failed - other.
    result<pg_result> query(const char* sql, const std::vector<param>& params) {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params)
            values.push_back(p ? p->c_str() : nullptr);
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (auto c = connect(); !c) return c.error();
            pg_result r(
                PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
            ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
            if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return r;
            last_error_ = r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_);
            trim_newline(last_error_);
            if (PQstatus(conn_) != CONNECTION_OK) {
                SLUICE_WARN("http", "api database connection lost: %s", last_error_.c_str());
                PQfinish(conn_);
                conn_ = nullptr;
                continue;
            }
            const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
            std::string_view code = state != nullptr ? state : "";
            if (code.substr(0, 2) == "22") return api_errc::bad_request;
            if (code == "57014") return api_errc::query_timeout;
            SLUICE_WARN("http", "api query failed: %s", last_error_.c_str());
            return api_errc::query_failed;
        }
        return api_errc::database_unavailable;
    }

    const std::string& last_error() const { return last_error_; }

    // See probe_api_session (api.h).
    api_probe probe(const std::vector<std::string>& statements) {
        api_probe out;
        if (!connect()) return out;
        out.connected = true;
        out.reader_role = reader_role_;
        for (const auto& sql : statements) {
            pg_result r(PQexec(conn_, sql.c_str()));
            ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
            api_probe_step step;
            if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
                if (st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 && PQnfields(r.get()) > 0)
                    step.value = PQgetvalue(r.get(), 0, 0);
            } else {
                const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
                step.sqlstate = state != nullptr ? state : "?????";
            }
            out.steps.push_back(std::move(step));
        }
        return out;
    }

private:
    static constexpr std::chrono::seconds k_role_retry{30};
    static void trim_newline(std::string& s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
            s.pop_back();
    }

    result<void> connect() {
        if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
            if (!reader_role_ && std::chrono::steady_clock::now() >= role_retry_after_) set_reader_role();
            return ok();
        }
        if (conn_ != nullptr) {
            PQfinish(conn_);
            conn_ = nullptr;
        }
        if (url_.empty()) {
            last_error_ = "no database configured";
            return api_errc::database_unavailable;
        }
        auto now = std::chrono::steady_clock::now();
        if (now < retry_after_) return api_errc::database_unavailable;  // last_error_ kept
        const char* keys[] = {"dbname", "connect_timeout", "options", "application_name", nullptr};
        const char* vals[] = {url_.c_str(), "2", options_.c_str(), "sluice-http-api", nullptr};
        conn_ = PQconnectdbParams(keys, vals, 1);
        if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
            last_error_ = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
            trim_newline(last_error_);
            if (conn_ != nullptr) PQfinish(conn_);
            conn_ = nullptr;
            retry_after_ = now + std::chrono::seconds(2);
            SLUICE_WARN("http", "api cannot connect to the database: %s", last_error_.c_str());
            return api_errc::database_unavailable;
        }
        reader_role_ = false;
        set_reader_role();
        return ok();
    }

    // SET ROLE k_api_reader_role on the current connection. Not in a transaction, so a
    // failure leaves the session as it was (its user, read-only transactions). A broken
    // connection is left for the query that follows to notice and replace.
    void set_reader_role() {
        static const std::string sql = std::string("SET ROLE ") + k_api_reader_role;
        pg_result r(PQexec(conn_, sql.c_str()));
        if (r && PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
            reader_role_ = true;
            if (role_warned_) SLUICE_INFO("http", "api database session now runs as role %s", k_api_reader_role);
            role_warned_ = false;
            return;
        }
        role_retry_after_ = std::chrono::steady_clock::now() + k_role_retry;
        if (PQstatus(conn_) != CONNECTION_OK || role_warned_) return;
        role_warned_ = true;
        const char* primary = r ? PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        std::string why = primary != nullptr ? primary : PQerrorMessage(conn_);
        trim_newline(why);
        SLUICE_WARN("http",
                    "api cannot switch to the read-only role %s (%s): serving anyway, with read-only "
                    "transactions as the database URL's user; the store's schema set-up creates the role "
                    "(its user needs CREATEROLE), see docs/http-api.md \"Database access\"",
                    k_api_reader_role, why.c_str());
    }

    std::string url_;
    std::string options_;
    PGconn* conn_ = nullptr;
    std::chrono::steady_clock::time_point retry_after_{};
    std::string last_error_;
    bool reader_role_ = false;  // this connection runs as k_api_reader_role
    bool role_warned_ = false;  // the fallback was logged (once, until the role works)
    std::chrono::steady_clock::time_point role_retry_after_{};
};

// Column text accessors: PQgetvalue of a NULL is "", so check PQgetisnull.
bool is_null(const pg_result& r, int row, int col) {
    return PQgetisnull(r.get(), row, col) != 0;
}
std::string_view text_at(const pg_result& r, int row, int col) {
    return {PQgetvalue(r.get(), row, col), static_cast<size_t>(PQgetlength(r.get(), row, col))};
}

void append_text_or_null(std::string& out, const pg_result& r, int row, int col) {
    if (is_null(r, row, col)) {
        out += "null";
    } else {
        append_json_string(out, text_at(r, row, col));
    }
}

// A numeric column as a JSON number: float8/int text from PostgreSQL, where "NaN" and
// "Infinity" (not JSON) become null.
void append_number_or_null(std::string& out, const pg_result& r, int row, int col) {
    if (is_null(r, row, col)) {
        out += "null";
        return;
    }
    std::string text(text_at(r, row, col));
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) {
        out += "null";
        return;
    }
    append_json_number(out, v);
}

std::string hex_decode(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(hex.size() / 2);
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        int hi = nibble(hex[i]);
        int lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) break;
        out.push_back(static_cast<char>((hi << 4) | lo));
    }
    return out;
}

// ISO 8601 UTC with milliseconds, e.g. 2026-11-22T00:30:00.123Z. SQL fragments only
// ever wrap constant column names.
#define SLUICE_ISO(expr) "to_char((" expr ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

response json_response(int status, std::string body) {
    response r;
    r.status = status;
    r.content_type = "application/json; charset=utf-8";
    r.body = std::move(body);
    r.body += '\n';
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

response error_response(std::error_code ec, std::string_view detail) {
    int status = 500;
    if (ec == api_errc::database_unavailable || ec == api_errc::query_timeout) status = 503;
    if (ec == api_errc::bad_request) status = 400;
    std::string body = "{\"error\":" + json_string(ec.message());
    if (!detail.empty()) body += ",\"detail\":" + json_string(detail);
    body += '}';
    return json_response(status, std::move(body));
}

response bad_request(std::string_view detail) {
    return error_response(api_errc::bad_request, detail);
}

// A query parameter; absent and empty are the same (nullopt).
param query_param(const request& req, const char* name) {
    auto it = req.query.find(name);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    return it->second;
}

// An integer parameter in [lo, hi], `def` when absent.
result<int> int_param(const request& req, const char* name, int def, int lo, int hi) {
    auto p = query_param(req, name);
    if (!p) return def;
    int v = 0;
    const std::string& text = *p;
    const char* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), last, v);
    if (ec != std::errc{} || ptr != last || v < lo || v > hi) return api_errc::bad_request;
    return v;
}

struct api_state {
    api_config cfg;
    db_session db;

    explicit api_state(api_config c) : cfg(std::move(c)), db(cfg.db_url, cfg.statement_timeout_ms) {}

    // The database's own message goes to the log, never to the client: it can name tables,
    // columns and values of other devices (issue 12).
    response db_error(std::error_code ec) {
        SLUICE_WARN("http", "query failed (%s): %s", ec.message().c_str(), db.last_error().c_str());
        return error_response(ec, {});
    }

    response overview() {
        std::string text = cfg.metrics_text ? cfg.metrics_text() : std::string();
        return json_response(200, overview_json(text, unix_ms()));
    }

    response devices(const request& req) {
        auto limit = int_param(req, "limit", 200, 1, 1000);
        if (!limit) return bad_request("limit must be an integer in 1..1000");
        // The last reading comes from the packed rows' own `last_off` of the last two
        // days (one index range per device), not from scanning readings.
        static const char* const sql =
            "SELECT d.id, d.key, d.name, d.site, d.line, " SLUICE_ISO("d.created_at") ", " SLUICE_ISO("l.last")
            " FROM sluice_app.devices d LEFT JOIN LATERAL ("
            " SELECT max(p.window_start + p.last_off * interval '1 microsecond') AS last"
            " FROM sluice_telemetry.telemetry_packed p"
            " WHERE p.device_id = d.id AND p.window_start > now() - interval '2 days') l ON true"
            " ORDER BY d.key LIMIT $1::int4";
        auto r = db.query(sql, {std::to_string(*limit)});
        if (!r) return db_error(r.error());
        std::string out = "{\"devices\":[";
        for (int i = 0; i < PQntuples(r->get()); ++i) {
            if (i) out += ',';
            out += "{\"id\":";
            out += text_at(*r, i, 0);
            out += ",\"key\":";
            append_text_or_null(out, *r, i, 1);
            out += ",\"name\":";
            append_text_or_null(out, *r, i, 2);
            out += ",\"site\":";
            append_text_or_null(out, *r, i, 3);
            out += ",\"line\":";
            append_text_or_null(out, *r, i, 4);
            out += ",\"created_at\":";
            append_text_or_null(out, *r, i, 5);
            out += ",\"last_reading\":";
            append_text_or_null(out, *r, i, 6);
            out += '}';
        }
        out += "]}";
        return json_response(200, std::move(out));
    }

    response metrics(const request& req) {
        auto device = query_param(req, "device");
        result<pg_result> r = api_errc::query_failed;
        if (device) {
            r = db.query(
                "SELECT m.id, m.name, m.unit FROM sluice_app.metrics m"
                " WHERE EXISTS (SELECT 1 FROM sluice_telemetry.telemetry_packed p"
                "  JOIN sluice_app.devices d ON d.id = p.device_id"
                "  WHERE d.key = $1 AND p.metric_id = m.id)"
                " ORDER BY m.name LIMIT 1000",
                {device});
        } else {
            r = db.query("SELECT id, name, unit FROM sluice_app.metrics ORDER BY name LIMIT 1000", {});
        }
        if (!r) return db_error(r.error());
        std::string out = "{\"metrics\":[";
        for (int i = 0; i < PQntuples(r->get()); ++i) {
            if (i) out += ',';
            out += "{\"id\":";
            out += text_at(*r, i, 0);
            out += ",\"name\":";
            append_text_or_null(out, *r, i, 1);
            out += ",\"unit\":";
            append_text_or_null(out, *r, i, 2);
            out += '}';
        }
        out += "]}";
        return json_response(200, std::move(out));
    }

    response telemetry(const request& req) {
        auto device = query_param(req, "device");
        auto metric = query_param(req, "metric");
        if (!device || !metric) return bad_request("device and metric are required");
        std::string resolution = query_param(req, "resolution").value_or("raw");
        if (resolution != "raw" && resolution != "1h" && resolution != "1d") {
            return bad_request("resolution must be raw, 1h or 1d");
        }
        auto limit = int_param(req, "limit", 10000, 1, 10000);
        if (!limit) return bad_request("limit must be an integer in 1..10000");

        // Resolve names to ids and the time range (default: the hour before `to`, and
        // `to` defaults to now). Invalid timestamps come back as SQLSTATE 22007/22008.
        auto ids = db.query(
            "SELECT (SELECT id FROM sluice_app.devices WHERE key = $1),"
            " (SELECT id FROM sluice_app.metrics WHERE name = $2),"
            " r.f::text, r.t::text, " SLUICE_ISO("r.f") ", " SLUICE_ISO("r.t")
            " FROM (SELECT coalesce($3::timestamptz, coalesce($4::timestamptz, now()) - interval '1 hour') AS f,"
            " coalesce($4::timestamptz, now()) AS t) r",
            {device, metric, query_param(req, "from"), query_param(req, "to")});
        if (!ids) {
            if (ids.error() == api_errc::bad_request) return bad_request("from and to must be ISO 8601 timestamps");
            return db_error(ids.error());
        }
        if (is_null(*ids, 0, 0))
            return json_response(404, "{\"error\":\"unknown device\",\"device\":" + json_string(*device) + "}");
        if (is_null(*ids, 0, 1))
            return json_response(404, "{\"error\":\"unknown metric\",\"metric\":" + json_string(*metric) + "}");
        std::vector<param> args{std::string(text_at(*ids, 0, 0)), std::string(text_at(*ids, 0, 1)),
                                std::string(text_at(*ids, 0, 2)), std::string(text_at(*ids, 0, 3)),
                                std::to_string(*limit + 1)};
        result<pg_result> r = api_errc::query_failed;
        if (resolution == "raw") {
            r = db.query("SELECT " SLUICE_ISO("time") ", value, flags"
                         " FROM sluice_telemetry.telemetry_range($1::int4, $2::int4, $3::timestamptz, $4::timestamptz)"
                         " LIMIT $5::int4",
                         args);
        } else if (resolution == "1h") {
            r = db.query("SELECT " SLUICE_ISO("bucket") ", avg, min, max, count FROM sluice_telemetry.telemetry_1h"
                         " WHERE device_id = $1::int4 AND metric_id = $2::int4"
                         " AND bucket >= date_bin('1 hour', $3::timestamptz, timestamptz '2000-01-01 00:00:00+00')"
                         " AND bucket < $4::timestamptz ORDER BY bucket LIMIT $5::int4",
                         args);
        } else {
            r = db.query("SELECT " SLUICE_ISO("bucket") ", avg, min, max, count FROM sluice_telemetry.telemetry_1d"
                         " WHERE device_id = $1::int4 AND metric_id = $2::int4"
                         " AND bucket >= date_bin('1 day', $3::timestamptz, timestamptz '2000-01-01 00:00:00+00')"
                         " AND bucket < $4::timestamptz ORDER BY bucket LIMIT $5::int4",
                         args);
        }
        if (!r) return db_error(r.error());
        int rows = PQntuples(r->get());
        bool truncated = rows > *limit;
        rows = std::min(rows, *limit);
        std::string out = "{\"device\":" + json_string(*device) + ",\"metric\":" + json_string(*metric) +
                          ",\"resolution\":" + json_string(resolution) + ",\"from\":";
        append_text_or_null(out, *ids, 0, 4);
        out += ",\"to\":";
        append_text_or_null(out, *ids, 0, 5);
        out += ",\"truncated\":";
        out += truncated ? "true" : "false";
        out += ",\"points\":[";
        out.reserve(out.size() + static_cast<size_t>(rows) * 64);
        for (int i = 0; i < rows; ++i) {
            if (i) out += ',';
            if (resolution == "raw") {
                out += "{\"time\":";
                append_text_or_null(out, *r, i, 0);
                out += ",\"value\":";
                append_number_or_null(out, *r, i, 1);
                out += ",\"flags\":";
                append_number_or_null(out, *r, i, 2);
            } else {
                out += "{\"bucket\":";
                append_text_or_null(out, *r, i, 0);
                out += ",\"avg\":";
                append_number_or_null(out, *r, i, 1);
                out += ",\"min\":";
                append_number_or_null(out, *r, i, 2);
                out += ",\"max\":";
                append_number_or_null(out, *r, i, 3);
                out += ",\"count\":";
                append_number_or_null(out, *r, i, 4);
            }
            out += '}';
        }
        out += "]}";
        return json_response(200, std::move(out));
    }

    response dead_letters(const request& req) {
        auto limit = int_param(req, "limit", 50, 1, 500);
        if (!limit) return bad_request("limit must be an integer in 1..500");
        constexpr int k_preview = 1024;
        auto r = db.query("SELECT " SLUICE_ISO("received_at") ", topic, client_id, reason, length(payload),"
                          " encode(substring(payload from 1 for 1024), 'hex')"
                          " FROM sluice_telemetry.dead_letters ORDER BY received_at DESC, id DESC LIMIT $1::int4",
                          {std::to_string(*limit)});
        if (!r) return db_error(r.error());
        std::string out = "{\"dead_letters\":[";
        for (int i = 0; i < PQntuples(r->get()); ++i) {
            if (i) out += ',';
            out += "{\"received_at\":";
            append_text_or_null(out, *r, i, 0);
            out += ",\"topic\":";
            append_text_or_null(out, *r, i, 1);
            out += ",\"client_id\":";
            append_text_or_null(out, *r, i, 2);
            out += ",\"reason\":";
            append_text_or_null(out, *r, i, 3);
            out += ",\"payload_bytes\":";
            append_number_or_null(out, *r, i, 4);
            std::string payload = hex_decode(text_at(*r, i, 5));
            long total = std::strtol(std::string(text_at(*r, i, 4)).c_str(), nullptr, 10);
            out += ",\"payload_truncated\":";
            out += total > k_preview ? "true" : "false";
            out += ",\"payload_text\":";
            // A cut may split a UTF-8 sequence: drop up to 3 trailing bytes until valid.
            std::string_view text = payload;
            bool printable = false;
            for (int cut = 0; cut <= (total > k_preview ? 3 : 0) && !printable; ++cut) {
                if (static_cast<size_t>(cut) > payload.size()) break;
                text = std::string_view(payload).substr(0, payload.size() - static_cast<size_t>(cut));
                printable = is_printable_utf8(text);
            }
            if (printable) {
                append_json_string(out, text);
            } else {
                out += "null";
            }
            out += ",\"payload_base64\":";
            append_json_string(out, base64_encode(payload));
            out += '}';
        }
        out += "]}";
        return json_response(200, std::move(out));
    }

    response static_file(std::string_view relative) {
        auto path = static_file_path(cfg.web_root, relative);
        if (!path) return response{404, "text/plain; charset=utf-8", "not found\n", {}};
        int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return response{404, "text/plain; charset=utf-8", "not found\n", {}};
        struct stat st {};
        constexpr off_t k_max_size = 8 << 20;
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > k_max_size) {
            ::close(fd);
            return response{404, "text/plain; charset=utf-8", "not found\n", {}};
        }
        std::string body(static_cast<size_t>(st.st_size), '\0');
        size_t got = 0;
        while (got < body.size()) {
            ssize_t n = ::read(fd, body.data() + got, body.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        ::close(fd);
        body.resize(got);
        response res{200, std::string(content_type_for(*path)), std::move(body), {}};
        res.headers.emplace_back("Cache-Control", "no-cache");
        res.headers.emplace_back("X-Content-Type-Options", "nosniff");
        return res;
    }
};

#undef SLUICE_ISO

}  // namespace

api_probe probe_api_session(const std::string& db_url, const std::vector<std::string>& statements) {
    db_session session(db_url, api_config{}.statement_timeout_ms);
    return session.probe(statements);
}

void register_api(server& s, api_config cfg) {
    auto state = std::make_shared<api_state>(std::move(cfg));
    s.route("GET", "/api/overview", [state](const request&) { return state->overview(); });
    s.route("GET", "/api/devices", [state](const request& r) { return state->devices(r); });
    s.route("GET", "/api/metrics", [state](const request& r) { return state->metrics(r); });
    s.route("GET", "/api/telemetry", [state](const request& r) { return state->telemetry(r); });
    s.route("GET", "/api/dead-letters", [state](const request& r) { return state->dead_letters(r); });
    if (!state->cfg.web_root.empty()) {
        s.route("GET", "/", [state](const request&) { return state->static_file("index.html"); });
        s.route("GET", "/static/*", [state](const request& r) {
            return state->static_file(std::string_view(r.path).substr(std::string_view("/static/").size()));
        });
    }
}

}  // namespace sluice::http
