// SPDX-License-Identifier: Apache-2.0
//
// libpq wrapper for the store; see store/pg.h. Error classification lives here so
// that every statement the store runs reports failures the same way.
#include "store/pg.h"

#include <cstring>
#include <vector>

#include <libpq-fe.h>

#include "base/log.h"

namespace sluice::store::pg {
namespace {

errc classify_sqlstate(const char* state) {
    if (state == nullptr || std::strlen(state) != 5) return errc::query_failed;
    const std::string_view s(state, 5);
    const std::string_view cls = s.substr(0, 2);
    if (cls == "08") return errc::connection_failed;                                   // connection exception
    if (s == "57P01" || s == "57P02" || s == "57P03") return errc::connection_failed;  // shutdown
    if (cls == "23") return errc::constraint_violation;
    if (cls == "22") return errc::invalid_data;
    if (cls == "40") return errc::conflict;            // serialization failure, deadlock
    if (cls == "53") return errc::resource_exhausted;  // disk full, out of memory, too many conns
    if (s == "57014") return errc::timeout;            // statement_timeout (or a cancel request)
    if (s == "42P01" || s == "3F000" || s == "42883") return errc::schema_missing;  // no table/schema/function
    return errc::query_failed;
}

}  // namespace

query_result& query_result::operator=(query_result&& other) noexcept {
    if (this != &other) {
        if (res_ != nullptr) PQclear(res_);
        res_ = other.res_;
        other.res_ = nullptr;
    }
    return *this;
}

query_result::~query_result() {
    if (res_ != nullptr) PQclear(res_);
}

int query_result::rows() const {
    return res_ == nullptr ? 0 : PQntuples(res_);
}

int query_result::columns() const {
    return res_ == nullptr ? 0 : PQnfields(res_);
}

bool query_result::is_null(int row, int col) const {
    return PQgetisnull(res_, row, col) != 0;
}

std::string_view query_result::get(int row, int col) const {
    return {PQgetvalue(res_, row, col), static_cast<size_t>(PQgetlength(res_, row, col))};
}

std::optional<std::string> query_result::get_opt(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return std::string(get(row, col));
}

connection::connection(std::string url, std::chrono::seconds connect_timeout, std::string application_name,
                       std::string startup_options, std::function<void(connection&)> on_connect)
    : url_(std::move(url)),
      connect_timeout_(connect_timeout),
      application_name_(std::move(application_name)),
      startup_options_(std::move(startup_options)),
      on_connect_(std::move(on_connect)) {}

connection::~connection() {
    reset();
}

void connection::reset() {
    if (conn_ != nullptr) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
}

int connection::backend_pid() const {
    return conn_ == nullptr ? 0 : PQbackendPID(conn_);
}

result<void> connection::ensure() {
    if (conn_ != nullptr) {
        if (PQstatus(conn_) == CONNECTION_OK) return ok();
        reset();
    }
    // Defaults first: keywords that the URL (expanded from dbname) sets override them; the
    // startup options come after it, so the URL cannot undo them (libpq skips an empty value).
    const std::string timeout = std::to_string(connect_timeout_.count());
    // TCP keepalives and tcp_user_timeout turn a silently dead server into an error
    // within about a minute instead of a hang (ignored on unix sockets).
    const char* keys[] = {
        "connect_timeout",  "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",     "options",         nullptr};
    const char* values[] = {timeout.c_str(), application_name_.c_str(), "1",    "30", "10", "3", "60000",
                            url_.c_str(),    startup_options_.c_str(),  nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (conn_ == nullptr) return errc::resource_exhausted;
    if (PQstatus(conn_) != CONNECTION_OK) {
        SLUICE_WARN("store", "connect failed: %s", PQerrorMessage(conn_));
        reset();
        return errc::connection_failed;
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    // Partition bounds and rollup buckets are UTC days and hours whatever the server's TimeZone.
    if (auto tz = exec("SET TimeZone = 'UTC'"); !tz) return tz;
    if (on_connect_) on_connect_(*this);
    return ok();
}

std::error_code connection::fail_connection(const char* what) {
    SLUICE_WARN("store", "%s: connection lost: %s", what, conn_ != nullptr ? PQerrorMessage(conn_) : "");
    reset();
    return errc::connection_failed;
}

std::error_code connection::fail(PGresult* res, const char* what) {
    const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    last_sqlstate_ = state != nullptr ? state : "";
    errc e = classify_sqlstate(state);
    const bool broken = conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD;
    if (broken) e = errc::connection_failed;
    if (e == errc::connection_failed) {
        SLUICE_WARN("store", "%s: connection failed (%s): %s", what, state != nullptr ? state : "-",
                    conn_ != nullptr ? PQerrorMessage(conn_) : "");
        if (res != nullptr) PQclear(res);
        reset();
        return e;
    }
    SLUICE_WARN("store", "%s failed (%s): %s", what, state != nullptr ? state : "-",
                res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_));
    if (res != nullptr) PQclear(res);
    return e;
}

result<void> connection::exec(const char* sql) {
    last_sqlstate_.clear();
    if (conn_ == nullptr) return errc::connection_failed;
    PGresult* res = PQexec(conn_, sql);
    const ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return fail(res, "exec");
    PQclear(res);
    return ok();
}

result<query_result> connection::query(const char* sql, std::initializer_list<param> params) {
    last_sqlstate_.clear();
    if (conn_ == nullptr) return errc::connection_failed;
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const param& p : params)
        values.push_back(p ? p->c_str() : nullptr);
    PGresult* res =
        PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0);
    const ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return fail(res, "query");
    return query_result(res);
}

result<void> connection::begin_copy(const char* sql) {
    if (conn_ == nullptr) return errc::connection_failed;
    PGresult* res = PQexec(conn_, sql);
    if (res == nullptr || PQresultStatus(res) != PGRES_COPY_IN) return fail(res, "copy");
    PQclear(res);
    return ok();
}

result<void> connection::put(copy_encoder& enc) {
    if (conn_ == nullptr) return errc::connection_failed;
    if (enc.size() == 0) return ok();
    const int rc = PQputCopyData(conn_, enc.data().data(), static_cast<int>(enc.size()));
    enc.clear();
    // rc == -1: the connection is gone. The server reports data errors at end_copy().
    if (rc != 1) return fail_connection("copy data");
    return ok();
}

result<void> connection::end_copy() {
    if (conn_ == nullptr) return errc::connection_failed;
    if (PQputCopyEnd(conn_, nullptr) != 1) return fail_connection("copy end");
    PGresult* res = PQgetResult(conn_);
    if (res == nullptr || PQresultStatus(res) != PGRES_COMMAND_OK) {
        std::error_code ec = fail(res, "copy");
        // Drain whatever else the server sent for this command.
        if (conn_ != nullptr) {
            while (PGresult* extra = PQgetResult(conn_))
                PQclear(extra);
        }
        return ec;
    }
    PQclear(res);
    while (PGresult* extra = PQgetResult(conn_))
        PQclear(extra);
    return ok();
}

void connection::abort_transaction() {
    if (conn_ == nullptr) return;
    if (PQstatus(conn_) != CONNECTION_OK) {
        reset();
        return;
    }
    PGresult* res = PQexec(conn_, "ROLLBACK");
    const bool good = res != nullptr && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (res != nullptr) PQclear(res);
    if (!good) reset();
}

}  // namespace sluice::store::pg
