// SPDX-License-Identifier: Apache-2.0
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "base/errno_text.h"
#include "base/log.h"
#include "http/request_parser.h"
#include "net/accept_guard.h"
#include "net/event_loop.h"
#include "net/stream_layer.h"
#include "net/tls.h"

namespace sluice::http {
namespace {

// What one connection may hold unparsed: the parser's head and body limits (request_parser.h).
constexpr size_t k_max_unparsed_bytes = size_t{64} * 1024 + size_t{1024} * 1024;

const char* status_text(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 431:
            return "Request Header Fields Too Large";
        case 501:
            return "Not Implemented";
        case 505:
            return "HTTP Version Not Supported";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Unknown";
    }
}

}  // namespace

std::string url_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

struct route_entry {
    std::string method;
    std::string path;
    bool prefix;
    handler h;
};

class http_connection;

struct server::impl {
    std::vector<route_entry> routes;
    std::function<std::optional<response>(const request&)> guard;
    std::shared_ptr<net::tls_config> tls;  // set: HTTPS
    std::unique_ptr<net::event_loop> loop;
    std::thread thread;
    int listen_fd = -1;
    std::unordered_map<int, std::unique_ptr<http_connection>> connections;
    std::vector<int> closing;
    net::accept_guard fd_guard;  // EMFILE: reserve descriptor, back-off, rate-limited log
    bool listener_paused = false;

    struct listener final : net::event_loop::handler {
        impl* owner = nullptr;
        void on_events(uint32_t) override;
    } accept_handler;

    response dispatch(const request& req) const {
        if (guard) {
            if (auto refused = guard(req)) return std::move(*refused);
        }
        bool path_known = false;
        for (const auto& r : routes) {
            bool match = r.prefix ? req.path.compare(0, r.path.size(), r.path) == 0 : req.path == r.path;
            if (!match) continue;
            path_known = true;
            if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) return r.h(req);
        }
        response res;
        res.status = path_known ? 405 : 404;
        res.body = path_known ? "method not allowed\n" : "not found\n";
        return res;
    }
};

class http_connection final : public net::event_loop::handler {
public:
    http_connection(server::impl& owner, int fd, std::string peer)
        : owner_(owner),
          fd_(fd),
          peer_(std::move(peer)),
          layer_(owner.tls ? owner.tls->new_layer() : nullptr),
          last_active_ms_(owner.loop->now_ms()) {}
    ~http_connection() { ::close(fd_); }

    // Idle connections (no event for `limit_ms`) are closed so they cannot pile up and
    // take the process's descriptors (issue 10).
    void close_if_idle(int64_t now_ms, int64_t limit_ms) {
        if (now_ms - last_active_ms_ > limit_ms) close_later();
    }

    void on_events(uint32_t events) override {
        last_active_ms_ = owner_.loop->now_ms();
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            char buf[16384];
            for (;;) {
                ssize_t n = ::read(fd_, buf, sizeof buf);
                if (n > 0) {
                    if (!take(std::string_view(buf, static_cast<size_t>(n)))) return;
                    if (in_.size() > k_max_unparsed_bytes) {
                        finish_with_error(413);
                        return;
                    }
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (n < 0 && errno == EINTR) continue;
                close_later();
                return;
            }
            while (!closed_ && parse_and_respond()) {
            }
            if (!closed_ && !out_.empty()) write_out();  // TLS handshake records
        }
        if (events & EPOLLOUT) write_out();
    }

private:
    // Bytes read from the socket: straight into in_, or through TLS. Returns false when
    // the TLS session ended (its last words are written, then the connection closes).
    bool take(std::string_view bytes) {
        if (!layer_) {
            in_.append(bytes);
            return true;
        }
        std::string reply;
        bool ok = layer_->on_wire(bytes, in_, reply);
        out_ += reply;
        if (ok) return true;
        SLUICE_DEBUG("http", "TLS: %s", layer_->error().c_str());
        close_after_write_ = true;
        write_out();
        return false;
    }

    // Handles one complete request from in_ if there is one. Returns true if it did.
    bool parse_and_respond() {
        request req;
        parse_outcome parsed = parse_request(in_, req);
        if (parsed.what == parse_outcome::state::incomplete) return false;
        if (parsed.what == parse_outcome::state::error) {
            SLUICE_DEBUG("http", "request refused (%d): %s", parsed.status, parsed.reason.c_str());
            finish_with_error(parsed.status, parsed.reason);
            return false;
        }
        in_.erase(0, parsed.consumed);
        req.peer = peer_;
        response res;
        try {
            res = owner_.dispatch(req);
        } catch (const std::exception& e) {
            // Handlers are control plane: an exception is a 500 for this request, not a crash.
            SLUICE_ERROR("http", "%s %s: %s", req.method.c_str(), req.path.c_str(), e.what());
            res = response{500, "text/plain; charset=utf-8", "internal error\n", {}};
        }
        queue_response(res, req.method == "HEAD", parsed.keep_alive);
        return true;
    }

    void queue_response(const response& res, bool head_only, bool keep_alive) {
        std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + status_text(res.status) + "\r\n";
        out += "Content-Type: " + res.content_type + "\r\n";
        out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
        for (const auto& [k, v] : res.headers) {
            out += k;
            out += ": ";
            out += v;
            out += "\r\n";
        }
        out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
        if (!head_only) out += res.body;
        if (layer_) {
            layer_->on_app(out, out_);
            if (!keep_alive) layer_->on_close(out_);  // close_notify after the response
        } else {
            out_ += out;
        }
        if (!keep_alive) close_after_write_ = true;
        write_out();
    }

    void finish_with_error(int status, const std::string& reason = {}) {
        response res;
        res.status = status;
        res.body = std::string(status_text(status)) + (reason.empty() ? "" : ": " + reason) + "\n";
        in_.clear();
        queue_response(res, false, false);
    }

    void write_out() {
        while (!out_.empty()) {
            ssize_t n = ::write(fd_, out_.data(), out_.size());
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    owner_.loop->modify(fd_, EPOLLIN | EPOLLOUT, this);
                    return;
                }
                if (errno == EINTR) continue;
                close_later();
                return;
            }
            out_.erase(0, static_cast<size_t>(n));
        }
        owner_.loop->modify(fd_, EPOLLIN, this);
        if (close_after_write_) close_later();
    }

    void close_later() {
        if (closed_) return;
        closed_ = true;
        owner_.loop->remove(fd_);
        owner_.closing.push_back(fd_);
    }

    server::impl& owner_;
    int fd_;
    std::string peer_;                          // the client's address
    std::unique_ptr<net::stream_layer> layer_;  // TLS, or nullptr
    std::string in_;                            // request bytes (decrypted)
    std::string out_;                           // bytes for the socket (encrypted when TLS)
    bool close_after_write_ = false;
    bool closed_ = false;
    int64_t last_active_ms_;
};

void server::impl::listener::on_events(uint32_t) {
    for (;;) {
        sockaddr_in addr{};
        socklen_t addr_len = sizeof addr;
        int fd =
            ::accept4(owner->listen_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                int err = errno;
                if (owner->fd_guard.on_exhausted(owner->listen_fd, owner->loop->now_ms())) {
                    SLUICE_WARN("http",
                                "accept: %s: new connections are closed at once until descriptors free up "
                                "(%llu so far)",
                                errno_text(err).c_str(),
                                static_cast<unsigned long long>(owner->fd_guard.take_refused()));
                }
                if (!owner->listener_paused) {  // back off: the timer in start() resumes it
                    owner->loop->remove(owner->listen_fd);
                    owner->listener_paused = true;
                }
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char host[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
        auto c = std::make_unique<http_connection>(*owner, fd, host);
        owner->loop->add(fd, EPOLLIN, c.get());
        owner->connections[fd] = std::move(c);
    }
}

server::server() : impl_(std::make_unique<impl>()) {
    impl_->accept_handler.owner = impl_.get();
}

server::~server() {
    stop();
}

void server::route(std::string method, std::string path, handler h) {
    bool prefix = !path.empty() && path.back() == '*';
    if (prefix) path.pop_back();
    impl_->routes.push_back(route_entry{std::move(method), std::move(path), prefix, std::move(h)});
}

void server::set_tls(std::shared_ptr<net::tls_config> tls) {
    impl_->tls = std::move(tls);
}

void server::set_guard(std::function<std::optional<response>(const request&)> g) {
    impl_->guard = std::move(g);
}

result<uint16_t> server::start(const std::string& bind_address, uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, bind_address.c_str(), &addr.sin_addr) != 1) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::error_code(errno, std::system_category());
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
        auto ec = std::error_code(errno, std::system_category());
        ::close(fd);
        return ec;
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    impl_->listen_fd = fd;
    impl_->loop = std::make_unique<net::event_loop>(0);
    impl* self = impl_.get();
    impl_->loop->add(fd, EPOLLIN, &impl_->accept_handler);
    impl_->loop->every(std::chrono::milliseconds(250), [self] {
        constexpr int64_t k_idle_timeout_ms = 60'000;
        int64_t now = self->loop->now_ms();
        for (auto& [cfd, c] : self->connections)
            c->close_if_idle(now, k_idle_timeout_ms);
        if (self->listener_paused && !self->fd_guard.paused(now)) {
            self->listener_paused = false;
            self->loop->add(self->listen_fd, EPOLLIN, &self->accept_handler);
        }
    });
    impl_->loop->on_iteration_end([self] {
        for (int c : self->closing)
            self->connections.erase(c);
        self->closing.clear();
    });
    impl_->thread = std::thread([self] {
        pthread_setname_np(pthread_self(), "sluice-http");
        self->loop->run();
    });
    return ntohs(addr.sin_port);
}

void server::stop() {
    if (!impl_ || !impl_->loop) return;
    impl_->loop->stop();
    if (impl_->thread.joinable()) impl_->thread.join();
    impl_->connections.clear();
    if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
    impl_->listen_fd = -1;
    impl_->loop.reset();
}

}  // namespace sluice::http
