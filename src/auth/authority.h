// SPDX-License-Identifier: Apache-2.0
//
// Who may connect and what they may do: the password file (password_file.h), the ACL
// (acl.h), the anonymous policy, client-id binding and the per-address limit on failed
// logins. The broker asks it about every CONNECT (authenticate) and, when an ACL is
// loaded, about every PUBLISH, SUBSCRIBE entry and delivery (allowed).
//
// Threads: authenticate() may be called from any event loop; the slow part (PBKDF2) runs
// on the authority's own worker thread and `done` is called there, so a loop never waits
// for a hash. allowed() is called from every loop and only reads an immutable snapshot.
// reload() (SIGHUP, from the main thread) swaps the snapshot; connections stay up and
// their next check sees the new rules. If a file fails to load, the old rules stay.
//
// Lifecycle: construct, load() before serving, stop() (or destroy) after the loops
// stopped; a pending `done` is still called (with the verdict) before stop() returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "auth/acl.h"
#include "auth/password_file.h"
#include "base/thread_annotations.h"

namespace sluice::auth {

struct authority_options {
    std::string password_file;  // "" = none: usernames are not checked
    std::string acl_file;       // "" = none: every authenticated client may do everything
    bool allow_anonymous = false;
    // "" = any client id. Else the client id an authenticated user must use: %u is the
    // username, '*' any run of characters ("%u", "%u-*"). Anonymous clients are not bound.
    std::string client_id_pattern;
    // Failed logins per source address per minute before further attempts from it are
    // refused without checking (0 = no limit).
    uint32_t max_failures_per_minute = 10;
};

struct credentials {
    std::string client_id;
    std::string peer_address;  // host only (no port): the rate limit's key
    bool has_username = false;
    std::string username;
    bool has_password = false;
    std::string password;
    // The username comes from a client certificate the TLS listener verified: accepted
    // without a password (the client id binding still applies).
    bool certified = false;
    // False for a login that is not an MQTT connection (the dashboard's): the client id
    // binding does not apply.
    bool bind_client_id = true;
};

enum class verdict : uint8_t {
    accepted,
    bad_credentials,  // unknown user or wrong password: 0x86 (5.0) / 0x04 (3.1.1)
    not_authorized,   // no credentials and anonymous access is off: 0x87 / 0x05
    client_id_bound,  // the user may not use this client id: 0x87 / 0x05
    rate_limited,     // too many failures from this address: 0x9F (5.0) / 0x05 (3.1.1)
};
const char* to_string(verdict v);

// Counters for /metrics (monotonic, relaxed).
struct auth_stats {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> bad_credentials{0};
    std::atomic<uint64_t> not_authorized{0};
    std::atomic<uint64_t> client_id_bound{0};
    std::atomic<uint64_t> rate_limited{0};
    std::atomic<uint64_t> denied_publish{0};
    std::atomic<uint64_t> denied_subscribe{0};
    std::atomic<uint64_t> denied_receive{0};
    std::atomic<uint64_t> reloads{0};
    std::atomic<uint64_t> reload_failures{0};
};

class authority {
public:
    explicit authority(authority_options opts);
    ~authority();
    authority(const authority&) = delete;
    authority& operator=(const authority&) = delete;

    // Reads the files. Returns "" on success, else the problem (the old rules stay).
    std::string load();
    // load() again, counted; for SIGHUP.
    std::string reload();
    void stop();

    const authority_options& options() const { return opts_; }
    bool has_acl() const { return has_acl_.load(std::memory_order_acquire); }

    // Decides a CONNECT and calls `done` exactly once, on the worker thread (or inline
    // when no password has to be hashed).
    void authenticate(credentials c, std::function<void(verdict)> done);

    // ACL check; true when no ACL file is configured. Denials are counted.
    bool allowed(std::string_view username, bool has_username, std::string_view client_id, std::string_view topic,
                 operation op);

    auth_stats& stats() { return stats_; }

private:
    struct snapshot {
        password_file passwords;
        bool has_passwords = false;
        acl rules;
        bool has_acl = false;
    };
    struct failure_window {
        int64_t start_ms = 0;
        uint32_t failures = 0;
    };
    struct job {
        credentials c;
        std::function<void(verdict)> done;
    };

    std::shared_ptr<const snapshot> current() const;
    verdict check_password(const snapshot& s, const credentials& c) const;
    verdict finish(const credentials& c, verdict v);
    bool client_id_ok(const credentials& c) const;
    bool over_failure_limit(const std::string& address);
    void worker();

    authority_options opts_;
    auth_stats stats_;
    mutable sluice::mutex state_mutex_;
    std::shared_ptr<const snapshot> state_ SLUICE_GUARDED_BY(state_mutex_);
    const uint64_t id_;  // unique per instance, so a thread's cached snapshot never outlives its authority
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> has_acl_{false};

    sluice::mutex failures_mutex_;
    std::unordered_map<std::string, failure_window> failures_ SLUICE_GUARDED_BY(failures_mutex_);

    sluice::mutex jobs_mutex_;
    std::condition_variable jobs_cv_;
    std::deque<job> jobs_ SLUICE_GUARDED_BY(jobs_mutex_);
    bool stopping_ SLUICE_GUARDED_BY(jobs_mutex_) = false;
    std::thread worker_;
};

// Does `value` match `pattern` where '*' is any run of characters?
bool glob_match(std::string_view pattern, std::string_view value);

}  // namespace sluice::auth
