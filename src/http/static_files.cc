// SPDX-License-Identifier: Apache-2.0
#include "http/static_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace sluice::http {

result<std::string> static_file_path(std::string_view web_root, std::string_view relative) {
    if (relative.empty() || relative.front() == '/') return api_errc::unsafe_path;
    if (relative.find('\\') != std::string_view::npos || relative.find('\0') != std::string_view::npos) {
        return api_errc::unsafe_path;
    }
    std::string_view rest = relative;
    while (true) {
        size_t slash = rest.find('/');
        std::string_view seg = rest.substr(0, slash);
        if (seg.empty() || seg == "." || seg == "..") return api_errc::unsafe_path;
        if (slash == std::string_view::npos) break;
        rest = rest.substr(slash + 1);
    }
    std::string path(web_root);
    if (path.empty() || path.back() != '/') path += '/';
    path += relative;
    return path;
}

std::string_view content_type_for(std::string_view file_name) {
    struct entry {
        std::string_view ext;
        std::string_view type;
    };
    static constexpr entry k_types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json; charset=utf-8"},
    };
    for (const auto& e : k_types) {
        if (file_name.size() >= e.ext.size() && file_name.substr(file_name.size() - e.ext.size()) == e.ext) {
            return e.type;
        }
    }
    return "application/octet-stream";
}

response static_file_response(std::string_view web_root, std::string_view relative) {
    auto path = static_file_path(web_root, relative);
    if (!path) return response{404, "text/plain; charset=utf-8", "not found\n", {}};
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return response{404, "text/plain; charset=utf-8", "not found\n", {}};
    struct stat st {};
    constexpr off_t k_max_size = 8 << 20;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > k_max_size) {
        ::close(fd);
        return response{404, "text/plain; charset=utf-8", "not found\n", {}};
    }
    std::string body(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < body.size()) {
        ssize_t n = ::read(fd, body.data() + got, body.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    body.resize(got);
    response res{200, std::string(content_type_for(*path)), std::move(body), {}};
    res.headers.emplace_back("Cache-Control", "no-cache");
    res.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return res;
}

}  // namespace sluice::http
