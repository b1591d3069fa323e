// SPDX-License-Identifier: Apache-2.0
//
// The worker's sockets (see worker.h): non-blocking connects spread over loopback source
// addresses, reconnect backoff, reads (throttled for the slow subscriber) fed to the MQTT
// decoder, and output batched per loop iteration with EPOLLOUT armed only while full. With
// --transport tls | ws | wss the bytes pass through the connection's link (transport.h) on
// their way: after TCP connects, the link's handshakes, then CONNECT.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string_view>
#include <system_error>

#include "base/assert.h"
#include "worker.h"

namespace sluice::loadgen {
namespace {

// MQTT bytes handed to a link at once: its wire form is sent before more are taken.
constexpr size_t k_link_chunk = size_t{256} * 1024;

}  // namespace

void worker::open_conn(connection& c) {
    if (c.fd >= 0) return;
    if (!c.subscriber && (s_.now() == phase::offline)) return;
    c.connect_started = mono_ns();
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
    if (s_.links) c.link = s_.links->new_link();
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
    c.link.reset();
    c.wire.clear();
    c.wire_off = 0;
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
            if (c.link) {
                c.state = conn_state::handshake;
                c.link->start(c.wire);
                mark_dirty(c);
            } else {
                send_connect(c);
            }
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
            if (c.state == conn_state::handshake) {
                report_link_error(c, c.link->error().empty() ? "the broker closed the connection during the TLS "
                                                               "handshake or WebSocket upgrade"
                                                             : c.link->error());
            }
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
        std::string_view data(buf, static_cast<size_t>(n));
        if (c.link) {
            if (!link_input(c, data)) {  // nothing for MQTT in these bytes (a handshake, a control frame)
                if (c.fd < 0 || static_cast<size_t>(n) < want) return;
                continue;
            }
            data = link_app_;
        }
        c.decoder->feed(data);
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
            if (c.link) blocked = write_link(c);
            while (!c.link && c.out_off < c.out.size()) {
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

// Sends the link's wire bytes, taking MQTT bytes from `out` through the link whenever
// they are all sent. Returns true when the socket is full (false also when it failed and
// the connection is closed).
bool worker::write_link(connection& c) {
    while (c.fd >= 0) {
        if (c.wire_off < c.wire.size()) {
            const ssize_t n = ::send(c.fd, c.wire.data() + c.wire_off, c.wire.size() - c.wire_off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
                close_conn(c, true);
                return false;
            }
            c.wire_off += static_cast<size_t>(n);
            continue;
        }
        c.wire.clear();
        c.wire_off = 0;
        if (!c.link->ready() || c.out_off == c.out.size()) return false;
        const size_t chunk = std::min(c.out.size() - c.out_off, k_link_chunk);
        c.link->on_app(std::string_view(c.out).substr(c.out_off, chunk), c.wire);
        c.out_off += chunk;
    }
    return false;
}

// Bytes read from a link's socket: what the link answers is queued for writing, CONNECT
// follows the last handshake, and the MQTT bytes are left in link_app_. Returns false when
// there are none (the connection may have been closed: a failed link).
bool worker::link_input(connection& c, std::string_view data) {
    link_app_.clear();
    const bool was_ready = c.link->ready();
    const bool ok = c.link->on_wire(data, link_app_, c.wire);
    if (!ok) {
        link_failed(c);
        return false;
    }
    if (!c.wire.empty()) mark_dirty(c);
    if (!was_ready && c.link->ready()) {
        const std::string tls = c.link->tls_description();
        if (!tls.empty()) {
            const sluice::mutex_lock lock(s_.tls_mutex);
            if (s_.tls_description.empty()) s_.tls_description = tls;
        }
        send_connect(c);
    }
    return !link_app_.empty();
}

// The link gave up: its last words (an alert, a close frame) are sent if the socket
// takes them, the first failure of the run is printed, and the connection closes.
void worker::link_failed(connection& c) {
    report_link_error(c, c.link->error());
    if (c.wire_off < c.wire.size()) {
        (void)::send(c.fd, c.wire.data() + c.wire_off, c.wire.size() - c.wire_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close_conn(c, s_.now() != phase::stopping);
}

void worker::report_link_error(const connection& c, const std::string& why) {
    if (s_.link_error_reported.exchange(true)) return;
    std::fprintf(stderr, "loadgen: %s: %s (further link failures are only counted as errors)\n", c.client_id.c_str(),
                 why.c_str());
}

// A clean end: DISCONNECT (and with a link its close frame and close_notify), sent as far
// as the socket takes it at once, then the socket closes.
void worker::goodbye(connection& c) {
    if (c.fd < 0) return;
    std::string bye;
    mqtt::encode(mqtt::packet{mqtt::disconnect{}}, s_.opts.protocol, bye);
    if (!c.link) {
        // Not behind a partly written packet, which it would corrupt.
        if (c.out_off == c.out.size()) (void)::send(c.fd, bye.data(), bye.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } else if (c.link->ready()) {
        c.out.append(bye);
        write_link(c);
        if (c.fd >= 0 && c.out_off == c.out.size() && c.wire_off == c.wire.size()) {
            c.link->on_close(c.wire);
            write_link(c);
        }
    }
    close_conn(c, false);
}

}  // namespace sluice::loadgen
