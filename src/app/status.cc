// SPDX-License-Identifier: Apache-2.0
#include "app/status.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "base/errno_text.h"

namespace sluice::app {
namespace {

struct address {
    std::string host;
    std::string port;
    std::string base_path;  // with no trailing '/'
};

// "http://HOST[:PORT][/PATH]"; false for anything else (HTTPS included: not spoken here).
bool parse_url(const std::string& url, address& a) {
    const std::string scheme = "http://";
    if (url.compare(0, scheme.size(), scheme) != 0) return false;
    std::string rest = url.substr(scheme.size());
    size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    a.base_path = slash == std::string::npos ? "" : rest.substr(slash);
    while (!a.base_path.empty() && a.base_path.back() == '/')
        a.base_path.pop_back();
    size_t colon = authority.rfind(':');
    if (colon != std::string::npos && authority.find(']') == std::string::npos) {
        a.host = authority.substr(0, colon);
        a.port = authority.substr(colon + 1);
    } else {
        a.host = authority;
        a.port = "80";
    }
    if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
        a.host = a.host.substr(1, a.host.size() - 2);
    return !a.host.empty() && !a.port.empty();
}

// One GET with "Connection: close"; the raw response, or "" with `err` set.
std::string http_get(const address& a, const std::string& target, const std::string& token, std::string& err) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = getaddrinfo(a.host.c_str(), a.port.c_str(), &hints, &found); rc != 0) {
        err = gai_strerror(rc);
        return {};
    }
    int fd = -1;
    for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno_text(errno);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0) return {};
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + a.host + "\r\nConnection: close\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    req += "\r\n";
    std::string out;
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        err = errno_text(errno);
    } else {
        char buf[16384];
        ssize_t n = 0;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
            out.append(buf, static_cast<size_t>(n));
        if (n < 0) err = errno_text(errno);
    }
    close(fd);
    return err.empty() ? out : std::string();
}

}  // namespace

int status_command(const status_request& r) {
    address a;
    if (!parse_url(r.url, a)) {
        std::fprintf(stderr, "sluice status: %s is not an http://HOST:PORT address\n", r.url.c_str());
        return 1;
    }
    std::string err;
    std::string raw = http_get(a, a.base_path + "/api/cluster?format=text", r.token, err);
    size_t head_end = raw.find("\r\n\r\n");
    if (raw.empty() || head_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0) {
        std::fprintf(stderr, "sluice status: no answer from %s: %s\n", r.url.c_str(),
                     err.empty() ? "not HTTP" : err.c_str());
        return 1;
    }
    const long code = raw.size() > 12 ? std::strtol(raw.c_str() + 9, nullptr, 10) : 0;
    const std::string body = raw.substr(head_end + 4);
    if (code != 200) {
        std::fprintf(stderr, "sluice status: %s answered %ld%s%s", r.url.c_str(), code, body.empty() ? "\n" : ": ",
                     body.c_str());
        if (code == 401) std::fprintf(stderr, "(give the node's API token with --token)\n");
        return 1;
    }
    std::fputs(body.c_str(), stdout);
    return 0;
}

}  // namespace sluice::app
