// SPDX-License-Identifier: Apache-2.0
//
// What a listener does when the process runs out of file descriptors (issue 10: with the
// table full, accept() failed with EMFILE in a level-triggered loop, spinning a core and
// logging ~100k lines a second, while new clients hung in the backlog without an answer).
// A reserve descriptor is held from the start; on EMFILE/ENFILE it is given up for a
// moment to accept the waiting connections and close them at once (the client sees a clean
// close instead of a hang), then the listener pauses for a back-off before accepting
// again, and the warning is logged at most once per interval with a count.
//
// One per listener, on its loop thread.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace sluice::net {

class accept_guard {
public:
    static constexpr int64_t k_backoff_ms = 250;
    static constexpr int64_t k_log_interval_ms = 10'000;
    static constexpr int k_max_refused_per_call = 256;

    accept_guard() { reserve(); }
    ~accept_guard() {
        if (reserve_fd_ >= 0) ::close(reserve_fd_);
    }
    accept_guard(const accept_guard&) = delete;
    accept_guard& operator=(const accept_guard&) = delete;

    // accept4() on `listen_fd` failed with EMFILE/ENFILE at `now_ms`: accepts and closes one
    // waiting connection with the reserve descriptor and starts the back-off. Returns true
    // when a warning is due (the caller logs refused() connections since the last one).
    bool on_exhausted(int listen_fd, int64_t now_ms) {
        if (reserve_fd_ >= 0) {
            ::close(reserve_fd_);
            reserve_fd_ = -1;
            // Every connection waiting now is answered (closed), not only the first: a
            // client must not hang in the backlog through the back-off. Bounded per call.
            for (int i = 0; i < k_max_refused_per_call; ++i) {
                int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) break;
                ::close(fd);
                ++refused_;
            }
            reserve();
        }
        paused_until_ms_ = now_ms + k_backoff_ms;
        if (now_ms - last_log_ms_ < k_log_interval_ms && last_log_ms_ != 0) return false;
        last_log_ms_ = now_ms;
        return true;
    }
    // True while the listener should stay out of the loop.
    bool paused(int64_t now_ms) const { return now_ms < paused_until_ms_; }
    // Connections accepted and closed for lack of descriptors since the last call.
    uint64_t take_refused() {
        uint64_t n = refused_;
        refused_ = 0;
        return n;
    }

private:
    void reserve() { reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

    int reserve_fd_ = -1;
    int64_t paused_until_ms_ = 0;
    int64_t last_log_ms_ = 0;
    uint64_t refused_ = 0;
};

}  // namespace sluice::net
