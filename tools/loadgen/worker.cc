// SPDX-License-Identifier: Apache-2.0
//
// The worker's thread and event loop (see worker.h): connections open at the configured
// connect rate, the loop follows the phase the main thread sets, runs per-device reading
// timers (or pumps as fast as the windows allow with --rate 0), refills the slow
// subscriber's read budget and sends keep-alive pings.
#include "worker.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

#include "base/assert.h"

namespace sluice::loadgen {

void worker::add_publisher(uint32_t device) {
    auto c = std::make_unique<connection>();
    c->index = device;
    c->client_id = s_.opts.client_prefix + "-pub-" + std::to_string(device);
    c->topic = s_.topics.topic_for(device);
    if (s_.opts.format == payload_kind::binary) {
        c->batch_buf.resize(s_.opts.batch_capacity);
        c->encoder.emplace(c->batch_buf.data(), s_.opts.batch_capacity, s_.opts.flush_bytes);
    }
    add(std::move(c));
}

void worker::add_subscriber(uint32_t index, bool slow) {
    auto c = std::make_unique<connection>();
    c->subscriber = true;
    c->index = index;
    c->slow = slow;
    c->client_id = s_.opts.client_prefix + "-sub-" + std::to_string(index);
    c->ledger = std::make_unique<receive_ledger>(s_.opts.devices);
    add(std::move(c));
}

void worker::add(std::unique_ptr<connection> c) {
    c->owner = this;
    c->slot = static_cast<uint32_t>(conns.size());
    conns.push_back(std::move(c));
}

void worker::loop() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    // std::error_code rather than strerror(): this runs on several worker threads at once.
    SLUICE_CHECK(epfd_ >= 0, "epoll_create1: %s", std::error_code(errno, std::generic_category()).message().c_str());
    // Connections are opened at the configured total connect rate, spread over workers.
    const double per_worker_rate = s_.opts.connect_rate / std::max<uint32_t>(1, s_.opts.threads);
    const int64_t t0 = mono_ns();
    for (size_t i = 0; i < conns.size(); ++i) {
        // Subscribers first: they must be ready before publishers start.
        const auto when = t0 + static_cast<int64_t>(static_cast<double>(i) * 1e9 / per_worker_rate);
        timers_.push(timer{when, static_cast<uint32_t>(i), 1});
    }
    phase seen = phase::connecting;
    epoll_event events[256];
    while (true) {
        const phase p = s_.now();
        if (p != seen) {
            on_phase(seen, p);
            seen = p;
        }
        if (p == phase::stopping) break;
        int64_t now = mono_ns();
        int timeout_ms = 50;
        if (!timers_.empty()) {
            const int64_t wait = (timers_.top().when - now) / 1'000'000;
            timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 50));
        }
        if ((pumping_ && p == phase::running) || !dirty_.empty()) timeout_ms = 0;
        const int n = epoll_wait(epfd_, events, 256, timeout_ms);
        for (int i = 0; i < n; ++i) {
            connection& c = *conns[events[i].data.u32];
            on_events(c, events[i].events);
        }
        now = mono_ns();
        run_timers(now, p);
        if (p == phase::running && s_.opts.rate <= 0 && s_.opts.kind != scenario::churn) pump();
        if (now >= next_housekeeping_) housekeeping(now);
        flush_dirty();
    }
    // Connected clients say goodbye (DISCONNECT; TLS close_notify), the rest just close.
    for (auto& c : conns) {
        if (c->fd >= 0 && c->state == conn_state::ready) goodbye(*c);
        if (c->fd >= 0) ::close(c->fd);
        c->fd = -1;
    }
    ::close(epfd_);
}

void worker::on_phase(phase from, phase to) {
    const int64_t now = mono_ns();
    if (to == phase::running && from == phase::connecting) {
        // Spread the first reading of each device over one interval.
        std::mt19937 rng(id_ * 7919u + 17u);
        for (auto& c : conns) {
            if (c->subscriber) continue;
            if (s_.opts.kind == scenario::churn) {
                if (c->state == conn_state::ready) churn(*c);
                continue;
            }
            if (s_.opts.rate > 0) {
                const auto interval = static_cast<int64_t>(1e9 / s_.opts.rate);
                c->next_reading =
                    now + static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, interval)));
                timers_.push(timer{c->next_reading, c->slot, 0});
            } else {
                pumping_ = true;
            }
        }
    }
    if (to == phase::offline) {
        for (auto& c : conns) {
            if (c->subscriber || c->fd < 0) continue;
            goodbye(*c);
        }
    }
    if (to == phase::reconnecting) {
        std::mt19937 rng(id_ * 104729u + 3u);
        for (auto& c : conns) {
            if (c->subscriber) continue;
            timers_.push(timer{now + static_cast<int64_t>(rng() % 1'000'000'000u), c->slot, 1});
        }
    }
    if (to == phase::draining) {
        // Close every open batch so that nothing stays unsent at the end.
        for (auto& c : conns) {
            if (!c->subscriber) flush_batch(*c);
        }
        pumping_ = false;
        s_.workers_draining.fetch_add(1, std::memory_order_release);
    }
}

void worker::run_timers(int64_t now, phase p) {
    while (!timers_.empty() && timers_.top().when <= now) {
        const timer t = timers_.top();
        timers_.pop();
        connection& c = *conns[t.slot];
        if (t.kind == 1) {
            open_conn(c);
            continue;
        }
        if (p != phase::running && p != phase::offline && p != phase::reconnecting) continue;
        const double rate = s_.opts.rate * s_.rate_scale.load(std::memory_order_relaxed);
        const auto interval = static_cast<int64_t>(1e9 / rate);
        // Catch up at most one second of missed readings, then skip ahead.
        int guard = 0;
        while (c.next_reading <= now &&
               guard++ < std::max<int64_t>(1, 1'000'000'000 / std::max<int64_t>(1, interval))) {
            produce(c);
            c.next_reading += interval;
        }
        if (c.next_reading <= now) c.next_reading = now + interval;
        const int64_t now_ms = unix_now_ns() / 1'000'000;
        if (batch_due(c, now_ms)) flush_batch(c);
        int64_t when = c.next_reading;
        const bool open_batch = (c.encoder && !c.encoder->empty()) || c.json_count > 0;
        if (open_batch) {
            // Wake for the age flush too.
            const int64_t age_deadline = now + static_cast<int64_t>(s_.opts.flush_ms) * 1'000'000 / 4;
            when = std::min(when, age_deadline);
        }
        timers_.push(timer{when, c.slot, 0});
    }
}

// rate == 0: keep every publisher's pipe full.
void worker::pump() {
    for (auto& cp : conns) {
        connection& c = *cp;
        if (c.subscriber || c.state != conn_state::ready) continue;
        for (int i = 0; i < 64 && room(c) && c.queue.empty(); ++i)
            produce(c);
    }
}

void worker::housekeeping(int64_t now) {
    next_housekeeping_ = now + 100'000'000;
    // Slow subscribers get their byte budget back ten times a second.
    for (auto& c : conns) {
        if (c->slow && c->fd >= 0) {
            c->read_budget = static_cast<int64_t>(s_.opts.slow_bytes_per_s / 10);
            pause_reading(*c, false);
        }
    }
    if (s_.opts.keep_alive > 0 && now >= next_ping_) {
        next_ping_ = now + int64_t{s_.opts.keep_alive} * 500'000'000;
        if (next_ping_done_) {
            for (auto& c : conns) {
                if (c->fd >= 0 && c->state == conn_state::ready) {
                    mqtt::encode(mqtt::packet{mqtt::pingreq{}}, s_.opts.protocol, c->out);
                    mark_dirty(*c);
                }
            }
        }
        next_ping_done_ = true;
    }
}

}  // namespace sluice::loadgen
