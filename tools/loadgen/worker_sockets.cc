// SPDX-License-Identifier: Apache-2.0
//
// The worker's sockets (see worker.h): non-blocking connects spread over loopback source
// addresses, reconnect backoff, reads (throttled for the slow subscriber) fed to the MQTT
// decoder, and output batched per loop iteration with EPOLLOUT armed only while full.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <system_error>

#include "base/assert.h"
#include "worker.h"

namespace sluice::loadgen {

void worker::open_conn(connection& c) {
    if (c.fd >= 0) return;
    if (!c.subscriber && (s_.now() == phase::offline)) return;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        stats.errors.fetch_add(1, std::memory_order_relaxed);
        timers_.push(timer{mono_ns() + backoff_ns(c), c.slot, 1});
        return;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const uint32_t broker_addr = ntohl(s_.broker.sin_addr.s_addr);
    const uint32_t addrs = source_addrs();
    if ((broker_addr >> 24) == 127 && addrs > 1) {
        // Spread connections over 127.0.0.1..N so ephemeral ports do not run out.
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        const uint32_t key = c.subscriber ? c.index : c.index + 7;
        src.sin_addr.s_addr = htonl((127u << 24) | (1u + key % addrs));
        if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
            stats.errors.fetch_add(1, std::memory_order_relaxed);
        }
    }
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&s_.broker), sizeof s_.broker);
    if (rc != 0 && errno != EINPROGRESS) {
        ::close(fd);
        stats.errors.fetch_add(1, std::memory_order_relaxed);
        timers_.push(timer{mono_ns() + backoff_ns(c), c.slot, 1});
        return;
    }
    c.fd = fd;
    c.state = conn_state::connecting;
    c.out.clear();
    c.out_off = 0;
    c.decoder.emplace(s_.opts.protocol);
    c.want_write = true;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = c.slot;
    SLUICE_CHECK(epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl: %s",
                 std::error_code(errno, std::generic_category()).message().c_str());  // thread-safe, unlike strerror()
}

// 200 ms doubling to 6.4 s, with jitter, so a refusing broker is not hammered.
int64_t worker::backoff_ns(connection& c) {
    const uint32_t step = std::min<uint32_t>(c.failures++, 5);
    const int64_t base = int64_t{200'000'000} << step;
    return base + static_cast<int64_t>(jitter_() % static_cast<uint64_t>(base / 2 + 1));
}

uint32_t worker::source_addrs() const {
    if (s_.opts.source_addrs > 0) return s_.opts.source_addrs;
    const uint64_t total = uint64_t{s_.opts.devices} + s_.opts.subscribers;
    return static_cast<uint32_t>(std::min<uint64_t>(250, total / 20000 + 1));
}

// Closes the socket. Unacknowledged QoS 1/2 messages are kept: with a resumed
// session they are retransmitted with the same packet id, otherwise sent anew.
void worker::close_conn(connection& c, bool is_error) {
    if (c.fd < 0) return;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
    if (c.state == conn_state::ready) {
        if (c.subscriber)
            stats.sub_ready.fetch_sub(1, std::memory_order_relaxed);
        else
            stats.ready.fetch_sub(1, std::memory_order_relaxed);
    }
    c.state = conn_state::idle;
    c.want_write = false;
    c.reading_paused = false;
    if (is_error) {
        stats.errors.fetch_add(1, std::memory_order_relaxed);
        const phase p = s_.now();
        if (p != phase::stopping && p != phase::offline) {
            stats.reconnects.fetch_add(1, std::memory_order_relaxed);
            timers_.push(timer{mono_ns() + backoff_ns(c), c.slot, 1});
        }
    }
}

void worker::on_events(connection& c, uint32_t ev) {
    if (c.fd < 0) return;
    if (c.state == conn_state::connecting) {
        if ((ev & (EPOLLERR | EPOLLHUP)) != 0) {
            close_conn(c, true);
            return;
        }
        if ((ev & EPOLLOUT) != 0) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                close_conn(c, true);
                return;
            }
            send_connect(c);
        }
        return;
    }
    if ((ev & EPOLLIN) != 0 || (ev & (EPOLLERR | EPOLLHUP)) != 0) read_conn(c);
    if (c.fd >= 0 && (ev & EPOLLOUT) != 0 && c.want_write) mark_dirty(c);
}

void worker::read_conn(connection& c) {
    static thread_local char buf[1 << 16];
    for (int rounds = 0; rounds < 8 && c.fd >= 0; ++rounds) {
        size_t want = sizeof buf;
        if (c.slow) {
            if (c.read_budget <= 0) {
                pause_reading(c, true);
                return;
            }
            want = std::min<size_t>(want, static_cast<size_t>(c.read_budget));
        }
        const ssize_t n = ::recv(c.fd, buf, want, 0);
        if (n == 0) {
            close_conn(c, s_.now() != phase::stopping);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            close_conn(c, true);
            return;
        }
        if (c.slow) c.read_budget -= n;
        c.decoder->feed(std::string_view(buf, static_cast<size_t>(n)));
        while (c.fd >= 0) {
            auto next = c.decoder->next();
            if (!next) {
                close_conn(c, true);
                return;
            }
            if (!next->has_value()) break;
            on_packet(c, **next);
        }
        if (static_cast<size_t>(n) < want) return;
    }
}

void worker::pause_reading(connection& c, bool pause) {
    if (c.fd < 0 || c.reading_paused == pause) return;
    c.reading_paused = pause;
    update_interest(c);
}

void worker::update_interest(connection& c) {
    epoll_event ev{};
    ev.events = (c.reading_paused ? 0u : static_cast<uint32_t>(EPOLLIN)) |
                (c.want_write ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.u32 = c.slot;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void worker::mark_dirty(connection& c) {
    if (c.fd < 0 || c.state == conn_state::connecting || c.in_dirty) return;
    c.in_dirty = true;
    dirty_.push_back(c.slot);
}

// Writes pending output; EPOLLOUT stays armed only while a socket is full.
void worker::flush_dirty() {
    for (int round = 0; round < 4 && !dirty_.empty(); ++round) {
        std::vector<uint32_t> todo;
        todo.swap(dirty_);
        for (uint32_t slot : todo) {
            connection& c = *conns[slot];
            c.in_dirty = false;
            if (c.fd < 0) continue;
            bool blocked = false;
            while (c.out_off < c.out.size()) {
                const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        blocked = true;
                        break;
                    }
                    close_conn(c, true);
                    break;
                }
                c.out_off += static_cast<size_t>(n);
            }
            if (c.fd < 0) continue;
            if (c.out_off == c.out.size()) {
                c.out.clear();
                c.out_off = 0;
            } else if (c.out_off > (1u << 20)) {
                c.out.erase(0, c.out_off);
                c.out_off = 0;
            }
            if (blocked != c.want_write) {
                c.want_write = blocked;
                update_interest(c);
            }
            if (!blocked) send_queued(c);
        }
    }
}

}  // namespace sluice::loadgen
