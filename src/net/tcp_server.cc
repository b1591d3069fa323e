// SPDX-License-Identifier: Apache-2.0
#include "net/tcp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <optional>
#include <unordered_set>

#include "base/errno_text.h"
#include "base/fifo.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/shard.h"
#include "broker/transport.h"
#include "mqtt/codec.h"
#include "net/accept_guard.h"
#include "net/connection_limits.h"
#include "net/stream_layer.h"
#include "net/tls.h"
#include "net/websocket.h"

namespace sluice::net {

class tcp_connection;

struct listener_spec {
    listener_options opts;
    // The layers a new connection on this listener gets (nullptr: plain TCP).
    std::unique_ptr<stream_layer> new_layers() const {
        if (!opts.websocket) return opts.tls ? opts.tls->new_layer() : nullptr;
        std::unique_ptr<stream_layer> ws = std::make_unique<websocket_layer>();
        if (!opts.tls) return ws;
        return stack_layers(opts.tls->new_layer(), std::move(ws));
    }
};

class loop_context;

// What a connection takes along when it moves to another loop, besides its socket.
struct carried_state {
    std::unique_ptr<connection_limits::admission> admission;
    std::unique_ptr<stream_layer> layer;  // TLS and/or WebSocket; nullptr for plain TCP
};

// One listener's socket on one loop.
class listener_socket final : public event_loop::handler {
public:
    listener_socket(loop_context& ctx, const listener_spec& spec, int fd) : ctx_(ctx), spec_(spec), fd_(fd) {}
    ~listener_socket() { close(); }
    listener_socket(const listener_socket&) = delete;
    listener_socket& operator=(const listener_socket&) = delete;

    void on_events(uint32_t events) override;  // readable: accept
    void start();
    void close();
    void resume();  // after a descriptor-exhaustion back-off

private:
    loop_context& ctx_;
    const listener_spec& spec_;
    int fd_;
    bool paused_ = false;
    accept_guard fd_guard_;  // EMFILE: reserve descriptor, back-off, rate-limited log
};

// What one loop owns: its listeners' sockets, its connections, and the per-iteration work
// (write batched output, hand cross-shard deliveries over, free closed connections).
class loop_context {
public:
    loop_context(broker::broker& b, event_loop& l, std::vector<std::unique_ptr<loop_context>>& all, input_budget& ib,
                 connection_limits& cl)
        : brk(b), loop(l), shard(b.get_shard(l.index())), contexts(all), budget(ib), limits(cl) {}
    ~loop_context();
    loop_context(const loop_context&) = delete;
    loop_context& operator=(const loop_context&) = delete;

    // Takes ownership of a socket accepted here or handed over by another loop, with its
    // admission, stream layers and the output they had not written yet.
    void adopt(int fd, std::string peer, carried_state carried, std::string_view unsent_wire, std::string buffered,
               std::optional<mqtt::connect> connect, bool assigned);
    void mark_dirty(tcp_connection* c) { dirty_.push_back(c); }
    void mark_dead(tcp_connection* c) { dead_.push_back(c); }
    void end_of_iteration();
    void close_idle_unconnected();
    void close_all();

    broker::broker& brk;
    event_loop& loop;
    std::vector<char> scratch = std::vector<char>(size_t{64} * 1024);  // read buffer shared by this loop's sockets
    std::string app_scratch;                                           // what stream layers decode, shared likewise
    std::string wire_scratch;
    broker::shard& shard;
    std::vector<std::unique_ptr<loop_context>>& contexts;
    input_budget& budget;  // partial-packet input, all loops
    connection_limits& limits;
    std::vector<std::unique_ptr<listener_socket>> listeners;

private:
    std::vector<tcp_connection*> dirty_;
    std::vector<tcp_connection*> dead_;
    std::unordered_set<tcp_connection*> live_;
};

namespace {

constexpr size_t k_read_budget = size_t{64} * 1024;  // per readiness event, for fairness between sockets
// One writev takes up to IOV_MAX pieces: a wildcard subscriber receiving many small messages
// gets them in few system calls (64 made the fan-in to one subscriber syscall-bound).
constexpr size_t k_max_iov = 1024;
constexpr int64_t k_drain_ms = 2'000;  // how long a closed connection's input is drained
// Encrypted or framed output waiting for the socket, past which a layered connection keeps
// the rest unencoded (so discard_unsent() can still drop it: encoded bytes must all go).
constexpr size_t k_wire_window = size_t{256} * 1024;

// The address without the port: what the per-address limits count.
std::string peer_host(const sockaddr_storage& addr) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, host, sizeof host);
    } else if (addr.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, host, sizeof host);
    }
    return host;
}

std::string peer_name(const sockaddr_storage& addr) {
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

// One TCP socket carrying one MQTT connection. Output is queued as chunks (owned
// bytes, or a shared message whose payload is sent without copying) and written with
// writev at the end of the loop iteration. With a stream layer (TLS, WebSocket), what
// the broker sends is kept as plain bytes until the end of the iteration, then encoded
// in one go (one TLS record for many small packets) into wire chunks.
class tcp_connection final : public broker::transport, public event_loop::handler {
public:
    tcp_connection(loop_context& ctx, int fd, std::string peer, carried_state carried)
        : ctx_(ctx),
          fd_(fd),
          peer_(std::move(peer)),
          admission_(std::move(carried.admission)),
          layer_(std::move(carried.layer)),
          created_ms_(ctx.loop.now_ms()) {
        ctx_.loop.add(fd_, EPOLLIN | EPOLLRDHUP, this);
    }
    ~tcp_connection() override {
        protocol_.reset();  // may still send (ignored) and detach from the shard
        release_input();
        if (fd_ >= 0) {
            ctx_.loop.remove(fd_);
            ::close(fd_);
        }
    }

    // ---- broker::transport
    void send(std::string bytes) override {
        if (closing_) return;
        pending_ += bytes.size();
        if (layer_) {
            unencoded_ += bytes;
        } else {
            out_.push_back(chunk{std::move(bytes), nullptr, 0});
        }
        dirty();
    }
    void send_publish(std::string header, broker::message_ptr msg) override {
        if (closing_) return;
        pending_ += header.size() + msg->payload.size();
        if (layer_) {
            unencoded_ += header;
            unencoded_ += msg->payload;
        } else {
            out_.push_back(chunk{std::move(header), std::move(msg), 0});
        }
        dirty();
    }
    void close() override {
        if (closing_) return;
        closing_ = true;
        closing_since_ms_ = ctx_.loop.now_ms();
        // Output already queued (a CONNACK with an error, a DISCONNECT) is written at the
        // end of this iteration, then the socket is closed.
        dirty();
    }
    void set_reading(bool enabled) override {
        if (reading_ == enabled || fd_ < 0) return;
        reading_ = enabled;
        update_interest();
        // Packets that arrived before the pause are still buffered: handle them now
        // rather than waiting for the socket to become readable again.
        if (enabled && !in_.empty()) partial_since_ms_ = ctx_.loop.now_ms();  // a pause is not the client's delay
        if (enabled && protocol_ && !in_.empty()) consume_buffered();
    }
    size_t pending_output_bytes() const override { return pending_; }
    void discard_unsent() override {
        if (closing_) return;
        if (layer_) {
            // Encoded bytes cannot be dropped (TLS records are numbered): only what waits unencoded.
            pending_ -= unencoded_.size();
            std::string().swap(unencoded_);
            return;
        }
        if (out_.empty()) return;
        std::optional<chunk> started;
        if (out_.front().offset > 0) started = std::move(out_.front());
        out_.clear();
        pending_ = 0;
        if (started) {
            pending_ = started->bytes.size() + (started->msg ? started->msg->payload.size() : 0) - started->offset;
            out_.push_back(std::move(*started));
        }
    }
    const std::string& peer() const override { return peer_; }
    const std::string& certificate_identity() const override {
        static const std::string k_none;
        return layer_ ? layer_->peer_identity() : k_none;
    }

    // ---- readiness
    void on_events(uint32_t events) override {
        if (dead_) return;
        if (draining_) {
            drain_input();
            return;
        }
        ctx_.shard.set_now(ctx_.loop.now_ms());
        if (events & EPOLLOUT) flush();
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_some();
    }

    // Starts the protocol on this loop. `connect` is set when another loop already
    // decoded the CONNECT to choose us.
    void begin(std::string_view unsent_wire, std::string buffered, std::optional<mqtt::connect> connect,
               bool assigned) {
        queue_wire(unsent_wire);
        in_ = std::move(buffered);
        if (!in_.empty()) partial_since_ms_ = created_ms_;
        if (!account_input()) return;
        if (connect) {
            protocol_ = std::make_unique<broker::connection>(ctx_.shard, *this);
            protocol_->on_connect(std::move(*connect), assigned);
            if (protocol_->closed()) {
                close();
                return;
            }
        }
        if (!in_.empty()) consume_buffered();
    }

    // Called at the end of the iteration: write what is queued; close if asked to.
    void flush() {
        dirty_ = false;
        if (dead_) return;
        for (;;) {
            encode_output();
            if (!write_output()) return;  // failed
            // The socket took everything encoded so far: encode the rest, if any waits.
            if (!out_.empty() || unencoded_.empty()) break;
        }
        bool want_out = !out_.empty();
        if (want_out != want_out_) {
            want_out_ = want_out;
            update_interest();
        }
        if (closing_ && out_.empty() && unencoded_.empty()) begin_drain();
    }

    // Writes out_ until it is empty or the socket is full. Returns false when the socket failed.
    bool write_output() {
        while (!out_.empty()) {
            iovec iov[k_max_iov];
            size_t n = 0;
            for (auto it = out_.begin(); it != out_.end() && n + 1 < k_max_iov; ++it) {
                const std::string& h = it->bytes;
                size_t off = it->offset;
                if (off < h.size()) {
                    iov[n++] = iovec{const_cast<char*>(h.data() + off), h.size() - off};
                    off = 0;
                } else {
                    off -= h.size();
                }
                if (it->msg) {
                    const std::string& p = it->msg->payload;
                    if (off < p.size()) iov[n++] = iovec{const_cast<char*>(p.data() + off), p.size() - off};
                }
            }
            ssize_t written = ::writev(fd_, iov, static_cast<int>(n));
            if (written < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                // Typically a reset: a client that closes with our output unread gets one
                // from its kernel. What it sent before still counts (a DISCONNECT means no
                // will, MQTT-3.14.4-3), so read that before the connection is gone.
                read_some();
                fail();
                return false;
            }
            consume_output(static_cast<size_t>(written));
        }
        return true;
    }

    // Layered connections: encodes what the broker sent while little encoded output waits,
    // and, once closing with nothing left, the layer's goodbye (close_notify, close frame).
    void encode_output() {
        if (!layer_) return;
        if (!unencoded_.empty() && wire_queued() < k_wire_window) {
            std::string& wire = ctx_.wire_scratch;
            wire.clear();
            layer_->on_app(unencoded_, wire);
            pending_ -= unencoded_.size();
            unencoded_.clear();
            if (unencoded_.capacity() > k_wire_window) std::string().swap(unencoded_);
            queue_wire(wire);
        }
        if (closing_ && unencoded_.empty() && !goodbye_sent_ && !layer_failed_) {
            goodbye_sent_ = true;
            std::string& wire = ctx_.wire_scratch;
            wire.clear();
            layer_->on_close(wire);
            queue_wire(wire);
        }
    }

    // Queues bytes that are already in their wire form.
    void queue_wire(std::string_view wire) {
        if (wire.empty()) return;
        pending_ += wire.size();
        out_.push_back(chunk{std::string(wire), nullptr, 0});
        dirty();
    }

    size_t wire_queued() const { return pending_ - unencoded_.size(); }

    // Our last bytes (a CONNACK or DISCONNECT with a reason code, say) are written: send FIN
    // and read and discard what the client still sends until it closes too, or for at most
    // k_drain_ms. Closing with unread input would make the kernel send a reset, and a reset
    // can destroy the reason code before the client reads it.
    void begin_drain() {
        if (draining_ || dead_) return;
        if (::shutdown(fd_, SHUT_WR) != 0) {
            fail();
            return;
        }
        draining_ = true;
        drain_deadline_ms_ = ctx_.loop.now_ms() + k_drain_ms;
        reading_ = true;
        update_interest();
        drain_input();
    }

    void drain_input() {
        for (;;) {
            ssize_t n = ::read(fd_, ctx_.scratch.data(), ctx_.scratch.size());
            if (n > 0) continue;
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            fail();  // the client closed its side (or the socket failed): done
            return;
        }
    }

    // Called periodically: a client that keeps its side open is not waited for longer.
    void end_overdue_drain(int64_t now_ms) {
        if (draining_ && !dead_ && now_ms >= drain_deadline_ms_) fail();
    }

    // Detaches the socket, with its layers and unwritten wire output, for a hand-over to
    // another loop; this object then dies.
    carried_state release_carried() { return carried_state{std::move(admission_), std::move(layer_)}; }
    std::string release_unsent_wire() {
        std::string unsent;
        for (auto it = out_.begin(); it != out_.end(); ++it)
            unsent.append(it->bytes, it->offset);  // layered output is plain bytes, no shared payloads
        out_.clear();
        pending_ = unencoded_.size();
        return unsent;
    }
    int release_fd() {
        int fd = fd_;
        ctx_.loop.remove(fd_);
        fd_ = -1;
        dead_ = true;
        ctx_.mark_dead(this);
        return fd;
    }

    bool is_dead() const { return dead_; }
    // True when close() was asked more than `limit_ms` ago and the peer still has not read
    // what was queued before it (a client that stopped reading): give up on the output.
    bool close_overdue(int64_t now_ms, int64_t limit_ms) const {
        return closing_ && !dead_ && now_ms - closing_since_ms_ > limit_ms;
    }
    void abort() { fail(); }
    // True when a packet has been incomplete for more than `limit_ms` while we were reading.
    bool partial_overdue(int64_t now_ms, int64_t limit_ms) const {
        return !dead_ && !closing_ && reading_ && !in_.empty() && now_ms - partial_since_ms_ > limit_ms;
    }
    // A packet did not complete in time: closes (0x8D to an MQTT 5 client).
    void expire_partial() {
        broker::shard_stats::add(ctx_.shard.stats().partial_packet_timeouts);
        SLUICE_DEBUG("net", "%s: packet incomplete for too long (%zu bytes held), closing", peer_.c_str(), in_.size());
        drop_input(mqtt::reason_code::keep_alive_timeout);
    }
    // True while no CONNECT has been handled yet and the connection is older than `limit_ms`.
    bool connect_overdue(int64_t now_ms, int64_t limit_ms) const {
        return !protocol_ && !dead_ && !closing_ && now_ms - created_ms_ > limit_ms;
    }

private:
    struct chunk {
        std::string bytes;
        broker::message_ptr msg;  // when set, msg->payload follows bytes
        size_t offset;            // bytes already written from this chunk
    };

    void dirty() {
        if (!dirty_ && !dead_) {
            dirty_ = true;
            ctx_.mark_dirty(this);
        }
    }

    void consume_output(size_t n) {
        pending_ -= n;
        while (n > 0 && !out_.empty()) {
            chunk& c = out_.front();
            size_t total = c.bytes.size() + (c.msg ? c.msg->payload.size() : 0);
            size_t left = total - c.offset;
            if (n >= left) {
                n -= left;
                out_.pop_front();
            } else {
                c.offset += n;
                n = 0;
            }
        }
    }

    void update_interest() {
        if (fd_ < 0) return;
        uint32_t ev = EPOLLRDHUP;
        if (reading_) ev |= EPOLLIN;
        if (want_out_) ev |= EPOLLOUT;
        ctx_.loop.modify(fd_, ev, this);
    }

    void read_some() {
        size_t budget = k_read_budget;
        std::vector<char>& scratch = ctx_.scratch;
        while (budget > 0 && !dead_ && !closing_ && reading_) {
            ssize_t n = ::read(fd_, scratch.data(), scratch.size());
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (n < 0 && errno == EINTR) continue;
                peer_closed();
                return;
            }
            size_t got = static_cast<size_t>(n);
            budget -= std::min(budget, got);
            std::string_view fresh(scratch.data(), got);
            if (layer_) {
                if (!decode_and_take(fresh)) return;
            } else {
                take_input(fresh);
            }
            if (dead_) return;
            if (!account_input()) return;
            if (got < scratch.size()) break;
        }
    }

    // Feeds bytes of the MQTT stream to the protocol.
    void take_input(std::string_view fresh) {
        if (fresh.empty()) return;
        // Whole packets are handled straight from the loop's scratch buffer; only a
        // trailing partial packet is copied into this connection's own buffer, so an
        // idle connection holds no input memory.
        if (in_.empty()) {
            size_t used = consume(fresh);
            if (!dead_ && used < fresh.size()) {
                in_.assign(fresh.substr(used));
                partial_since_ms_ = ctx_.loop.now_ms();
            }
        } else {
            in_.append(fresh);
            consume_buffered();
        }
    }

    // Passes wire bytes through the layer: its own answers are queued, the MQTT bytes it
    // decoded are taken. Returns false when the layer ended the stream (the connection closes).
    bool decode_and_take(std::string_view fresh) {
        std::string& app = ctx_.app_scratch;
        std::string& reply = ctx_.wire_scratch;
        app.clear();
        reply.clear();
        bool ok = layer_->on_wire(fresh, app, reply);
        queue_wire(reply);
        std::string decoded;
        decoded.swap(app);  // take_input may hand this connection over, and the scratch buffers are per loop
        take_input(decoded);
        decoded.clear();
        if (app.capacity() < decoded.capacity()) app.swap(decoded);
        if (ok || dead_) return ok;
        SLUICE_DEBUG("net", "%s: %s", peer_.c_str(), layer_ ? layer_->error().c_str() : "stream ended");
        layer_failed_ = true;
        // The client is gone as far as MQTT is concerned (its will applies); the layer's last
        // words (an alert, a close frame) are still written.
        if (protocol_ && !protocol_->closed()) protocol_->on_transport_closed();
        close();
        return false;
    }

    void consume_buffered() {
        size_t used = consume(in_);
        if (dead_) return;
        in_.erase(0, used);
        if (used > 0) partial_since_ms_ = ctx_.loop.now_ms();  // a packet completed: the next one's clock starts
        account_input();                                       // shrinking never fails
    }

    // Charges what in_ holds to the process-wide budget (an empty buffer is freed: idle
    // connections hold no input memory). Returns false, after closing, when that took the
    // budget past its limit.
    bool account_input() {
        if (in_.empty() && in_.capacity() > 0) std::string().swap(in_);
        size_t now = in_.empty() ? 0 : in_.capacity();
        bool ok = ctx_.budget.recharge(charged_, now);
        charged_ = now;
        if (ok) return true;
        uint64_t n = ctx_.shard.stats().input_budget_closes.load(std::memory_order_relaxed) + 1;
        if ((n & (n - 1)) == 0) {  // log at powers of two, not per connection
            SLUICE_WARN("net",
                        "%s: input for unfinished packets past mqtt.max_partial_input_bytes (%llu bytes held), "
                        "closing (%llu so far)",
                        peer_.c_str(), static_cast<unsigned long long>(ctx_.budget.used()),
                        static_cast<unsigned long long>(n));
        }
        broker::shard_stats::add(ctx_.shard.stats().input_budget_closes);
        drop_input(mqtt::reason_code::quota_exceeded);
        return false;
    }

    void release_input() {
        ctx_.budget.recharge(charged_, 0);
        charged_ = 0;
    }

    // Frees the partial input and closes; an MQTT 5 client past its CONNECT gets DISCONNECT `code`.
    void drop_input(mqtt::reason_code code) {
        std::string().swap(in_);
        release_input();
        if (protocol_ && !protocol_->closed()) protocol_->close_with(code, true);
        close();
    }

    // Feeds whole packets from `data` to the protocol; returns the bytes used.
    size_t consume(std::string_view data) {
        size_t used = 0;
        if (!protocol_) {
            if (!route_first_packet(data, used)) return used;
        }
        if (!protocol_) return used;
        if (used < data.size()) used += protocol_->on_data(data.substr(used));
        if (protocol_->closed()) close();
        return used;
    }

    // Before CONNECT: find the shard that owns the client id and move there if needed.
    // Sets `used` to the bytes taken (all of them when the socket moved to another loop).
    // Returns true when the protocol handler exists here and should consume the rest.
    bool route_first_packet(std::string_view data, size_t& used) {
        used = 0;
        if (data.empty()) return false;
        if ((static_cast<uint8_t>(data[0]) >> 4) != static_cast<uint8_t>(mqtt::packet_type::connect)) {
            // [MQTT-3.1.0-1]: the first packet must be CONNECT. Don't wait for the rest of
            // whatever this is (an HTTP request, say): close now, without a reply.
            close();
            used = data.size();
            return false;
        }
        auto f = mqtt::parse_frame(data, ctx_.brk.options().max_packet_size);
        if (f && !f->has_value()) return false;  // need more bytes
        if (f && data.size() < (*f)->total_size()) return false;
        if (f) {
            size_t total = (*f)->total_size();
            auto p = mqtt::decode(**f, data.substr(0, total), mqtt::version::v5);
            if (p) {
                mqtt::connect c = std::move(std::get<mqtt::connect>(*p));
                bool assigned = ctx_.brk.assign_client_id(c);
                unsigned target = ctx_.brk.shard_of_client(c.client_id);
                if (target != ctx_.loop.index()) {
                    std::string rest(data.substr(total));
                    used = data.size();
                    // Boxed: a posted task must be copyable, a layer is not.
                    auto carried = std::make_shared<carried_state>(release_carried());
                    std::string unsent = release_unsent_wire();
                    int fd = release_fd();
                    loop_context* dest = ctx_.contexts[target].get();
                    dest->loop.post([dest, fd, peer = peer_, carried, unsent = std::move(unsent),
                                     rest = std::move(rest), c = std::move(c), assigned]() mutable {
                        dest->adopt(fd, std::move(peer), std::move(*carried), unsent, std::move(rest), std::move(c),
                                    assigned);
                    });
                    return false;
                }
                used = total;
                protocol_ = std::make_unique<broker::connection>(ctx_.shard, *this);
                protocol_->on_connect(std::move(c), assigned);
                if (protocol_->closed()) close();
                return true;
            }
        }
        // Not a valid CONNECT: the protocol handler decodes it again, answers and closes.
        protocol_ = std::make_unique<broker::connection>(ctx_.shard, *this);
        return true;
    }

    void peer_closed() {
        if (protocol_) protocol_->on_transport_closed();
        fail();
    }

    void fail() {
        if (dead_) return;
        if (protocol_ && !protocol_->closed()) protocol_->on_transport_closed();
        dead_ = true;
        out_.clear();
        pending_ = 0;
        std::string().swap(in_);
        release_input();
        ctx_.mark_dead(this);
    }

    loop_context& ctx_;
    int fd_;
    std::string peer_;
    std::unique_ptr<connection_limits::admission> admission_;  // our slot under the connection limits
    std::unique_ptr<stream_layer> layer_;                      // TLS and/or WebSocket; nullptr for plain TCP
    std::unique_ptr<broker::connection> protocol_;
    std::string in_;
    fifo<chunk> out_;
    std::string unencoded_;  // layered connections: output not yet through the layer
    bool goodbye_sent_ = false;
    bool layer_failed_ = false;
    size_t pending_ = 0;
    bool dirty_ = false;
    bool closing_ = false;
    bool dead_ = false;
    bool reading_ = true;
    bool want_out_ = false;
    bool draining_ = false;  // closed on our side, discarding input until the client closes
    int64_t drain_deadline_ms_ = 0;
    int64_t created_ms_;
    int64_t closing_since_ms_ = 0;
    int64_t partial_since_ms_ = 0;  // when the packet now in in_ started (or the last one completed)
    size_t charged_ = 0;            // bytes of in_ charged to ctx_.budget
};

loop_context::~loop_context() {
    listeners.clear();
    for (auto* c : live_)
        delete c;
}

void listener_socket::start() {
    ctx_.loop.add(fd_, EPOLLIN, this);
}

void listener_socket::close() {
    if (fd_ < 0) return;
    if (!paused_) ctx_.loop.remove(fd_);
    ::close(fd_);
    fd_ = -1;
}

void listener_socket::resume() {
    if (!paused_ || fd_ < 0 || fd_guard_.paused(ctx_.loop.now_ms())) return;
    paused_ = false;
    ctx_.loop.add(fd_, EPOLLIN, this);
}

void listener_socket::on_events(uint32_t) {
    for (int i = 0; i < 64 && fd_ >= 0; ++i) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (errno == EMFILE || errno == ENFILE) {
                int err = errno;
                if (fd_guard_.on_exhausted(fd_, ctx_.loop.now_ms())) {
                    SLUICE_WARN("net",
                                "accept (%s): %s: new connections are closed at once until descriptors free up "
                                "(%llu so far; raise the open-files limit)",
                                spec_.opts.name.c_str(), errno_text(err).c_str(),
                                static_cast<unsigned long long>(fd_guard_.take_refused()));
                }
                // Back off: the listener leaves the loop until the timer brings it back.
                if (!paused_) {
                    ctx_.loop.remove(fd_);
                    paused_ = true;
                }
                return;
            }
            SLUICE_WARN("net", "accept (%s): %s", spec_.opts.name.c_str(), errno_text(errno).c_str());
            return;
        }
        auto admission = ctx_.limits.admit(peer_host(addr), ctx_.loop.now_ms());
        if (!admission) {
            ::close(fd);  // past a connection limit: refused before any byte is read (counted)
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ctx_.adopt(fd, peer_name(addr), carried_state{std::move(admission), spec_.new_layers()}, {}, {}, std::nullopt,
                   false);
    }
}

void loop_context::adopt(int fd, std::string peer, carried_state carried, std::string_view unsent_wire,
                         std::string buffered, std::optional<mqtt::connect> connect, bool assigned) {
    shard.set_now(loop.now_ms());
    auto* c = new tcp_connection(*this, fd, std::move(peer), std::move(carried));
    live_.insert(c);
    c->begin(unsent_wire, std::move(buffered), std::move(connect), assigned);
}

void loop_context::end_of_iteration() {
    shard.flush_outbox();
    // flush() may close connections, which may queue more output elsewhere; loop until quiet.
    while (!dirty_.empty()) {
        std::vector<tcp_connection*> batch;
        batch.swap(dirty_);
        for (auto* c : batch)
            c->flush();
    }
    for (auto* c : dead_) {
        if (live_.erase(c) > 0) delete c;
    }
    dead_.clear();
}

void loop_context::close_idle_unconnected() {
    for (auto& l : listeners)
        l->resume();
    // A socket that has not completed a CONNECT in time is closed (the broker's own
    // connect timeout starts once the first packet arrived). The TLS or WebSocket
    // handshake counts against it: a half-done handshake holds nothing for long.
    constexpr int64_t k_connect_timeout_ms = 10'000;
    // A closing connection whose peer does not read its last output (the DISCONNECT of a
    // slow subscriber, say) is dropped after this long instead of holding its socket.
    constexpr int64_t k_close_linger_ms = 5'000;
    // A packet that has started must finish in time, whatever the keep-alive.
    const int64_t partial_limit_ms = brk.options().partial_packet_timeout_ms;
    for (auto* c : live_) {
        if (c->connect_overdue(loop.now_ms(), k_connect_timeout_ms)) c->close();
        c->end_overdue_drain(loop.now_ms());
        if (c->close_overdue(loop.now_ms(), k_close_linger_ms)) c->abort();
        if (partial_limit_ms > 0 && c->partial_overdue(loop.now_ms(), partial_limit_ms)) c->expire_partial();
    }
}

void loop_context::close_all() {
    shard.shutdown();
    end_of_iteration();
}

tcp_server::tcp_server(broker::broker& b, std::vector<event_loop*> loops)
    : broker_(b),
      loops_(std::move(loops)),
      input_budget_(b.options().max_partial_input_bytes),
      limits_(std::make_unique<connection_limits>(
          connection_limit_options{b.options().max_connections, b.options().max_connections_per_address,
                                   b.options().max_connection_rate_per_address})) {
    SLUICE_CHECK(loops_.size() == broker_.shard_count(), "one loop per shard");
    for (auto* l : loops_)
        contexts_.push_back(std::make_unique<loop_context>(broker_, *l, contexts_, input_budget_, *limits_));
}

tcp_server::~tcp_server() = default;

connection_limit_stats& tcp_server::limit_stats() {
    return limits_->stats();
}

result<uint16_t> tcp_server::listen(const listener_options& opts) {
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, opts.bind_address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        addr_len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, opts.bind_address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        addr_len = sizeof(sockaddr_in6);
    } else {
        return std::make_error_code(std::errc::invalid_argument);
    }
    specs_.push_back(std::make_unique<listener_spec>(listener_spec{opts}));
    const listener_spec& spec = *specs_.back();
    uint16_t port = opts.port;
    std::vector<int> fds;
    auto close_all_fds = [&fds] {
        for (int fd : fds)
            ::close(fd);
    };
    for (size_t i = 0; i < contexts_.size(); ++i) {
        int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            auto ec = std::error_code(errno, std::system_category());
            close_all_fds();
            return ec;
        }
        fds.push_back(fd);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (addr.ss_family == AF_INET) {
            v4->sin_port = htons(port);
        } else {
            v6->sin6_port = htons(port);
        }
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 || ::listen(fd, 4096) != 0) {
            auto ec = std::error_code(errno, std::system_category());
            close_all_fds();
            return ec;
        }
        if (port == 0) {
            sockaddr_storage bound{};
            socklen_t len = sizeof bound;
            getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
            port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                    : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
        }
    }
    for (size_t i = 0; i < contexts_.size(); ++i)
        contexts_[i]->listeners.push_back(std::make_unique<listener_socket>(*contexts_[i], spec, fds[i]));
    if (port_ == 0) port_ = port;
    return port;
}

void tcp_server::start() {
    for (auto& ctx : contexts_) {
        loop_context* c = ctx.get();
        for (auto& l : c->listeners)
            l->start();
        c->loop.on_iteration_end([c] { c->end_of_iteration(); });
        c->loop.every(std::chrono::milliseconds(250), [c] {
            c->shard.tick(c->loop.now_ms());
            c->close_idle_unconnected();
        });
    }
}

void tcp_server::stop() {
    std::vector<std::future<void>> done;
    for (auto& ctx : contexts_) {
        auto p = std::make_shared<std::promise<void>>();
        done.push_back(p->get_future());
        loop_context* c = ctx.get();
        c->loop.post([c, p] {
            for (auto& l : c->listeners)
                l->close();
            c->close_all();
            p->set_value();
        });
    }
    for (auto& f : done)
        f.wait();
}

}  // namespace sluice::net
