// SPDX-License-Identifier: Apache-2.0
//
// Private PostgreSQL for tests; see tests/support/pg_instance.h. The server is
// forked and exec'ed directly (no pg_ctl daemon), after dropping to the `postgres`
// user when we are root, with a parent-death signal so that a test killed by its
// timeout does not leave a server behind.
#include "tests/support/pg_instance.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include <libpq-fe.h>

namespace sluice::test {
namespace {

std::error_code errno_code() {
    return {errno, std::generic_category()};
}

struct server_user {
    bool drop = false;
    uid_t uid = 0;
    gid_t gid = 0;
};

server_user lookup_user() {
    server_user u;
    if (geteuid() != 0) return u;
    if (const passwd* pw = getpwnam("postgres")) {
        u.drop = true;
        u.uid = pw->pw_uid;
        u.gid = pw->pw_gid;
    }
    return u;
}

// Forks and execs argv with stdout/stderr appended to `log`, as the server user.
// REQUIRES: argv non-empty. Returns the child pid or -1.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log, const server_user& user,
            bool die_with_parent) {
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid != 0) return pid;
    // Child: only async-signal-safe calls until exec.
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    if (user.drop) {
        if (setgroups(0, nullptr) != 0 || setgid(user.gid) != 0 || setuid(user.uid) != 0) _exit(126);
    }
    if (die_with_parent) {
        prctl(PR_SET_PDEATHSIG, SIGQUIT);  // after setuid: a credential change clears it
        if (getppid() != parent) _exit(125);
    }
    execv(args[0], args.data());
    _exit(127);
}

result<void> run_to_completion(const std::vector<std::string>& argv, const std::string& log, const server_user& user) {
    const pid_t pid = spawn(argv, log, user, false);
    if (pid < 0) return errno_code();
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return errno_code();
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "pg_instance: %s failed (status %d), see %s\n", argv[0].c_str(), status, log.c_str());
        return std::make_error_code(std::errc::io_error);
    }
    return ok();
}

}  // namespace

result<std::unique_ptr<pg_instance>> pg_instance::start(const pg_instance_options& options) {
    std::unique_ptr<pg_instance> inst(new pg_instance(options));
    char tmpl[] = "/tmp/sluice-pg-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return errno_code();
    inst->dir_ = tmpl;
    const server_user user = lookup_user();
    if (user.drop && chown(tmpl, user.uid, user.gid) != 0) return errno_code();

    const std::string data = inst->dir_ + "/data";
    auto r = run_to_completion({options.bin_dir + "/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                "--locale=C", "--no-sync", "--no-instructions"},
                               inst->dir_ + "/initdb.log", user);
    if (!r) return r.error();
    if (auto s = inst->start_server(); !s) return s.error();
    return inst;
}

result<void> pg_instance::start_server() {
    if (running_) return ok();
    const server_user user = lookup_user();
    std::string preload;
#ifdef SLUICE_READINGS_MODULE
    if (options_.readings_module) {
        // A copy inside our directory: the build tree may not be readable by the server
        // user (a checkout under a private home).
        preload = dir_ + "/sluice_readings.so";
        std::error_code ec;
        std::filesystem::copy_file(SLUICE_READINGS_MODULE, preload, std::filesystem::copy_options::overwrite_existing,
                                   ec);
        if (ec) return ec;
    }
#endif
    if (options_.timescale) preload = preload.empty() ? "timescaledb" : "timescaledb," + preload;
    std::vector<std::string> argv = {options_.bin_dir + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-p",
                                     std::to_string(options_.port), "-c", "listen_addresses=", "-c",
                                     std::string("fsync=") + (options_.fsync ? "on" : "off"), "-c",
                                     "shared_buffers=" + options_.shared_buffers, "-c", "max_connections=60", "-c",
                                     "max_wal_size=2GB", "-c", "logging_collector=off",
                                     // Deterministic date_trunc()/text output in assertions.
                                     "-c", "TimeZone=UTC", "-c", "log_timezone=UTC"};
    if (!preload.empty()) {
        argv.push_back("-c");
        argv.push_back("shared_preload_libraries=" + preload);
    }
    if (options_.timescale) {
        argv.push_back("-c");
        argv.push_back("timescaledb.telemetry_level=off");
    }
    pid_ = spawn(argv, dir_ + "/postgres.log", user, true);
    if (pid_ < 0) return errno_code();
    const std::string conninfo = url("postgres");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
        if (PQping(conninfo.c_str()) == PQPING_OK) {
            running_ = true;
            return ok();
        }
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            std::fprintf(stderr, "pg_instance: postgres exited, see %s/postgres.log\n", dir_.c_str());
            pid_ = -1;
            return std::make_error_code(std::errc::io_error);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::make_error_code(std::errc::timed_out);
}

result<void> pg_instance::stop() {
    if (!running_ || pid_ < 0) return ok();
    kill(pid_, SIGINT);  // fast shutdown: roll back open transactions, checkpoint, exit
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0) {
        if (errno != EINTR) return errno_code();
    }
    pid_ = -1;
    running_ = false;
    return ok();
}

result<void> pg_instance::restart() {
    return start_server();
}

pg_instance::~pg_instance() {
    if (pid_ > 0) {
        kill(pid_, SIGQUIT);  // immediate shutdown; the directory goes away anyway
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    if (!dir_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

std::string pg_instance::url(std::string_view database) const {
    return "host=" + dir_ + " port=" + std::to_string(options_.port) + " user=postgres dbname=" + std::string(database);
}

result<std::string> pg_instance::create_database(std::string_view name) {
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return std::make_error_code(std::errc::invalid_argument);
        }
    }
    const std::string db = std::string(name) + "_" + std::to_string(++databases_);
    PGconn* conn = PQconnectdb(url("postgres").c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
        std::fprintf(stderr, "pg_instance: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return std::make_error_code(std::errc::connection_refused);
    }
    const std::string sql = "CREATE DATABASE " + db;
    PGresult* res = PQexec(conn, sql.c_str());
    const bool good = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!good) std::fprintf(stderr, "pg_instance: %s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
    if (!good) return std::make_error_code(std::errc::io_error);
    return url(db);
}

result<std::vector<std::vector<std::string>>> pg_instance::query(const std::string& conninfo, const std::string& sql) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
        std::fprintf(stderr, "pg_instance: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return std::make_error_code(std::errc::connection_refused);
    }
    PGresult* res = PQexec(conn, sql.c_str());
    const ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        std::fprintf(stderr, "pg_instance: query failed: %s\n%s\n", PQresultErrorMessage(res), sql.c_str());
        PQclear(res);
        PQfinish(conn);
        return std::make_error_code(std::errc::io_error);
    }
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < PQntuples(res); ++i) {
        auto& r = rows.emplace_back();
        for (int j = 0; j < PQnfields(res); ++j) {
            r.emplace_back(PQgetisnull(res, i, j) ? "<null>" : PQgetvalue(res, i, j));
        }
    }
    PQclear(res);
    PQfinish(conn);
    return rows;
}

result<std::string> pg_instance::scalar(const std::string& conninfo, const std::string& sql) {
    auto rows = query(conninfo, sql);
    if (!rows) return rows.error();
    if (rows->empty() || rows->front().empty()) return std::make_error_code(std::errc::no_message);
    return rows->front().front();
}

bool timescale_installed(const std::string& bin_dir) {
    // pkglibdir of Debian's PostgreSQL 15 is bin_dir/../lib.
    return std::filesystem::exists(std::filesystem::path(bin_dir) / ".." / "lib" / "timescaledb.so");
}

std::string timescale_skip_reason() {
    if (timescale_installed()) return "";
    return "TimescaleDB is not installed for PostgreSQL 15 (scripts/bootstrap builds it from "
           "../shared/vendor when that directory exists; a plain checkout has no vendored copy, so the "
           "TimescaleDB layout is not tested here)";
}

}  // namespace sluice::test
