// SPDX-License-Identifier: Apache-2.0
//
// A thin libpq wrapper for the store: one connection that connects lazily, maps
// every failure to a store::errc that keeps its kind (SQLSTATE class, or a broken
// connection), and forgets a broken connection so that the next call reconnects.
// Internal to the store module; not thread-safe (the pool gives each caller its own).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "store/copy_format.h"
#include "store/errc.h"

struct pg_conn;
struct pg_result;

namespace sluice::store::pg {

// Owns one PGresult.
class query_result {
public:
    query_result() = default;
    explicit query_result(::pg_result* r) : res_(r) {}
    query_result(query_result&& other) noexcept : res_(other.res_) { other.res_ = nullptr; }
    query_result& operator=(query_result&& other) noexcept;
    query_result(const query_result&) = delete;
    query_result& operator=(const query_result&) = delete;
    ~query_result();

    int rows() const;
    int columns() const;
    bool is_null(int row, int col) const;
    std::string_view get(int row, int col) const;  // text format value
    std::optional<std::string> get_opt(int row, int col) const;

private:
    ::pg_result* res_ = nullptr;
};

// A parameter of a query: text representation, or NULL.
using param = std::optional<std::string>;

class connection {
public:
    // `startup_options` (libpq "options", e.g. "-c statement_timeout=5000") win over any the
    // URL sets. `on_connect` runs after every new connection is up (session state such as
    // SET ROLE, which a reconnect loses); it may run statements on the connection.
    connection(std::string url, std::chrono::seconds connect_timeout, std::string application_name,
               std::string startup_options = {}, std::function<void(connection&)> on_connect = {});
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Connects if not connected; sets TimeZone UTC. Returns connection_failed.
    result<void> ensure();
    bool connected() const { return conn_ != nullptr; }
    // Drops the connection (the next ensure() reconnects).
    void reset();
    // Backend process id of the current connection, 0 if none.
    int backend_pid() const;

    // Runs one or more statements without parameters; result rows are discarded.
    result<void> exec(const char* sql);
    // Runs one statement with text parameters.
    result<query_result> query(const char* sql, std::initializer_list<param> params = {});
    // SQLSTATE of the last failed exec() or query() ("" when it succeeded or had none).
    const std::string& last_sqlstate() const { return last_sqlstate_; }

    // COPY ... FROM STDIN: begin_copy, then put() any number of times, then end_copy().
    result<void> begin_copy(const char* sql);
    result<void> put(copy_encoder& enc);  // sends and clears the encoder's buffer
    result<void> end_copy();

    // After a failure inside a transaction: ROLLBACK if the connection is still good,
    // otherwise reset. Never fails.
    void abort_transaction();

private:
    std::error_code fail(::pg_result* res, const char* what);
    std::error_code fail_connection(const char* what);

    std::string url_;
    std::chrono::seconds connect_timeout_;
    std::string application_name_;
    std::string startup_options_;
    std::function<void(connection&)> on_connect_;
    ::pg_conn* conn_ = nullptr;
    std::string last_sqlstate_;
};

}  // namespace sluice::store::pg
