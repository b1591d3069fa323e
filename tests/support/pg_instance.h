// SPDX-License-Identifier: Apache-2.0
//
// A private PostgreSQL server for tests and benchmarks: initdb into a fresh temp
// directory, start on a unix socket inside it, stop and delete it in the destructor
// (also when the test fails). PostgreSQL refuses to run as root, so as root the
// server runs as the system user `postgres` (setpriv). Any module's test links
// sluice_test_pg. Startup takes about a second (initdb --no-sync, trust auth).
// The server's TimeZone is UTC, so date_trunc() and text timestamps in assertions
// do not depend on the machine's zone.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sluice::test {

struct pg_instance_options {
    std::string bin_dir = "/usr/lib/postgresql/15/bin";
    int port = 5432;  // only names the socket file; nothing listens on TCP
    std::string shared_buffers = "128MB";
    bool fsync = true;
    // Preload Sluice's planner module (sluice_readings.so from this build, which prunes
    // time predicates on the readings views) and TimescaleDB. timescale = true needs
    // TimescaleDB installed: see timescale_installed().
    bool readings_module = true;
    bool timescale = false;
};

// True when TimescaleDB's library is installed for this PostgreSQL (scripts/install-timescaledb).
bool timescale_installed(const std::string& bin_dir = "/usr/lib/postgresql/15/bin");
// Why TimescaleDB tests are skipped on this machine ("" when it is installed).
std::string timescale_skip_reason();

class pg_instance {
public:
    // Creates the directory, runs initdb, starts the server. Errors are std::errc values.
    static result<std::unique_ptr<pg_instance>> start(const pg_instance_options& options = {});
    ~pg_instance();  // stops the server (immediate) and removes the directory
    pg_instance(const pg_instance&) = delete;
    pg_instance& operator=(const pg_instance&) = delete;

    // libpq key=value connection string for `database` (default: postgres).
    std::string url(std::string_view database = "postgres") const;
    // Creates a fresh empty database and returns its connection string. Names must be
    // [a-z0-9_]; a unique suffix is appended so repeated names do not collide.
    result<std::string> create_database(std::string_view name);

    // Runs `sql` on `conninfo` and returns the rows as text (NULL reads as "<null>").
    // For assertions in tests; not for production code.
    static result<std::vector<std::vector<std::string>>> query(const std::string& conninfo, const std::string& sql);
    // The first column of the first row of query(), or an error when there is no row.
    static result<std::string> scalar(const std::string& conninfo, const std::string& sql);

    result<void> stop();     // pg_ctl stop -m fast (committed data survives)
    result<void> restart();  // start after stop()
    bool running() const { return running_; }
    const std::string& dir() const { return dir_; }

private:
    explicit pg_instance(pg_instance_options options) : options_(std::move(options)) {}
    result<void> start_server();

    // Server runs as a child of this process (PR_SET_PDEATHSIG: it dies with us).

    pg_instance_options options_;
    std::string dir_;
    int pid_ = -1;
    bool running_ = false;
    int databases_ = 0;
};

}  // namespace sluice::test
