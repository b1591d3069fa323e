// SPDX-License-Identifier: Apache-2.0
#include "app/http_access.h"

#include <chrono>
#include <future>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/authority.h"
#include "base/log.h"
#include "http/metrics_snapshot.h"
#include "http/server.h"

namespace sluice::app {
namespace {

constexpr int64_t k_session_ms = int64_t{12} * 3600 * 1000;
constexpr size_t k_max_sessions = 10'000;
constexpr const char* k_cookie = "sluice_session";

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool equal_secret(const std::string& a, const std::string& b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// "user:password" from a Basic credential, if it decodes.
std::optional<std::pair<std::string, std::string>> basic_credentials(const std::string& header) {
    if (header.rfind("Basic ", 0) != 0) return std::nullopt;
    std::string b64 = header.substr(6);
    if (b64.empty() || b64.size() > 1024 || b64.size() % 4 != 0) return std::nullopt;
    std::string raw(b64.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    if (n < 0) return std::nullopt;
    size_t len = static_cast<size_t>(n);
    if (b64.size() >= 2 && b64[b64.size() - 1] == '=') --len;  // EVP_DecodeBlock keeps padding bytes
    if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
    raw.resize(len);
    size_t colon = raw.find(':');
    if (colon == std::string::npos) return std::nullopt;
    return std::make_pair(raw.substr(0, colon), raw.substr(colon + 1));
}

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

// A field of a JSON object {"username":"...","password":"..."} or of a form body
// username=...&password=... (the login form may post either).
std::string field_of(const http::request& req, const std::string& name) {
    auto ct = req.headers.find("content-type");
    bool json = ct != req.headers.end() && ct->second.find("json") != std::string::npos;
    if (!json) {
        std::string_view body = req.body;
        while (!body.empty()) {
            size_t amp = body.find('&');
            std::string_view kv = body.substr(0, amp);
            size_t eq = kv.find('=');
            if (eq != std::string_view::npos && http::url_decode(kv.substr(0, eq), true) == name) {
                return http::url_decode(kv.substr(eq + 1), true);
            }
            if (amp == std::string_view::npos) break;
            body.remove_prefix(amp + 1);
        }
        return {};
    }
    // Minimal JSON: "name" : "value" with \" and \\ escapes (what browsers' JSON.stringify
    // writes for ordinary strings).
    std::string key = "\"" + name + "\"";
    size_t at = req.body.find(key);
    if (at == std::string::npos) return {};
    at = req.body.find(':', at + key.size());
    if (at == std::string::npos) return {};
    at = req.body.find('"', at);
    if (at == std::string::npos) return {};
    std::string out;
    for (size_t i = at + 1; i < req.body.size(); ++i) {
        char c = req.body[i];
        if (c == '"') return out;
        if (c == '\\' && i + 1 < req.body.size()) c = req.body[++i];
        out += c;
    }
    return {};
}

http::response json(int status, const std::string& body) {
    return http::response{status, "application/json; charset=utf-8", body + "\n", {{"Cache-Control", "no-store"}}};
}

}  // namespace

http_access::http_access(http_access_options opts, auth::authority* authority)
    : opts_(std::move(opts)), authority_(authority) {}

bool http_access::check_password(const std::string& user, const std::string& password, const std::string& peer) {
    if (authority_ == nullptr || user.empty()) return false;
    auth::credentials c;
    c.client_id = user;
    c.peer_address = peer;
    c.has_username = true;
    c.username = user;
    c.has_password = true;
    c.password = password;
    c.bind_client_id = false;
    auto verdict = std::make_shared<std::promise<auth::verdict>>();
    auto done = verdict->get_future();
    authority_->authenticate(std::move(c), [verdict](auth::verdict v) { verdict->set_value(v); });
    // A user exists only in a password file: "accepted" without one means anonymous access.
    return done.get() == auth::verdict::accepted && !authority_->options().password_file.empty();
}

std::string http_access::new_session(const std::string& user) {
    int64_t now = now_ms();
    if (sessions_.size() >= k_max_sessions) {
        for (auto it = sessions_.begin(); it != sessions_.end();)
            it = it->second.expires_ms <= now ? sessions_.erase(it) : std::next(it);
        if (sessions_.size() >= k_max_sessions) sessions_.erase(sessions_.begin());
    }
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return {};
    std::string id;
    static const char* const k_hex = "0123456789abcdef";
    for (unsigned char b : raw) {
        id += k_hex[b >> 4];
        id += k_hex[b & 15];
    }
    sessions_[id] = session{user, now + k_session_ms};
    return id;
}

std::string http_access::session_of(const http::request& req) {
    auto it = req.headers.find("cookie");
    if (it == req.headers.end()) return {};
    std::string_view cookies = it->second;
    std::string prefix = std::string(k_cookie) + "=";
    while (!cookies.empty()) {
        size_t semi = cookies.find(';');
        std::string_view c = cookies.substr(0, semi);
        while (!c.empty() && c.front() == ' ')
            c.remove_prefix(1);
        if (c.substr(0, prefix.size()) == prefix) {
            auto s = sessions_.find(std::string(c.substr(prefix.size())));
            if (s == sessions_.end()) return {};
            if (s->second.expires_ms <= now_ms()) {
                sessions_.erase(s);
                return {};
            }
            return s->first;
        }
        if (semi == std::string_view::npos) break;
        cookies.remove_prefix(semi + 1);
    }
    return {};
}

std::string http_access::identify(const http::request& req, const char*& how) {
    how = "";
    if (!enabled()) {
        how = "open";
        return "anonymous";
    }
    if (auto it = req.headers.find("authorization"); it != req.headers.end()) {
        const std::string& h = it->second;
        if (!opts_.api_token.empty() && h.rfind("Bearer ", 0) == 0 && equal_secret(h.substr(7), opts_.api_token)) {
            how = "token";
            return "api-token";
        }
        if (opts_.login) {
            if (auto basic = basic_credentials(h); basic && check_password(basic->first, basic->second, req.peer)) {
                how = "basic";
                return basic->first;
            }
        }
    }
    if (opts_.login) {
        if (std::string id = session_of(req); !id.empty()) {
            how = "session";
            return sessions_[id].user;
        }
    }
    return {};
}

void http_access::install(http::server& web) {
    if (!enabled()) return;
    web.set_guard([this](const http::request& req) -> std::optional<http::response> {
        bool open_path = req.path == "/health" || req.path == "/api/login" || req.path == "/api/logout" ||
                         req.path == "/api/whoami" || (req.path.rfind("/api/", 0) != 0 && req.path != "/metrics");
        if (open_path) return std::nullopt;
        const char* how = "";
        if (!identify(req, how).empty()) return std::nullopt;
        unauthorized_.fetch_add(1, std::memory_order_relaxed);
        http::response r = json(401, "{\"error\":\"unauthorized\"}");
        // No Basic challenge: a browser would answer it with its own dialog instead of our form.
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice\"");
        return r;
    });
    web.route("GET", "/api/whoami", [this](const http::request& req) {
        const char* how = "";
        std::string user = identify(req, how);
        std::string login = opts_.login ? "true" : "false";
        if (user.empty()) return json(401, "{\"error\":\"unauthorized\",\"login\":" + login + "}");
        return json(200, "{\"user\":\"" + json_escape(user) + "\",\"by\":\"" + how + "\",\"login\":" + login + "}");
    });
    web.route("POST", "/api/login", [this](const http::request& req) {
        if (!opts_.login) return json(404, "{\"error\":\"login is not enabled (auth.http_login)\"}");
        std::string user = field_of(req, "username");
        std::string password = field_of(req, "password");
        if (!check_password(user, password, req.peer)) {
            logins_failed_.fetch_add(1, std::memory_order_relaxed);
            SLUICE_INFO("http", "%s: dashboard login refused for \"%s\"", req.peer.c_str(), user.c_str());
            return json(401, "{\"error\":\"wrong username or password\"}");
        }
        std::string id = new_session(user);
        if (id.empty()) return json(500, "{\"error\":\"no randomness for a session id\"}");
        logins_ok_.fetch_add(1, std::memory_order_relaxed);
        http::response r = json(200, "{\"user\":\"" + json_escape(user) + "\"}");
        std::string cookie = std::string(k_cookie) + "=" + id +
                             "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(k_session_ms / 1000);
        if (opts_.secure_cookie) cookie += "; Secure";
        r.headers.emplace_back("Set-Cookie", cookie);
        return r;
    });
    web.route("POST", "/api/logout", [this](const http::request& req) {
        if (std::string id = session_of(req); !id.empty()) sessions_.erase(id);
        http::response r = json(200, "{}");
        r.headers.emplace_back("Set-Cookie", std::string(k_cookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
        return r;
    });
}

void http_access::write_metrics(http::metrics_snapshot& w) const {
    auto v = [](const std::atomic<uint64_t>& c) { return static_cast<double>(c.load(std::memory_order_relaxed)); };
    w.counter("http_unauthorized_total", "HTTP requests refused: no valid token, user or session", v(unauthorized_));
    w.counter("http_logins_total", "Dashboard logins (POST /api/login), by result", v(logins_ok_), {{"result", "ok"}});
    w.counter("http_logins_total", "Dashboard logins (POST /api/login), by result", v(logins_failed_),
              {{"result", "failed"}});
}

}  // namespace sluice::app
