// SPDX-License-Identifier: Apache-2.0
//
// Who may read the HTTP API, the metrics and the dashboard's data (issue 12). /health and
// the dashboard's own files are always public; /api/* and /metrics need one of:
//   - `Authorization: Bearer TOKEN` with the api_token (machines: Prometheus, scripts);
//   - with http_login on, `Authorization: Basic` with a user of the password file, or the
//     session cookie that POST /api/login hands out after checking such a user (the
//     dashboard's login form). Sessions live in memory for 12 h and end with POST
//     /api/logout or a restart.
// Failed logins count against the same per-address limit as MQTT CONNECTs. Passwords are
// checked on the authority's worker thread; the HTTP thread waits for the verdict (logins
// are human-speed). With neither api_token nor http_login, everything is open (the
// loopback quick start; Sluice warns when that is not on a loopback address).
//
// Threads: everything here runs on the HTTP server's thread, except the counters.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace sluice::auth {
class authority;
}
namespace sluice::http {
class metrics_snapshot;
class server;
struct request;
}  // namespace sluice::http

namespace sluice::app {

struct http_access_options {
    std::string api_token;       // "" = no token accepted
    bool login = false;          // users of the password file may log in
    bool secure_cookie = false;  // HTTPS: the cookie is only ever sent over TLS
};

class http_access {
public:
    // `authority` may be null (then only the token can open the API).
    http_access(http_access_options opts, auth::authority* authority);

    // Installs the guard and the /api/login, /api/logout and /api/whoami routes.
    void install(http::server& web);
    bool enabled() const { return !opts_.api_token.empty() || opts_.login; }

    void write_metrics(http::metrics_snapshot& w) const;

private:
    // The user a request is authenticated as ("" = none); `how` says by what.
    std::string identify(const http::request& req, const char*& how);
    bool check_password(const std::string& user, const std::string& password, const std::string& peer);
    std::string new_session(const std::string& user);
    std::string session_of(const http::request& req);

    struct session {
        std::string user;
        int64_t expires_ms;
    };

    http_access_options opts_;
    auth::authority* authority_;
    std::unordered_map<std::string, session> sessions_;  // by session id; HTTP thread only
    std::atomic<uint64_t> unauthorized_{0};
    std::atomic<uint64_t> logins_ok_{0};
    std::atomic<uint64_t> logins_failed_{0};
};

}  // namespace sluice::app
