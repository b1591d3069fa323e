// SPDX-License-Identifier: Apache-2.0
//
// telemetry_query (store/query.h) over one PostgreSQL session: the only place that
// knows which tables, views and functions answer the HTTP API's questions. Every query
// is a constant SQL text with parameters: user input never becomes SQL. The SQL is the
// same on both layouts (native partitions, TimescaleDB), whose differences the schema's
// views and functions hide (store/schema.cc, docs/storage.md).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "store/pg.h"
#include "store/query.h"
#include "store/schema.h"

namespace sluice::store {
namespace {

// The session: connected on first use, replaced when a query finds it broken (the read
// is retried once), with a back-off after a failed connect so that a down database costs
// one connect per couple of seconds rather than one per request.
//
// It cannot write, whatever SQL it is given, at the database's level:
// default_transaction_read_only is on from the start-up packet (every statement runs in
// a read-only transaction), and each new connection switches to the NOLOGIN role
// schema::k_reader_role, which may only SELECT. When that role is missing or not granted
// (database not migrated yet, user without CREATEROLE), the session warns once and serves
// anyway, read-only transactions being the only guard, and tries again on every new
// connection and every k_role_retry on the current one. docs/http-api.md, "Database access".
class reader_session {
public:
    explicit reader_session(const query_options& o)
        : configured_(!o.url.empty()),
          conn_(o.url, k_connect_timeout, "sluice-http-api",
                "-c statement_timeout=" + std::to_string(o.statement_timeout.count()) +
                    " -c TimeZone=UTC -c default_transaction_read_only=on",
                [this](pg::connection&) {
                    reader_role_ = false;
                    set_reader_role();
                }) {}
    reader_session(const reader_session&) = delete;
    reader_session& operator=(const reader_session&) = delete;

    // Runs `sql` (constant text) with text parameters; see store/query.h for the errors.
    result<pg::query_result> query(const char* sql, std::initializer_list<pg::param> params) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (auto c = connect(); !c) return c.error();
            auto r = conn_.query(sql, params);
            // connection_failed: the connection dropped itself; a read is safe to repeat.
            if (r || r.error() != errc::connection_failed) return r;
        }
        return errc::connection_failed;
    }

    query_probe probe(const std::vector<std::string>& statements) {
        query_probe out;
        if (!connect()) return out;
        out.connected = true;
        out.reader_role = reader_role_;
        for (const auto& sql : statements) {
            query_probe_step step;
            auto r = conn_.query(sql.c_str());
            if (!r) {
                step.sqlstate = conn_.last_sqlstate().empty() ? "?????" : conn_.last_sqlstate();
            } else if (r->rows() > 0 && r->columns() > 0) {
                step.value = r->get(0, 0);
            }
            out.steps.push_back(std::move(step));
        }
        return out;
    }

private:
    static constexpr std::chrono::seconds k_connect_timeout{2};
    static constexpr std::chrono::seconds k_connect_retry{2};
    static constexpr std::chrono::seconds k_role_retry{30};

    result<void> connect() {
        if (!configured_) return errc::connection_failed;
        const auto now = std::chrono::steady_clock::now();
        if (!conn_.connected() && now < retry_after_) return errc::connection_failed;
        if (!conn_.ensure()) {
            retry_after_ = now + k_connect_retry;
            return errc::connection_failed;
        }
        if (!reader_role_ && now >= role_retry_after_) set_reader_role();
        return ok();
    }

    // SET ROLE k_reader_role on the current connection, asked first whether it can work so
    // that a missing role costs no failed statement (and no log line) per retry. Not in a
    // transaction: a failure leaves the session as it was (its user, read-only transactions).
    void set_reader_role() {
        static const std::string set_role = std::string("SET ROLE ") + schema::k_reader_role;
        auto why = conn_.query(
            "SELECT CASE WHEN r.oid IS NULL THEN 'role \"' || $1::text || '\" does not exist'"
            " WHEN NOT pg_has_role(session_user, r.oid, 'MEMBER')"
            " THEN 'permission denied to set role \"' || $1::text || '\"' END"
            " FROM (VALUES (1)) v LEFT JOIN pg_roles r ON r.rolname = $1::text",
            {std::string(schema::k_reader_role)});
        if (why && why->is_null(0, 0) && conn_.exec(set_role.c_str())) {
            reader_role_ = true;
            if (role_warned_) SLUICE_INFO("store", "api database session now runs as role %s", schema::k_reader_role);
            role_warned_ = false;
            return;
        }
        role_retry_after_ = std::chrono::steady_clock::now() + k_role_retry;
        if (!conn_.connected() || role_warned_) return;
        role_warned_ = true;
        std::string reason = !why                 ? why.error().message()
                             : why->is_null(0, 0) ? std::string("SET ROLE failed")
                                                  : std::string(why->get(0, 0));
        SLUICE_WARN("store",
                    "api cannot switch to the read-only role %s (%s): serving anyway, with read-only "
                    "transactions as the database URL's user; the store's schema set-up creates the role "
                    "(its user needs CREATEROLE), see docs/http-api.md \"Database access\"",
                    schema::k_reader_role, reason.c_str());
    }

    bool configured_;
    pg::connection conn_;
    std::chrono::steady_clock::time_point retry_after_{};
    bool reader_role_ = false;  // this connection runs as k_reader_role
    bool role_warned_ = false;  // the fallback was logged (once, until the role works)
    std::chrono::steady_clock::time_point role_retry_after_{};
};

// A float8/int column; NULL and what strtod cannot read become NaN ("NaN", "Infinity" it reads).
double number_at(const pg::query_result& q, int row, int col) {
    if (q.is_null(row, col)) return std::numeric_limits<double>::quiet_NaN();
    std::string text(q.get(row, col));
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) return std::numeric_limits<double>::quiet_NaN();
    return v;
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

// The buckets of one series from a rollup view ($1 device, $2 metric, [$3, $4), at most $5
// rows), from the bucket holding $3.
#define SLUICE_ROLLUP(view, width)                                                             \
    "SELECT " SLUICE_ISO("bucket") ", avg, min, max, count FROM sluice_telemetry." view        \
                                   " WHERE device_id = $1::int4 AND metric_id = $2::int4"      \
                                   " AND bucket >= date_bin('" width                           \
                                   "', $3::timestamptz, timestamptz '2000-01-01 00:00:00+00')" \
                                   " AND bucket < $4::timestamptz ORDER BY bucket LIMIT $5::int4"

class pg_query final : public telemetry_query {
public:
    explicit pg_query(const query_options& o) : session_(o) {}

    result<std::vector<device_info>> devices(int limit) override {
        // The last reading comes from the packed rows' own `last_off` of the last two
        // days (one index range per device), not from scanning readings.
        auto q = session_.query(
            "SELECT d.id, d.key, d.name, d.site, d.line, " SLUICE_ISO("d.created_at") ", " SLUICE_ISO("l.last")
            " FROM sluice_app.devices d LEFT JOIN LATERAL ("
            " SELECT max(p.window_start + p.last_off * interval '1 microsecond') AS last"
            " FROM sluice_telemetry.telemetry_packed p"
            " WHERE p.device_id = d.id AND p.window_start > now() - interval '2 days') l ON true"
            " ORDER BY d.key LIMIT $1::int4",
            {std::to_string(limit)});
        if (!q) return q.error();
        std::vector<device_info> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i) {
            out.push_back(device_info{static_cast<int32_t>(std::stol(std::string(q->get(i, 0)))),
                                      std::string(q->get(i, 1)), std::string(q->get(i, 2)), std::string(q->get(i, 3)),
                                      std::string(q->get(i, 4)), q->get_opt(i, 5), q->get_opt(i, 6)});
        }
        return out;
    }

    result<std::vector<metric_info>> metrics(std::optional<std::string_view> device_key) override {
        auto q = device_key
                     ? session_.query(
                           "SELECT m.id, m.name, m.unit FROM sluice_app.metrics m"
                           " WHERE EXISTS (SELECT 1 FROM sluice_telemetry.telemetry_packed p"
                           "  JOIN sluice_app.devices d ON d.id = p.device_id"
                           "  WHERE d.key = $1 AND p.metric_id = m.id)"
                           " ORDER BY m.name LIMIT 1000",
                           {std::string(*device_key)})
                     : session_.query("SELECT id, name, unit FROM sluice_app.metrics ORDER BY name LIMIT 1000", {});
        if (!q) return q.error();
        std::vector<metric_info> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i) {
            out.push_back(metric_info{static_cast<int32_t>(std::stol(std::string(q->get(i, 0)))),
                                      std::string(q->get(i, 1)), std::string(q->get(i, 2))});
        }
        return out;
    }

    result<series> read_series(const series_request& req) override {
        // Names to ids and the time range (default: the hour before `to`, and `to` defaults
        // to now). Invalid timestamps come back as SQLSTATE class 22 (invalid_data).
        auto ids = session_.query(
            "SELECT (SELECT id FROM sluice_app.devices WHERE key = $1),"
            " (SELECT id FROM sluice_app.metrics WHERE name = $2),"
            " r.f::text, r.t::text, " SLUICE_ISO("r.f") ", " SLUICE_ISO("r.t")
            " FROM (SELECT coalesce($3::timestamptz, coalesce($4::timestamptz, now()) - interval '1 hour') AS f,"
            " coalesce($4::timestamptz, now()) AS t) r",
            {req.device_key, req.metric_name, req.from, req.to});
        if (!ids) return ids.error() == errc::invalid_data ? make_error_code(errc::invalid_argument) : ids.error();
        series out;
        if (ids->is_null(0, 0)) {
            out.status = series::lookup::unknown_device;
            return out;
        }
        if (ids->is_null(0, 1)) {
            out.status = series::lookup::unknown_metric;
            return out;
        }
        out.from = ids->get_opt(0, 4);
        out.to = ids->get_opt(0, 5);
        const std::string device(ids->get(0, 0));
        const std::string metric(ids->get(0, 1));
        const std::string from(ids->get(0, 2));
        const std::string to(ids->get(0, 3));
        const std::string limit = std::to_string(req.limit + 1);  // one more tells truncation
        result<pg::query_result> q = errc::query_failed;
        switch (req.resolution) {
            case series_resolution::raw:
                q = session_.query("SELECT " SLUICE_ISO("time") ", value, flags FROM sluice_telemetry.telemetry_range("
                                   "$1::int4, $2::int4, $3::timestamptz, $4::timestamptz) LIMIT $5::int4",
                                   {device, metric, from, to, limit});
                break;
            case series_resolution::hour:
                q = session_.query(SLUICE_ROLLUP("telemetry_1h", "1 hour"), {device, metric, from, to, limit});
                break;
            case series_resolution::day:
                q = session_.query(SLUICE_ROLLUP("telemetry_1d", "1 day"), {device, metric, from, to, limit});
                break;
        }
        if (!q) return q.error();
        const int rows = std::min(q->rows(), req.limit);
        out.truncated = q->rows() > req.limit;
        for (int i = 0; i < rows; ++i) {
            std::string time(q->get(i, 0));
            if (req.resolution == series_resolution::raw) {
                out.readings.push_back(
                    reading_point{std::move(time), number_at(*q, i, 1), std::stoi(std::string(q->get(i, 2)))});
            } else {
                out.buckets.push_back(rollup_point{std::move(time), number_at(*q, i, 1), number_at(*q, i, 2),
                                                   number_at(*q, i, 3),
                                                   static_cast<int64_t>(std::stoll(std::string(q->get(i, 4))))});
            }
        }
        return out;
    }

    result<std::vector<dead_letter_info>> dead_letters(int limit, int preview_bytes) override {
        auto q = session_.query("SELECT " SLUICE_ISO("received_at") ", topic, client_id, reason, length(payload),"
                                " encode(substring(payload from 1 for $2::int4), 'hex')"
                                " FROM sluice_telemetry.dead_letters ORDER BY received_at DESC, id DESC LIMIT $1::int4",
                                {std::to_string(limit), std::to_string(preview_bytes)});
        if (!q) return q.error();
        std::vector<dead_letter_info> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i) {
            out.push_back(dead_letter_info{q->get_opt(i, 0), std::string(q->get(i, 1)), std::string(q->get(i, 2)),
                                           std::string(q->get(i, 3)), std::stoll(std::string(q->get(i, 4))),
                                           hex_decode(q->get(i, 5))});
        }
        return out;
    }

    result<std::vector<stored_offset>> offsets(std::string_view consumer) override {
        auto q = session_.query(
            "SELECT partition, next_offset, " SLUICE_ISO(
                "updated_at") " FROM sluice_telemetry.sluice_offsets WHERE consumer = $1 ORDER BY partition",
            {std::string(consumer)});
        if (!q) return q.error();
        std::vector<stored_offset> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i) {
            out.push_back(stored_offset{static_cast<int32_t>(std::stol(std::string(q->get(i, 0)))),
                                        std::stoll(std::string(q->get(i, 1))), q->get_opt(i, 2)});
        }
        return out;
    }

private:
    reader_session session_;
};

#undef SLUICE_ROLLUP
#undef SLUICE_ISO

}  // namespace

std::unique_ptr<telemetry_query> open_postgres_query(const query_options& options) {
    return std::make_unique<pg_query>(options);
}

query_probe probe_postgres_query(const std::string& url, const std::vector<std::string>& statements) {
    reader_session session(query_options{url});
    return session.probe(statements);
}

}  // namespace sluice::store
