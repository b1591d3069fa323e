// SPDX-License-Identifier: Apache-2.0
#include "net/event_loop.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/assert.h"
#include "base/errno_text.h"
#include "base/log.h"

namespace sluice::net {

int64_t event_loop::monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

class event_loop::wakeup_handler final : public handler {
public:
    explicit wakeup_handler(event_loop& loop) : loop_(loop) {}
    void on_events(uint32_t) override {
        uint64_t value = 0;
        ssize_t n = ::read(loop_.wake_fd_, &value, sizeof value);
        (void)n;
        loop_.wake_pending_.store(false, std::memory_order_release);
    }

private:
    event_loop& loop_;
};

event_loop::event_loop(unsigned index) : index_(index), thread_id_(std::this_thread::get_id()) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    SLUICE_CHECK(epoll_fd_ >= 0, "epoll_create1: %s", errno_text(errno).c_str());
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    SLUICE_CHECK(wake_fd_ >= 0, "eventfd: %s", errno_text(errno).c_str());
    now_ms_ = monotonic_ms();
}

event_loop::~event_loop() {
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void event_loop::add(int fd, uint32_t events, handler* h) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = h;
    int rc = epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    SLUICE_CHECK(rc == 0, "epoll_ctl(ADD, %d): %s", fd, errno_text(errno).c_str());
}

void event_loop::modify(int fd, uint32_t events, handler* h) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = h;
    int rc = epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    SLUICE_CHECK(rc == 0, "epoll_ctl(MOD, %d): %s", fd, errno_text(errno).c_str());
}

void event_loop::remove(int fd) {
    // The fd may already be closed by the kernel's view (EBADF) when a peer vanished; ignore that.
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void event_loop::post(std::function<void()> fn) {
    {
        sluice::mutex_lock lock(posted_mutex_);
        posted_.push_back(std::move(fn));
    }
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
        uint64_t one = 1;
        ssize_t n = ::write(wake_fd_, &one, sizeof one);
        (void)n;
    }
}

void event_loop::stop() {
    stopping_.store(true, std::memory_order_release);
    post([] {});
}

void event_loop::every(std::chrono::milliseconds period, std::function<void()> fn) {
    int64_t p = period.count() > 0 ? period.count() : 1;
    timers_.push_back(periodic{p, monotonic_ms() + p, std::move(fn)});
}

void event_loop::drain_posted() {
    // Swap under the lock, run outside it: posting threads never wait for our work.
    for (;;) {
        {
            sluice::mutex_lock lock(posted_mutex_);
            if (posted_.empty()) return;
            running_.swap(posted_);
        }
        for (auto& fn : running_)
            fn();
        running_.clear();
    }
}

void event_loop::run_timers() {
    for (auto& t : timers_) {
        if (now_ms_ >= t.next_ms) {
            t.next_ms = now_ms_ + t.period_ms;
            t.fn();
        }
    }
}

void event_loop::run() {
    thread_id_ = std::this_thread::get_id();
    wakeup_handler waker(*this);
    add(wake_fd_, EPOLLIN, &waker);
    constexpr int k_max_events = 256;
    epoll_event events[k_max_events];
    while (!stopping_.load(std::memory_order_acquire)) {
        int timeout_ms = 100;
        if (!timers_.empty()) {
            int64_t soonest = timers_.front().next_ms;
            for (const auto& t : timers_)
                soonest = std::min(soonest, t.next_ms);
            timeout_ms = static_cast<int>(std::clamp<int64_t>(soonest - monotonic_ms(), 0, 100));
        }
        int n = epoll_wait(epoll_fd_, events, k_max_events, timeout_ms);
        if (n < 0 && errno != EINTR) {
            SLUICE_CHECK(false, "epoll_wait: %s", errno_text(errno).c_str());
        }
        now_ms_ = monotonic_ms();
        for (int i = 0; i < n; ++i) {
            static_cast<handler*>(events[i].data.ptr)->on_events(events[i].events);
        }
        drain_posted();
        run_timers();
        for (auto& hook : iteration_hooks_)
            hook();
    }
    drain_posted();
    remove(wake_fd_);
}

}  // namespace sluice::net
