// SPDX-License-Identifier: Apache-2.0
#include "http/request_parser.h"

#include <algorithm>
#include <cctype>

#include "base/text.h"

namespace sluice::http {
namespace {

// tchar of RFC 9110 5.6.2.
bool is_tchar(unsigned char c) {
    if (std::isalnum(c) != 0) return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

bool is_token(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

// field-value characters: visible ASCII, obs-text, SP and HTAB.
bool is_field_value(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7F);
    });
}

parse_outcome refuse(int status, std::string reason) {
    parse_outcome o;
    o.what = parse_outcome::state::error;
    o.status = status;
    o.reason = std::move(reason);
    return o;
}

void parse_query(std::string_view qs, request& out) {
    while (!qs.empty()) {
        size_t amp = qs.find('&');
        std::string_view kv = qs.substr(0, amp);
        size_t eq = kv.find('=');
        if (!kv.empty()) {
            out.query[url_decode(kv.substr(0, eq), true)] =
                eq == std::string_view::npos ? std::string() : url_decode(kv.substr(eq + 1), true);
        }
        if (amp == std::string_view::npos) break;
        qs.remove_prefix(amp + 1);
    }
}

}  // namespace

parse_outcome parse_request(std::string_view in, request& out, const parse_limits& limits) {
    // A few empty lines before the request line are ignored (RFC 9112 2.2).
    size_t start = 0;
    while (start + 1 < in.size() && in[start] == '\r' && in[start + 1] == '\n' && start < 8)
        start += 2;
    std::string_view data = in.substr(start);

    // Every LF must end a CRLF, and every CR start one: checked over what has arrived, so
    // a bare LF is refused even before the head is complete.
    size_t head_end = data.find("\r\n\r\n");
    std::string_view scan = data.substr(0, head_end == std::string_view::npos ? data.size() : head_end + 4);
    for (size_t i = 0; i < scan.size(); ++i) {
        if (scan[i] == '\n' && (i == 0 || scan[i - 1] != '\r')) return refuse(400, "bare LF in the request head");
        if (scan[i] == '\r' && i + 1 < scan.size() && scan[i + 1] != '\n') {
            return refuse(400, "bare CR in the request head");
        }
        if (scan[i] == '\0') return refuse(400, "NUL in the request head");
    }
    if (head_end == std::string_view::npos) {
        size_t line_end = data.find("\r\n");
        if (line_end == std::string_view::npos && data.size() > limits.max_target_bytes + 32) {
            return refuse(414, "request line too long");
        }
        if (data.size() > limits.max_head_bytes) return refuse(431, "request head too large");
        return {};
    }
    if (head_end + 4 > limits.max_head_bytes) return refuse(431, "request head too large");
    std::string_view head = data.substr(0, head_end);

    // Request line: method SP request-target SP HTTP-version.
    size_t line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
        line.find(' ', sp2 + 1) != std::string_view::npos) {
        return refuse(400, "malformed request line");
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return refuse(400, "malformed method");
    if (target.size() > limits.max_target_bytes) return refuse(414, "request target too long");
    if (target.empty() || target.front() != '/' || !std::all_of(target.begin(), target.end(), [](char ch) {
            auto c = static_cast<unsigned char>(ch);
            return c > 0x20 && c < 0x7F;
        })) {
        return refuse(400, "request target must be an absolute path");
    }
    bool http11 = version == "HTTP/1.1";
    if (!http11 && version != "HTTP/1.0") {
        bool shaped = version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
                      std::isdigit(static_cast<unsigned char>(version[5])) && version[6] == '.' &&
                      std::isdigit(static_cast<unsigned char>(version[7]));
        return shaped ? refuse(505, "HTTP version not supported") : refuse(400, "malformed HTTP version");
    }

    request req;
    req.method = std::string(method);
    size_t q = target.find('?');
    req.path = url_decode(target.substr(0, q), false);
    if (q != std::string_view::npos) parse_query(target.substr(q + 1), req);

    // Field lines.
    size_t fields = 0;
    int content_lengths = 0;
    int hosts = 0;
    bool transfer_encoding = false;
    std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
    while (!rest.empty()) {
        size_t e = rest.find("\r\n");
        std::string_view field = rest.substr(0, e);
        rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
        if (++fields > limits.max_fields) return refuse(431, "too many header fields");
        if (field.size() > limits.max_field_line_bytes) return refuse(431, "header field too long");
        if (field.empty() || field.front() == ' ' || field.front() == '\t') {
            return refuse(400, "obsolete line folding");
        }
        size_t colon = field.find(':');
        if (colon == std::string_view::npos) return refuse(400, "header field without a colon");
        std::string_view name = field.substr(0, colon);
        if (!is_token(name)) return refuse(400, "malformed header field name");
        std::string_view value = trim_ows(field.substr(colon + 1));
        if (!is_field_value(value)) return refuse(400, "control character in a header field");
        std::string key = ascii_lower(name);
        if (key == "content-length") {
            ++content_lengths;
            if (value.empty() ||
                !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                return refuse(400, "Content-Length is not a number");
            }
        } else if (key == "host") {
            ++hosts;
        } else if (key == "transfer-encoding") {
            transfer_encoding = true;
        }
        auto [it, inserted] = req.headers.emplace(key, std::string(value));
        if (!inserted) {
            it->second += ", ";  // repeated fields are one comma-separated list (RFC 9110 5.3)
            it->second += value;
        }
    }
    if (content_lengths > 1) return refuse(400, "more than one Content-Length");
    if (transfer_encoding && content_lengths > 0) return refuse(400, "Transfer-Encoding with Content-Length");
    if (transfer_encoding) return refuse(501, "Transfer-Encoding in requests is not supported");
    if (hosts > 1) return refuse(400, "more than one Host");
    if (http11 && hosts == 0) return refuse(400, "HTTP/1.1 request without Host");

    size_t body_len = 0;
    if (content_lengths == 1) {
        const std::string& v = req.headers["content-length"];
        if (v.size() > 9) return refuse(413, "request body too large");
        body_len = std::stoul(v);
        if (body_len > limits.max_body_bytes) return refuse(413, "request body too large");
    }
    size_t total = start + head_end + 4 + body_len;
    if (in.size() < total) return {};
    req.body = std::string(in.substr(start + head_end + 4, body_len));

    parse_outcome o;
    o.what = parse_outcome::state::complete;
    o.consumed = total;
    o.keep_alive = http11;
    if (auto it = req.headers.find("connection"); it != req.headers.end()) {
        std::string v = ascii_lower(it->second);
        if (v.find("close") != std::string::npos) o.keep_alive = false;
        if (!http11 && v.find("keep-alive") != std::string::npos) o.keep_alive = true;
    }
    out = std::move(req);
    return o;
}

}  // namespace sluice::http
