// SPDX-License-Identifier: Apache-2.0
//
// The app side of access control (issue 12): the [auth] section of the config file and
// its settings, the anonymous-access default, the authority's metrics, and `sluice passwd`.
// Kept out of config.cc and node.cc so those stay small to merge.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace sluice::auth {
class authority;
}
namespace sluice::http {
class metrics_snapshot;
class server;
}  // namespace sluice::http

namespace sluice::app {

struct config;

// [auth] in config/sluice.toml; the flags of the same names override it.
struct auth_settings {
    std::string password_file;              // --password-file
    std::string acl_file;                   // --acl-file
    std::optional<bool> allow_anonymous;    // --allow-anonymous; unset: see anonymous_allowed()
    std::string client_id_pattern;          // --client-id-pattern, e.g. "%u" or "%u-*"
    uint32_t max_failures_per_minute = 10;  // per source address
    std::string api_token;                  // --api-token; "" = HTTP API and /metrics open
    bool http_login = false;                // --http-login: password-file users may log in to the API and dashboard
};

// Anonymous access when not set explicitly: on only for a loopback bind without a password
// file (the `make run` quick start), off everywhere else.
bool anonymous_allowed(const auth_settings& s, const std::string& bind_address);

// The authority for `serve`, or nullptr when nothing is restricted (anonymous allowed, no
// files). Returns "" or an error in `err` (unreadable file).
std::unique_ptr<auth::authority> make_authority(const auth_settings& s, const std::string& bind_address,
                                                std::string& err);

void write_auth_metrics(auth::authority& a, http::metrics_snapshot& w);

// `sluice passwd [-c | -D] [-b] FILE USER [PASSWORD]`, as mosquitto_passwd (command_line.h
// parses it and refuses the combinations that make no sense).
struct passwd_request {
    bool create = false;  // -c: start a new file
    bool remove = false;  // -D: delete the user
    bool batch = false;   // -b: the password is on the command line
    std::string file;
    std::string user;
    std::string password;  // with -b
};

int passwd_command(const passwd_request& r);

}  // namespace sluice::app
