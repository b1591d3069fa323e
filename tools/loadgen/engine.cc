// SPDX-License-Identifier: Apache-2.0
//
// The load engine (see engine.h). Threading: the main thread only sets the phase and
// reads atomic counters; every connection, ledger and encoder is owned by one worker
// thread, which runs a level-triggered epoll loop with a timer heap. Ledgers are read
// by the main thread only after the workers have been joined.
#include "engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <thread>

#include "mqtt/codec.h"
#include "sluice_edge.h"
#include "verify_pg.h"

namespace sluice::loadgen {
namespace {

using clock_type = std::chrono::steady_clock;

int64_t mono_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

enum class phase : int { connecting, running, offline, reconnecting, draining, stopping };

// Counters a worker publishes for the progress line and the phase logic.
struct worker_stats {
    std::atomic<uint64_t> published{0}, acked{0}, rejected{0}, readings_sent{0}, readings_acked{0};
    std::atomic<uint64_t> readings_generated{0}, received{0}, errors{0}, reconnects{0}, sessions_resumed{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<int64_t> inflight{0}, queued{0}, ready{0}, sub_ready{0};
    histogram ack_latency;
};

struct shared_state {
    const options& opts;
    topic_template topics;
    std::string sub_filter;
    sockaddr_in broker{};
    std::atomic<int> current{static_cast<int>(phase::connecting)};
    std::atomic<double> rate_scale{1.0};
    std::atomic<uint32_t> workers_draining{0};  // workers that have closed their open batches
    send_ledger sends;
    explicit shared_state(const options& o)
        : opts(o), topics(o.topic, o.device_prefix), sends(o.devices) {}
    phase now() const { return static_cast<phase>(current.load(std::memory_order_acquire)); }
};

struct pending {
    uint32_t device = 0;
    uint64_t seq = 0;
    uint32_t readings = 0;
    std::string payload;
    uint16_t packet_id = 0;
    bool released = false;  // QoS 2: PUBREC seen, PUBREL sent
    bool ever_sent = false;
    int64_t sent_mono = 0;
};

class worker;

enum class conn_state : uint8_t { idle, connecting, wait_connack, wait_suback, ready };

struct connection {
    worker* owner = nullptr;
    bool subscriber = false;
    uint32_t index = 0;      // device index, or subscriber index
    uint32_t slot = 0;       // position in the worker's vector
    int fd = -1;
    conn_state state = conn_state::idle;
    bool want_write = false;   // EPOLLOUT armed
    bool in_dirty = false;     // listed for flush_dirty()
    bool had_session = false;  // a CONNECT with clean start false has succeeded before
    uint32_t failures = 0;     // consecutive connection failures, for the backoff
    std::string client_id;
    std::string topic;
    std::optional<mqtt::stream_decoder> decoder;
    std::string out;
    size_t out_off = 0;
    uint16_t next_pid = 1;
    uint32_t max_inflight = 1;
    std::deque<pending> queue;
    std::vector<pending> inflight;
    // publishing device
    std::vector<uint8_t> batch_buf;
    std::optional<sluice_edge::batch_encoder> encoder;
    std::string json_batch;
    uint32_t json_count = 0;
    int64_t json_first_ms = 0;
    uint64_t next_seq = 0;
    uint64_t reading_no = 0;
    int64_t next_reading = 0;  // mono ns
    // subscriber
    std::unique_ptr<receive_ledger> ledger;
    bool slow = false;
    int64_t read_budget = 0;
    bool reading_paused = false;
    std::vector<uint16_t> qos2_received;  // subscriber QoS 2: ids awaiting PUBREL
};

struct timer {
    int64_t when;
    uint32_t slot;
    uint8_t kind;  // 0 reading, 1 connect
    bool operator>(const timer& o) const { return when > o.when; }
};

class worker {
public:
    worker(shared_state& s, uint32_t id) : s_(s), id_(id) {}
    worker_stats stats;
    std::vector<std::unique_ptr<connection>> conns;

    void add_publisher(uint32_t device) {
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
    void add_subscriber(uint32_t index, bool slow) {
        auto c = std::make_unique<connection>();
        c->subscriber = true;
        c->index = index;
        c->slow = slow;
        c->client_id = s_.opts.client_prefix + "-sub-" + std::to_string(index);
        c->ledger = std::make_unique<receive_ledger>(s_.opts.devices);
        add(std::move(c));
    }

    void start() { thread_ = std::thread([this] { loop(); }); }
    void join() {
        if (thread_.joinable()) thread_.join();
    }

private:
    void add(std::unique_ptr<connection> c) {
        c->owner = this;
        c->slot = static_cast<uint32_t>(conns.size());
        conns.push_back(std::move(c));
    }

    void loop() {
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        SLUICE_CHECK(epfd_ >= 0, "epoll_create1: %s", std::strerror(errno));
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
            if (p == phase::running && s_.opts.rate <= 0) pump();
            if (now >= next_housekeeping_) housekeeping(now);
            flush_dirty();
        }
        for (auto& c : conns) {
            if (c->fd >= 0) ::close(c->fd);
            c->fd = -1;
        }
        ::close(epfd_);
    }

    void on_phase(phase from, phase to) {
        const int64_t now = mono_ns();
        if (to == phase::running && from == phase::connecting) {
            // Spread the first reading of each device over one interval.
            std::mt19937 rng(id_ * 7919u + 17u);
            for (auto& c : conns) {
                if (c->subscriber) continue;
                if (s_.opts.rate > 0) {
                    const auto interval = static_cast<int64_t>(1e9 / s_.opts.rate);
                    c->next_reading = now + static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, interval)));
                    timers_.push(timer{c->next_reading, c->slot, 0});
                } else {
                    pumping_ = true;
                }
            }
        }
        if (to == phase::offline) {
            for (auto& c : conns) {
                if (c->subscriber || c->fd < 0) continue;
                std::string bye;
                mqtt::encode(mqtt::packet{mqtt::disconnect{}}, s_.opts.protocol, bye);
                (void)::send(c->fd, bye.data(), bye.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                close_conn(*c, false);
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

    // --- connections --------------------------------------------------------------------

    void open_conn(connection& c) {
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
        SLUICE_CHECK(epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl: %s", std::strerror(errno));
    }

    // 200 ms doubling to 6.4 s, with jitter, so a refusing broker is not hammered.
    int64_t backoff_ns(connection& c) {
        const uint32_t step = std::min<uint32_t>(c.failures++, 5);
        const int64_t base = int64_t{200'000'000} << step;
        return base + static_cast<int64_t>(jitter_() % static_cast<uint64_t>(base / 2 + 1));
    }

    uint32_t source_addrs() const {
        if (s_.opts.source_addrs > 0) return s_.opts.source_addrs;
        const uint64_t total = uint64_t{s_.opts.devices} + s_.opts.subscribers;
        return static_cast<uint32_t>(std::min<uint64_t>(250, total / 20000 + 1));
    }

    // Closes the socket. Unacknowledged QoS 1/2 messages are kept: with a resumed
    // session they are retransmitted with the same packet id, otherwise sent anew.
    void close_conn(connection& c, bool is_error) {
        if (c.fd < 0) return;
        epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
        if (c.state == conn_state::ready) {
            if (c.subscriber) stats.sub_ready.fetch_sub(1, std::memory_order_relaxed);
            else stats.ready.fetch_sub(1, std::memory_order_relaxed);
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

    void send_connect(connection& c) {
        mqtt::connect p;
        p.protocol = s_.opts.protocol;
        p.client_id = c.client_id;
        p.keep_alive = s_.opts.keep_alive;
        const bool persistent = s_.opts.persistent;
        p.clean_start = !persistent;
        if (persistent && s_.opts.protocol == mqtt::version::v5) p.props.session_expiry_interval = 3600;
        if (s_.opts.protocol == mqtt::version::v5) p.props.receive_maximum = 65535;
        mqtt::encode(mqtt::packet{std::move(p)}, s_.opts.protocol, c.out);
        c.state = conn_state::wait_connack;
        mark_dirty(c);
    }

    void on_events(connection& c, uint32_t ev) {
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

    void read_conn(connection& c) {
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

    void pause_reading(connection& c, bool pause) {
        if (c.fd < 0 || c.reading_paused == pause) return;
        c.reading_paused = pause;
        update_interest(c);
    }

    void update_interest(connection& c) {
        epoll_event ev{};
        ev.events = (c.reading_paused ? 0u : static_cast<uint32_t>(EPOLLIN)) |
                    (c.want_write ? static_cast<uint32_t>(EPOLLOUT) : 0u);
        ev.data.u32 = c.slot;
        epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    void on_packet(connection& c, mqtt::packet& pkt) {
        switch (mqtt::type_of(pkt)) {
            case mqtt::packet_type::connack: on_connack(c, std::get<mqtt::connack>(pkt)); break;
            case mqtt::packet_type::suback: on_suback(c, std::get<mqtt::suback>(pkt)); break;
            case mqtt::packet_type::publish: on_publish(c, std::get<mqtt::publish>(pkt)); break;
            case mqtt::packet_type::puback: {
                const auto& a = std::get<mqtt::puback>(pkt);
                on_ack(c, a.packet_id, static_cast<uint8_t>(a.code) < 0x80);
                break;
            }
            case mqtt::packet_type::pubrec: on_pubrec(c, std::get<mqtt::pubrec>(pkt)); break;
            case mqtt::packet_type::pubcomp: {
                const auto& a = std::get<mqtt::pubcomp>(pkt);
                on_ack(c, a.packet_id, static_cast<uint8_t>(a.code) < 0x80);
                break;
            }
            case mqtt::packet_type::pubrel: {
                const auto id = std::get<mqtt::pubrel>(pkt).packet_id;
                std::erase(c.qos2_received, id);
                mqtt::encode(mqtt::packet{mqtt::pubcomp{id, {}, {}}}, s_.opts.protocol, c.out);
                mark_dirty(c);
                break;
            }
            case mqtt::packet_type::pingresp: break;
            case mqtt::packet_type::disconnect: close_conn(c, true); break;
            default:
                close_conn(c, true);
                break;
        }
    }

    void on_connack(connection& c, const mqtt::connack& a) {
        if (c.state != conn_state::wait_connack || static_cast<uint8_t>(a.code) >= 0x80) {
            close_conn(c, true);
            return;
        }
        c.failures = 0;
        c.max_inflight = s_.opts.max_inflight;
        if (a.props.receive_maximum) c.max_inflight = std::min<uint32_t>(c.max_inflight, *a.props.receive_maximum);
        if (a.session_present) stats.sessions_resumed.fetch_add(1, std::memory_order_relaxed);
        if (c.subscriber) {
            mqtt::subscribe sub;
            sub.packet_id = 1;
            sub.entries.push_back(mqtt::subscription{s_.sub_filter, static_cast<uint8_t>(s_.opts.sub_qos), false, false, 0});
            mqtt::encode(mqtt::packet{std::move(sub)}, s_.opts.protocol, c.out);
            c.state = conn_state::wait_suback;
            mark_dirty(c);
            return;
        }
        c.state = conn_state::ready;
        stats.ready.fetch_add(1, std::memory_order_relaxed);
        // Unacknowledged messages: same packet ids when the broker kept the session,
        // otherwise back to the queue as new messages.
        if (a.session_present) {
            for (auto& m : c.inflight) {
                if (m.released) {
                    mqtt::encode(mqtt::packet{mqtt::pubrel{m.packet_id, {}, {}}}, s_.opts.protocol, c.out);
                } else {
                    write_publish(c, m, true);
                }
            }
        } else {
            for (auto it = c.inflight.rbegin(); it != c.inflight.rend(); ++it) {
                it->packet_id = 0;
                it->released = false;
                c.queue.push_front(std::move(*it));
                stats.queued.fetch_add(1, std::memory_order_relaxed);
            }
            stats.inflight.fetch_sub(static_cast<int64_t>(c.inflight.size()), std::memory_order_relaxed);
            c.inflight.clear();
        }
        c.had_session = true;
        send_queued(c);
        mark_dirty(c);
    }

    void on_suback(connection& c, const mqtt::suback& a) {
        if (c.state != conn_state::wait_suback || a.codes.empty() || static_cast<uint8_t>(a.codes[0]) >= 0x80) {
            close_conn(c, true);
            return;
        }
        c.state = conn_state::ready;
        stats.sub_ready.fetch_add(1, std::memory_order_relaxed);
    }

    void on_publish(connection& c, const mqtt::publish& p) {
        if (p.qos == 1) {
            mqtt::encode(mqtt::packet{mqtt::puback{p.packet_id, {}, {}}}, s_.opts.protocol, c.out);
            mark_dirty(c);
        } else if (p.qos == 2) {
            mqtt::encode(mqtt::packet{mqtt::pubrec{p.packet_id, {}, {}}}, s_.opts.protocol, c.out);
            mark_dirty(c);
            // Exactly-once on the wire: a resent PUBLISH before PUBREL is the same message.
            if (std::find(c.qos2_received.begin(), c.qos2_received.end(), p.packet_id) != c.qos2_received.end()) return;
            c.qos2_received.push_back(p.packet_id);
        }
        if (!c.ledger) return;
        // The slow subscriber is reported on its own; the drain waits for the others.
        if (!c.slow) stats.received.fetch_add(1, std::memory_order_relaxed);
        const int64_t now_ns = unix_now_ns();
        switch (s_.opts.format) {
            case payload_kind::raw: {
                const auto t = decode_raw(p.payload);
                if (!t) break;
                c.ledger->on_message(t->device, t->seq, (now_ns - t->time_ns) / 1000);
                return;
            }
            case payload_kind::binary:
            case payload_kind::json: {
                const auto device = s_.topics.device_of(p.topic);
                const auto t = s_.opts.format == payload_kind::binary ? decode_binary_truth(p.payload)
                                                                     : decode_json_truth(p.payload);
                if (!device || !t) break;
                c.ledger->on_message(*device, t->seq, (now_ns / 1'000'000 - t->newest_ms) * 1000);
                return;
            }
        }
        c.ledger->on_foreign();
    }

    void on_pubrec(connection& c, const mqtt::pubrec& a) {
        auto it = std::find_if(c.inflight.begin(), c.inflight.end(), [&](const pending& m) { return m.packet_id == a.packet_id; });
        if (it == c.inflight.end()) return;
        if (static_cast<uint8_t>(a.code) >= 0x80) {
            on_ack(c, a.packet_id, false);
            return;
        }
        it->released = true;
        mqtt::encode(mqtt::packet{mqtt::pubrel{a.packet_id, {}, {}}}, s_.opts.protocol, c.out);
        mark_dirty(c);
    }

    void on_ack(connection& c, uint16_t id, bool success) {
        auto it = std::find_if(c.inflight.begin(), c.inflight.end(), [&](const pending& m) { return m.packet_id == id; });
        if (it == c.inflight.end()) return;  // a late duplicate ack
        if (success) {
            s_.sends.on_acked(it->device, it->seq, it->readings);
            stats.acked.fetch_add(1, std::memory_order_relaxed);
            stats.readings_acked.fetch_add(it->readings, std::memory_order_relaxed);
            stats.ack_latency.record((mono_ns() - it->sent_mono) / 1000);
        } else {
            stats.rejected.fetch_add(1, std::memory_order_relaxed);
        }
        c.inflight.erase(it);
        stats.inflight.fetch_sub(1, std::memory_order_relaxed);
        send_queued(c);
    }

    // --- producing ----------------------------------------------------------------------

    void enqueue(connection& c, pending m) {
        if (c.queue.size() >= s_.opts.max_queue) {
            stats.dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        c.queue.push_back(std::move(m));
        stats.queued.fetch_add(1, std::memory_order_relaxed);
        send_queued(c);
    }

    void flush_batch(connection& c) {
        pending m;
        m.device = c.index;
        if (c.encoder) {
            const auto p = c.encoder->finish();
            if (p.size == 0) return;
            const auto t = decode_binary_truth(std::string_view(reinterpret_cast<const char*>(p.data), p.size));
            SLUICE_CHECK(t.has_value(), "the edge encoder produced a payload we cannot parse");
            m.seq = t->seq;
            m.readings = t->readings;
            m.payload.assign(reinterpret_cast<const char*>(p.data), p.size);
        } else if (s_.opts.format == payload_kind::json) {
            if (c.json_count == 0) return;
            m.seq = c.next_seq++;
            m.readings = c.json_count;
            m.payload = "{\"seq\":" + std::to_string(m.seq) + ",\"readings\":[" + c.json_batch + "]}";
            c.json_batch.clear();
            c.json_count = 0;
        } else {
            return;
        }
        enqueue(c, std::move(m));
    }

    bool batch_due(const connection& c, int64_t now_ms) const {
        if (c.encoder) return c.encoder->should_flush(static_cast<uint64_t>(now_ms), s_.opts.flush_ms);
        if (s_.opts.format == payload_kind::json) {
            return c.json_count > 0 && now_ms - c.json_first_ms >= static_cast<int64_t>(s_.opts.flush_ms);
        }
        return false;
    }

    // One reading (binary/json) or one message (raw), stamped now.
    void produce(connection& c) {
        const int64_t now_ns = unix_now_ns();
        const int64_t now_ms = now_ns / 1'000'000;
        stats.readings_generated.fetch_add(1, std::memory_order_relaxed);
        const uint32_t metric = static_cast<uint32_t>(c.reading_no % s_.opts.metrics) + 1;
        const double value = 20.0 + static_cast<double>((c.reading_no * 37 + c.index) % 1000) / 100.0;
        ++c.reading_no;
        if (s_.opts.format == payload_kind::raw) {
            pending m;
            m.device = c.index;
            m.seq = c.next_seq++;
            m.readings = 1;
            encode_raw(truth{c.index, m.seq, now_ns}, s_.opts.payload_size, m.payload);
            enqueue(c, std::move(m));
            return;
        }
        // Firmware-like batching: add the reading, then publish the batch when it is half
        // full (flush_bytes) or its oldest reading is flush_ms old.
        if (c.encoder) {
            auto st = c.encoder->add_rounded(metric, static_cast<uint64_t>(now_ms), value, 2);
            if (st == sluice_edge::add_status::full || st == sluice_edge::add_status::bad_time) {
                flush_batch(c);
                st = c.encoder->add_rounded(metric, static_cast<uint64_t>(now_ms), value, 2);
            }
            if (st == sluice_edge::add_status::added_flush || batch_due(c, now_ms)) flush_batch(c);
            return;
        }
        char item[96];
        const int n = std::snprintf(item, sizeof item, "%s{\"ts\":%lld,\"m%u\":%.2f}", c.json_count ? "," : "",
                                    static_cast<long long>(now_ms), metric, value);
        if (c.json_count == 0) c.json_first_ms = now_ms;
        c.json_batch.append(item, static_cast<size_t>(n));
        ++c.json_count;
        if (c.json_batch.size() + 32 >= s_.opts.flush_bytes || batch_due(c, now_ms)) flush_batch(c);
    }

    void run_timers(int64_t now, phase p) {
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
            while (c.next_reading <= now && guard++ < std::max<int64_t>(1, 1'000'000'000 / std::max<int64_t>(1, interval))) {
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
    void pump() {
        for (auto& cp : conns) {
            connection& c = *cp;
            if (c.subscriber || c.state != conn_state::ready) continue;
            for (int i = 0; i < 64 && room(c) && c.queue.empty(); ++i) produce(c);
        }
    }

    bool room(const connection& c) const {
        if (s_.opts.qos == 0) return c.out.size() - c.out_off < (1u << 16);
        return c.inflight.size() < c.max_inflight;
    }

    void send_queued(connection& c) {
        if (c.state != conn_state::ready || c.subscriber) return;
        bool wrote = false;
        while (!c.queue.empty() && room(c)) {
            pending m = std::move(c.queue.front());
            c.queue.pop_front();
            stats.queued.fetch_sub(1, std::memory_order_relaxed);
            if (s_.opts.qos > 0) {
                do {
                    m.packet_id = c.next_pid++;
                    if (c.next_pid == 0) c.next_pid = 1;
                } while (std::any_of(c.inflight.begin(), c.inflight.end(), [&](const pending& x) { return x.packet_id == m.packet_id; }));
            }
            write_publish(c, m, false);
            if (s_.opts.qos > 0) {
                c.inflight.push_back(std::move(m));
                stats.inflight.fetch_add(1, std::memory_order_relaxed);
            }
            wrote = true;
        }
        if (wrote) mark_dirty(c);
    }

    void write_publish(connection& c, pending& m, bool dup) {
        mqtt::publish p;
        p.topic = c.topic;
        p.qos = s_.opts.qos;
        p.dup = dup;
        p.packet_id = m.packet_id;
        mqtt::encode_publish_header(p, m.payload.size(), s_.opts.protocol, c.out);
        c.out.append(m.payload);
        m.sent_mono = mono_ns();
        if (!m.ever_sent) {
            m.ever_sent = true;
            s_.sends.on_sent(m.device, m.seq);
            stats.published.fetch_add(1, std::memory_order_relaxed);
            stats.readings_sent.fetch_add(m.readings, std::memory_order_relaxed);
        }
        mark_dirty(c);
    }

    void housekeeping(int64_t now) {
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

    void mark_dirty(connection& c) {
        if (c.fd < 0 || c.state == conn_state::connecting || c.in_dirty) return;
        c.in_dirty = true;
        dirty_.push_back(c.slot);
    }

    // Writes pending output; EPOLLOUT stays armed only while a socket is full.
    void flush_dirty() {
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

    shared_state& s_;
    uint32_t id_;
    int epfd_ = -1;
    std::thread thread_;
    std::priority_queue<timer, std::vector<timer>, std::greater<>> timers_;
    std::vector<uint32_t> dirty_;
    bool pumping_ = false;
    std::mt19937_64 jitter_{0x5eed};
    int64_t next_housekeeping_ = 0;
    int64_t next_ping_ = 0;
    bool next_ping_done_ = false;
};

struct totals {
    uint64_t published = 0, acked = 0, rejected = 0, readings_sent = 0, readings_acked = 0, generated = 0;
    uint64_t received = 0, errors = 0, reconnects = 0, resumed = 0, dropped = 0;
    int64_t inflight = 0, queued = 0, ready = 0, sub_ready = 0;
};

totals sum(const std::vector<std::unique_ptr<worker>>& ws) {
    totals t;
    for (const auto& w : ws) {
        const worker_stats& s = w->stats;
        t.published += s.published.load(std::memory_order_relaxed);
        t.acked += s.acked.load(std::memory_order_relaxed);
        t.rejected += s.rejected.load(std::memory_order_relaxed);
        t.readings_sent += s.readings_sent.load(std::memory_order_relaxed);
        t.readings_acked += s.readings_acked.load(std::memory_order_relaxed);
        t.generated += s.readings_generated.load(std::memory_order_relaxed);
        t.received += s.received.load(std::memory_order_relaxed);
        t.errors += s.errors.load(std::memory_order_relaxed);
        t.reconnects += s.reconnects.load(std::memory_order_relaxed);
        t.resumed += s.sessions_resumed.load(std::memory_order_relaxed);
        t.dropped += s.dropped.load(std::memory_order_relaxed);
        t.inflight += s.inflight.load(std::memory_order_relaxed);
        t.queued += s.queued.load(std::memory_order_relaxed);
        t.ready += s.ready.load(std::memory_order_relaxed);
        t.sub_ready += s.sub_ready.load(std::memory_order_relaxed);
    }
    return t;
}

histogram merged_ack_latency(const std::vector<std::unique_ptr<worker>>& ws) {
    histogram h;
    for (const auto& w : ws) h.merge(w->stats.ack_latency);
    return h;
}

double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

class progress {
public:
    progress(const options& o, const std::vector<std::unique_ptr<worker>>& ws) : opts_(o), ws_(ws) {}
    // Prints one line when a second has passed since the last one.
    void tick(const char* label) {
        const auto now = clock_type::now();
        if (now - last_ < std::chrono::seconds(1)) return;
        const double dt = std::chrono::duration<double>(now - last_).count();
        const totals t = sum(ws_);
        histogram h = merged_ack_latency(ws_);
        histogram window = h;
        window.subtract(prev_hist_);
        if (!opts_.quiet && started_) {
            std::fprintf(stderr,
                         "[%s] pub %.0f/s ack %.0f/s recv %.0f/s | acked %llu inflight %lld queued %lld | conn %lld+%lld "
                         "err %llu | ack p50 %.2fms p99 %.2fms\n",
                         label, static_cast<double>(t.published - prev_.published) / dt,
                         static_cast<double>(t.acked - prev_.acked) / dt, static_cast<double>(t.received - prev_.received) / dt,
                         static_cast<unsigned long long>(t.acked), static_cast<long long>(t.inflight),
                         static_cast<long long>(t.queued), static_cast<long long>(t.ready),
                         static_cast<long long>(t.sub_ready), static_cast<unsigned long long>(t.errors),
                         static_cast<double>(window.percentile(0.5)) / 1000.0,
                         static_cast<double>(window.percentile(0.99)) / 1000.0);
        }
        started_ = true;
        prev_ = t;
        prev_hist_ = h;
        last_ = now;
    }

private:
    const options& opts_;
    const std::vector<std::unique_ptr<worker>>& ws_;
    clock_type::time_point last_ = clock_type::now();
    totals prev_;
    histogram prev_hist_;
    bool started_ = false;
};

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Raises the soft open-file limit towards `wanted`; returns the limit now in force.
uint64_t raise_fd_limit(uint64_t wanted) {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
    if (lim.rlim_cur < wanted) {
        lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(wanted));
        (void)setrlimit(RLIMIT_NOFILE, &lim);
        (void)getrlimit(RLIMIT_NOFILE, &lim);
    }
    return lim.rlim_cur;
}

}  // namespace

result<results> run(const options& opts) {
    shared_state s(opts);
    s.sub_filter = opts.sub_filter.empty() ? s.topics.filter() : opts.sub_filter;
    s.broker.sin_family = AF_INET;
    s.broker.sin_port = htons(opts.port);
    if (inet_pton(AF_INET, opts.host.c_str(), &s.broker.sin_addr) != 1) {
        addrinfo hints{};
        hints.ai_family = AF_INET;
        addrinfo* res = nullptr;
        if (getaddrinfo(opts.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
            return std::make_error_code(std::errc::invalid_argument);
        }
        s.broker.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    const uint32_t subs = opts.subscribe ? opts.subscribers : 0;
    const uint64_t fds_needed = uint64_t{opts.devices} + subs + 64;
    const uint64_t fd_limit = raise_fd_limit(fds_needed + 1024);
    if (fd_limit < fds_needed) {
        std::fprintf(stderr, "loadgen: %llu connections need %llu open files but the limit is %llu (ulimit -Hn)\n",
                     static_cast<unsigned long long>(uint64_t{opts.devices} + subs),
                     static_cast<unsigned long long>(fds_needed), static_cast<unsigned long long>(fd_limit));
        return std::make_error_code(std::errc::too_many_files_open);
    }

    std::vector<std::unique_ptr<worker>> ws;
    for (uint32_t i = 0; i < opts.threads; ++i) ws.push_back(std::make_unique<worker>(s, i));
    // Subscribers round robin from worker 0, publishers continue where they stopped,
    // so with several threads the fan-in subscriber does not share a loop with the
    // first publishers.
    uint32_t next = 0;
    for (uint32_t i = 0; i < subs; ++i) {
        ws[next % opts.threads]->add_subscriber(i, opts.kind == scenario::slow_subscriber && i == 0);
        ++next;
    }
    for (uint32_t d = 0; d < opts.devices; ++d) {
        ws[next % opts.threads]->add_publisher(d);
        ++next;
    }
    results r;
    r.scenario = to_string(opts.kind);
    r.connections = uint64_t{opts.devices} + subs;
    r.subscribed = subs > 0;

    progress prog(opts, ws);
    const int64_t started_us = unix_now_ns() / 1000 - 1'000'000;
    const auto t_connect = clock_type::now();
    for (auto& w : ws) w->start();
    // Phase 1: every connection up (bounded).
    const double connect_budget = 30.0 + static_cast<double>(r.connections) / opts.connect_rate * 2;
    while (true) {
        const totals t = sum(ws);
        if (t.ready == static_cast<int64_t>(opts.devices) && t.sub_ready == static_cast<int64_t>(subs)) break;
        if (seconds_since(t_connect) > connect_budget) {
            std::fprintf(stderr, "loadgen: only %lld/%u publishers and %lld/%u subscribers connected after %.0fs\n",
                         static_cast<long long>(t.ready), opts.devices, static_cast<long long>(t.sub_ready), subs,
                         connect_budget);
            break;
        }
        prog.tick("connect");
        sleep_ms(10);
    }
    r.connect_s = seconds_since(t_connect);

    // Phase 2: load.
    const totals before = sum(ws);
    const histogram ack_before = merged_ack_latency(ws);
    const auto t_run = clock_type::now();
    s.current.store(static_cast<int>(phase::running), std::memory_order_release);

    auto wait_for = [&](double seconds, const char* label) {
        const auto until = clock_type::now() + std::chrono::duration<double>(seconds);
        while (clock_type::now() < until) {
            prog.tick(label);
            sleep_ms(20);
        }
    };

    if (opts.kind == scenario::ramp) {
        double scale = 1.0;
        for (uint32_t step = 0; step < opts.max_steps; ++step) {
            s.rate_scale.store(scale, std::memory_order_relaxed);
            const totals a = sum(ws);
            const histogram ha = merged_ack_latency(ws);
            wait_for(opts.step_s, "ramp");
            const totals b = sum(ws);
            histogram hb = merged_ack_latency(ws);
            hb.subtract(ha);
            ramp_step st;
            st.offered_readings_per_s = static_cast<double>(b.generated - a.generated) / opts.step_s;
            st.acked_readings_per_s = static_cast<double>(opts.qos > 0 ? b.readings_acked - a.readings_acked
                                                                       : b.readings_sent - a.readings_sent) / opts.step_s;
            st.acked_msgs_per_s = static_cast<double>(b.acked - a.acked) / opts.step_s;
            st.ack_p99_us = hb.percentile(0.99);
            // Edge batching delays acks by up to flush_ms, so acked < offered within a step
            // even when the broker keeps up. The step passes while payloads do not pile up
            // behind the inflight window (at most one queued per device), nothing was
            // dropped or refused, no connection failed, and ack p99 is within the bound.
            st.backlog = static_cast<uint64_t>(std::max<int64_t>(0, b.queued));
            st.passed = st.backlog <= opts.devices && b.errors == a.errors && b.dropped == a.dropped &&
                        b.rejected == a.rejected && static_cast<double>(st.ack_p99_us) <= opts.max_latency_ms * 1000.0;
            r.steps.push_back(st);
            if (!opts.quiet) {
                std::fprintf(stderr, "ramp step %u: offered %.0f readings/s, acked %.0f readings/s, backlog %llu, ack p99 %.2fms -> %s\n",
                             step, st.offered_readings_per_s, st.acked_readings_per_s,
                             static_cast<unsigned long long>(st.backlog), static_cast<double>(st.ack_p99_us) / 1000.0,
                             st.passed ? "ok" : "limit");
            }
            if (!st.passed) break;
            r.max_loss_free_readings_per_s = st.offered_readings_per_s;
            scale *= opts.ramp_factor;
        }
    } else if (opts.kind == scenario::storm) {
        wait_for(opts.warmup_s, "warmup");
        s.current.store(static_cast<int>(phase::offline), std::memory_order_release);
        wait_for(opts.offline_s, "offline");
        const totals at_storm = sum(ws);
        r.storm_backlog_peak = static_cast<uint64_t>(std::max<int64_t>(0, at_storm.queued));
        r.storm_backlog_unacked = r.storm_backlog_peak + static_cast<uint64_t>(std::max<int64_t>(0, at_storm.inflight));
        const auto t_storm = clock_type::now();
        s.current.store(static_cast<int>(phase::reconnecting), std::memory_order_release);
        bool all_connected = false;
        bool sent = false;
        bool acked = false;
        bool delivered = !opts.subscribe;
        while (seconds_since(t_storm) < opts.duration_s + 30) {
            const totals t = sum(ws);
            const double now_s = seconds_since(t_storm);
            if (!all_connected && t.ready == static_cast<int64_t>(opts.devices)) {
                all_connected = true;
                r.storm_reconnect_s = now_s;
            }
            if (all_connected && !sent && t.queued == 0) {
                sent = true;
                r.storm_drain_s = now_s;
            }
            if (!acked && t.acked - at_storm.acked >= r.storm_backlog_unacked) {
                acked = true;
                r.storm_acked_s = now_s;
            }
            if (!delivered && t.received - at_storm.received >= r.storm_backlog_unacked) {
                delivered = true;
                r.storm_delivered_s = now_s;
            }
            if (sent && acked && delivered) break;
            prog.tick("storm");
            sleep_ms(5);
        }
        wait_for(1.0, "storm");
    } else {
        wait_for(opts.duration_s, opts.kind == scenario::fanin ? "fanin" : to_string(opts.kind));
    }
    r.run_s = seconds_since(t_run);
    const totals after = sum(ws);
    histogram run_acks = merged_ack_latency(ws);
    run_acks.subtract(ack_before);

    // Phase 3: stop producing, wait for acks, then for deliveries (bounded).
    const auto t_drain = clock_type::now();
    s.current.store(static_cast<int>(phase::draining), std::memory_order_release);
    uint64_t last_received = 0;
    auto last_progress = clock_type::now();
    while (seconds_since(t_drain) < opts.drain_timeout_s) {
        const totals t = sum(ws);
        const bool acks_done = s.workers_draining.load(std::memory_order_acquire) == opts.threads && t.queued == 0 &&
                               t.inflight == 0;
        const uint32_t counted_subs = subs - (opts.kind == scenario::slow_subscriber ? 1 : 0);
        const uint64_t expected = (opts.qos > 0 ? t.acked : t.published) * counted_subs;
        if (t.received != last_received) {
            last_received = t.received;
            last_progress = clock_type::now();
        }
        const bool deliveries_done = subs == 0 || t.received >= expected ||
                                     seconds_since(last_progress) > (opts.qos > 0 ? 3.0 : 1.0);
        if (acks_done && deliveries_done) break;
        prog.tick("drain");
        sleep_ms(10);
    }
    r.drain_s = seconds_since(t_drain);
    s.current.store(static_cast<int>(phase::stopping), std::memory_order_release);
    for (auto& w : ws) w->join();

    const totals end = sum(ws);
    r.published = end.published;
    r.acked = end.acked;
    r.rejected = end.rejected;
    r.readings_sent = end.readings_sent;
    r.readings_acked = end.readings_acked;
    r.dropped_queue_full = end.dropped;
    r.errors = end.errors;
    r.reconnects = end.reconnects;
    r.sessions_resumed = end.resumed;
    r.ack_latency = merged_ack_latency(ws);
    const double run_s = std::max(r.run_s, 1e-9);
    if (opts.qos > 0) {
        r.msgs_per_s = static_cast<double>(after.acked - before.acked) / run_s;
        r.readings_per_s = static_cast<double>(after.readings_acked - before.readings_acked) / run_s;
    } else {
        r.msgs_per_s = static_cast<double>(after.published - before.published) / run_s;
        r.readings_per_s = static_cast<double>(after.readings_sent - before.readings_sent) / run_s;
    }
    r.received_per_s = static_cast<double>(after.received - before.received) / run_s;
    (void)run_acks;
    for (auto& w : ws) {
        for (auto& c : w->conns) {
            if (!c->subscriber) continue;
            const reconciliation one = reconcile(s.sends, *c->ledger);
            if (c->slow) {
                r.slow_received = one.received;
                r.slow_lost = one.lost;
                continue;
            }
            r.totals.sent = one.sent;
            r.totals.acked = one.acked;
            r.totals.received += one.received;
            r.totals.unique_received += one.unique_received;
            r.totals.duplicates += one.duplicates;
            r.totals.foreign += one.foreign;
            r.totals.lost += one.lost;
            r.totals.missing_unacked += one.missing_unacked;
            r.totals.gaps += one.gaps;
            r.totals.unexpected += one.unexpected;
            r.e2e_latency.merge(c->ledger->latency());
        }
    }
    if (!opts.verify_pg.empty()) {
        pg_expectation e;
        e.readings_acked = s.sends.acked_readings();
        e.device_prefix = opts.device_prefix;
        e.since_us = started_us;
        const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(opts.verify_timeout_s * 1000));
        auto v = verify_pg(opts.verify_pg, e, timeout, std::min(timeout, std::chrono::milliseconds(10'000)));
        if (!v) return v.error();
        r.pg = *v;
        r.verified_pg = true;
    }
    return r;
}

}  // namespace sluice::loadgen
