// SPDX-License-Identifier: Apache-2.0
//
// One epoll event loop per thread (one per core in `sluice serve`). Everything a loop
// owns (its connections, its broker shard) is touched only from its thread; other
// threads talk to it with post(), which batches functions into a queue and wakes the
// loop through an eventfd. Work that must happen once per loop iteration (flushing
// cross-loop batches, writing queued output) registers an end-of-iteration hook.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "base/thread_annotations.h"

namespace sluice::net {

class event_loop {
public:
    // Receives readiness events for one file descriptor. Lives until remove() is called
    // for its fd; the loop never owns handlers.
    class handler {
    public:
        virtual void on_events(uint32_t epoll_events) = 0;

    protected:
        ~handler() = default;
    };

    explicit event_loop(unsigned index);
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    unsigned index() const { return index_; }

    // Runs until stop(); call from the thread that owns the loop.
    void run();
    // Thread-safe. The loop finishes its current iteration, then run() returns.
    void stop();
    // Thread-safe. Runs fn on the loop thread, in posting order.
    void post(std::function<void()> fn);
    bool in_loop_thread() const { return std::this_thread::get_id() == thread_id_; }

    // REQUIRES: called on the loop thread (or before run()).
    void add(int fd, uint32_t events, handler* h);
    void modify(int fd, uint32_t events, handler* h);
    void remove(int fd);

    // Called at the end of every iteration, after all events and posted functions ran.
    void on_iteration_end(std::function<void()> fn) { iteration_hooks_.push_back(std::move(fn)); }
    // Called about every `period` (coarse: keep-alive, retransmission, expiry checks).
    void every(std::chrono::milliseconds period, std::function<void()> fn);

    // Milliseconds on the monotonic clock, sampled once per iteration.
    int64_t now_ms() const { return now_ms_; }
    static int64_t monotonic_ms();

private:
    struct periodic {
        int64_t period_ms;
        int64_t next_ms;
        std::function<void()> fn;
    };
    class wakeup_handler;

    void drain_posted();
    void run_timers();

    unsigned index_;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::thread::id thread_id_;
    std::atomic<bool> stopping_{false};
    int64_t now_ms_ = 0;

    sluice::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_ SLUICE_GUARDED_BY(posted_mutex_);
    std::vector<std::function<void()>> running_;
    std::atomic<bool> wake_pending_{false};

    std::vector<std::function<void()>> iteration_hooks_;
    std::vector<periodic> timers_;
};

}  // namespace sluice::net
