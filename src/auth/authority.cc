// SPDX-License-Identifier: Apache-2.0
#include "auth/authority.h"

#include <chrono>

#include "base/log.h"

namespace sluice::auth {
namespace {

constexpr int64_t k_failure_window_ms = 60'000;
constexpr size_t k_max_tracked_addresses = 100'000;

int64_t mono_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::atomic<uint64_t> g_next_authority_id{1};

void bump(std::atomic<uint64_t>& c) {
    c.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

const char* to_string(verdict v) {
    switch (v) {
        case verdict::accepted:
            return "accepted";
        case verdict::bad_credentials:
            return "bad username or password";
        case verdict::not_authorized:
            return "not authorized";
        case verdict::client_id_bound:
            return "client id not allowed for this user";
        case verdict::rate_limited:
            return "too many failed logins from this address";
    }
    return "?";
}

bool glob_match(std::string_view pattern, std::string_view value) {
    // Iterative matcher with backtracking to the last '*'.
    size_t p = 0, v = 0, star = std::string_view::npos, mark = 0;
    while (v < value.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = v;
        } else if (p < pattern.size() && pattern[p] == value[v]) {
            ++p;
            ++v;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            v = ++mark;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

authority::authority(authority_options opts)
    : opts_(std::move(opts)),
      state_(std::make_shared<snapshot>()),
      id_(g_next_authority_id.fetch_add(1, std::memory_order_relaxed)) {
    worker_ = std::thread([this] { worker(); });
}

authority::~authority() {
    stop();
}

void authority::stop() {
    {
        sluice::mutex_lock lock(jobs_mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    jobs_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

std::string authority::load() {
    auto next = std::make_shared<snapshot>();
    if (!opts_.password_file.empty()) {
        std::string err = next->passwords.load(opts_.password_file);
        if (!err.empty()) return err;
        next->has_passwords = true;
    }
    if (!opts_.acl_file.empty()) {
        std::string err = next->rules.load(opts_.acl_file);
        if (!err.empty()) return err;
        next->has_acl = true;
    }
    SLUICE_INFO("auth", "loaded %zu users%s%s, %zu ACL rules%s%s; anonymous access %s", next->passwords.size(),
                opts_.password_file.empty() ? "" : " from ", opts_.password_file.c_str(), next->rules.rule_count(),
                opts_.acl_file.empty() ? "" : " from ", opts_.acl_file.c_str(), opts_.allow_anonymous ? "on" : "off");
    has_acl_.store(next->has_acl, std::memory_order_release);
    {
        sluice::mutex_lock lock(state_mutex_);
        state_ = std::move(next);
    }
    generation_.fetch_add(1, std::memory_order_release);
    return {};
}

std::string authority::reload() {
    std::string err = load();
    bump(err.empty() ? stats_.reloads : stats_.reload_failures);
    return err;
}

std::shared_ptr<const authority::snapshot> authority::current() const {
    // Each thread keeps the snapshot it saw last and refreshes it when a reload bumped the
    // generation: the hot path takes no lock.
    struct cache {
        uint64_t owner = 0;
        uint64_t generation = 0;
        std::shared_ptr<const snapshot> s;
    };
    thread_local cache c;
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (c.owner != id_ || c.generation != g || !c.s) {
        sluice::mutex_lock lock(state_mutex_);
        c.owner = id_;
        c.generation = g;
        c.s = state_;
    }
    return c.s;
}

bool authority::over_failure_limit(const std::string& address) {
    if (opts_.max_failures_per_minute == 0) return false;
    sluice::mutex_lock lock(failures_mutex_);
    auto it = failures_.find(address);
    if (it == failures_.end()) return false;
    if (mono_ms() - it->second.start_ms > k_failure_window_ms) {
        failures_.erase(it);
        return false;
    }
    return it->second.failures >= opts_.max_failures_per_minute;
}

verdict authority::finish(const credentials& c, verdict v) {
    switch (v) {
        case verdict::accepted:
            bump(stats_.accepted);
            return v;
        case verdict::bad_credentials:
            bump(stats_.bad_credentials);
            break;
        case verdict::not_authorized:
            bump(stats_.not_authorized);
            break;
        case verdict::client_id_bound:
            bump(stats_.client_id_bound);
            break;
        case verdict::rate_limited:
            bump(stats_.rate_limited);
            return v;
    }
    if (opts_.max_failures_per_minute != 0) {
        sluice::mutex_lock lock(failures_mutex_);
        int64_t now = mono_ms();
        if (failures_.size() >= k_max_tracked_addresses) {
            for (auto it = failures_.begin(); it != failures_.end();) {
                it = now - it->second.start_ms > k_failure_window_ms ? failures_.erase(it) : std::next(it);
            }
        }
        auto& w = failures_[c.peer_address];
        if (now - w.start_ms > k_failure_window_ms) {
            w.start_ms = now;
            w.failures = 0;
        }
        ++w.failures;
    }
    SLUICE_INFO("auth", "refused %s (user %s, client %s): %s", c.peer_address.c_str(),
                c.has_username ? c.username.c_str() : "-", c.client_id.c_str(), to_string(v));
    return v;
}

bool authority::client_id_ok(const credentials& c) const {
    if (opts_.client_id_pattern.empty() || !c.has_username) return true;
    std::string pattern;
    const std::string& p = opts_.client_id_pattern;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '%' && i + 1 < p.size() && p[i + 1] == 'u') {
            pattern += c.username;
            ++i;
        } else {
            pattern.push_back(p[i]);
        }
    }
    return glob_match(pattern, c.client_id);
}

verdict authority::check_password(const snapshot& s, const credentials& c) const {
    if (!c.has_username) return opts_.allow_anonymous ? verdict::accepted : verdict::not_authorized;
    if (!s.has_passwords) return opts_.allow_anonymous ? verdict::accepted : verdict::not_authorized;
    const std::string* encoded = s.passwords.find(c.username);
    if (encoded == nullptr || !c.has_password) return verdict::bad_credentials;
    return verify_password(c.password, *encoded) ? verdict::accepted : verdict::bad_credentials;
}

void authority::authenticate(credentials c, std::function<void(verdict)> done) {
    if (over_failure_limit(c.peer_address)) {
        done(finish(c, verdict::rate_limited));
        return;
    }
    auto s = current();
    if (c.certified) {
        done(finish(c, client_id_ok(c) ? verdict::accepted : verdict::client_id_bound));
        return;
    }
    if (!c.has_username || !s->has_passwords) {
        // Nothing to hash: decide inline.
        verdict v = check_password(*s, c);
        if (v == verdict::accepted && c.bind_client_id && !client_id_ok(c)) v = verdict::client_id_bound;
        done(finish(c, v));
        return;
    }
    {
        sluice::mutex_lock lock(jobs_mutex_);
        if (!stopping_) {
            jobs_.push_back(job{std::move(c), std::move(done)});
            jobs_cv_.notify_one();
            return;
        }
    }
    done(finish(c, verdict::not_authorized));
}

void authority::worker() {
    for (;;) {
        job j;
        {
            sluice::mutex_lock lock(jobs_mutex_);
            while (!stopping_ && jobs_.empty())
                lock.wait(jobs_cv_);
            if (jobs_.empty()) return;
            j = std::move(jobs_.front());
            jobs_.pop_front();
        }
        auto s = current();
        verdict v = check_password(*s, j.c);
        if (v == verdict::accepted && j.c.bind_client_id && !client_id_ok(j.c)) v = verdict::client_id_bound;
        // Wipe the password as soon as it is no longer needed.
        std::fill(j.c.password.begin(), j.c.password.end(), '\0');
        j.done(finish(j.c, v));
    }
}

bool authority::allowed(std::string_view username, bool has_username, std::string_view client_id,
                        std::string_view topic, operation op) {
    if (!has_acl()) return true;
    auto s = current();
    if (!s->has_acl) return true;
    if (s->rules.allowed(username, has_username, client_id, topic, op)) return true;
    bump(op == operation::publish     ? stats_.denied_publish
         : op == operation::subscribe ? stats_.denied_subscribe
                                      : stats_.denied_receive);
    return false;
}

}  // namespace sluice::auth
