// SPDX-License-Identifier: Apache-2.0
#include "app/security.h"

#include <arpa/inet.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <openssl/crypto.h>

#include "auth/authority.h"
#include "auth/password_file.h"
#include "http/metrics_snapshot.h"
#include "http/server.h"

namespace sluice::app {

std::unique_ptr<auth::authority> make_authority(const auth_settings& s, const std::string& bind_address,
                                                std::string& err) {
    bool anonymous = anonymous_allowed(s, bind_address);
    if (anonymous && s.password_file.empty() && s.acl_file.empty()) return nullptr;
    auth::authority_options o;
    o.password_file = s.password_file;
    o.acl_file = s.acl_file;
    o.allow_anonymous = anonymous;
    o.client_id_pattern = s.client_id_pattern;
    o.max_failures_per_minute = s.max_failures_per_minute;
    auto a = std::make_unique<auth::authority>(o);
    err = a->load();
    if (!err.empty()) return nullptr;
    return a;
}

void write_auth_metrics(auth::authority& a, http::metrics_snapshot& w) {
    auto& s = a.stats();
    auto v = [](const std::atomic<uint64_t>& c) { return static_cast<double>(c.load(std::memory_order_relaxed)); };
    const char* help = "CONNECTs decided by authentication, by result";
    w.counter("auth_connects_total", help, v(s.accepted), {{"result", "accepted"}});
    w.counter("auth_connects_total", help, v(s.bad_credentials), {{"result", "bad_credentials"}});
    w.counter("auth_connects_total", help, v(s.not_authorized), {{"result", "not_authorized"}});
    w.counter("auth_connects_total", help, v(s.client_id_bound), {{"result", "client_id_not_allowed"}});
    w.counter("auth_connects_total", help, v(s.rate_limited), {{"result", "rate_limited"}});
    const char* denied = "Operations refused by the ACL";
    w.counter("acl_denied_total", denied, v(s.denied_publish), {{"operation", "publish"}});
    w.counter("acl_denied_total", denied, v(s.denied_subscribe), {{"operation", "subscribe"}});
    w.counter("acl_denied_total", denied, v(s.denied_receive), {{"operation", "receive"}});
    w.counter("auth_reloads_total", "Reloads of the password and ACL files (SIGHUP), by result", v(s.reloads),
              {{"result", "ok"}});
    w.counter("auth_reloads_total", "Reloads of the password and ACL files (SIGHUP), by result", v(s.reload_failures),
              {{"result", "failed"}});
}

namespace {

// Reads a line without echo when stdin is a terminal.
bool read_password(const char* prompt, std::string& out) {
    bool tty = ::isatty(STDIN_FILENO) != 0;
    termios old{};
    if (tty) {
        std::fputs(prompt, stderr);
        std::fflush(stderr);
        ::tcgetattr(STDIN_FILENO, &old);
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    bool ok = static_cast<bool>(std::getline(std::cin, out));
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        std::fputs("\n", stderr);
    }
    if (!out.empty() && out.back() == '\r') out.pop_back();
    return ok;
}

}  // namespace

int passwd_command(const passwd_request& r) {
    const std::string& file = r.file;
    const std::string& user = r.user;
    if (user.empty() || user.find(':') != std::string::npos) {
        std::fprintf(stderr, "sluice passwd: a username cannot be empty or contain ':'\n");
        return 1;
    }
    auth::password_file pf;
    if (!r.create) {
        std::string err = pf.load(file);
        if (!err.empty()) {
            std::fprintf(stderr, "sluice passwd: %s\n", err.c_str());
            return 1;
        }
    }
    if (r.remove) {
        if (!pf.erase(user)) {
            std::fprintf(stderr, "sluice passwd: user %s not in %s\n", user.c_str(), file.c_str());
            return 1;
        }
    } else {
        std::string password;
        if (r.batch) {
            password = r.password;
        } else {
            std::string again;
            if (!read_password("Password: ", password) || !read_password("Reenter password: ", again)) {
                std::fprintf(stderr, "sluice passwd: no password given\n");
                return 1;
            }
            if (password != again) {
                std::fprintf(stderr, "sluice passwd: passwords do not match\n");
                return 1;
            }
        }
        std::string hash = auth::hash_password(password);
        if (hash.empty()) {
            std::fprintf(stderr, "sluice passwd: cannot hash (no random source)\n");
            return 1;
        }
        pf.set(user, hash);
    }
    std::string err = pf.save(file);
    if (!err.empty()) {
        std::fprintf(stderr, "sluice passwd: %s\n", err.c_str());
        return 1;
    }
    return 0;
}

}  // namespace sluice::app
