// SPDX-License-Identifier: Apache-2.0
//
// The HTTP/1.1 request head parser of the HTTP server (RFC 9112), strict on purpose:
// whatever two parsers could read differently (a proxy in front and us) is refused
// instead of guessed at. Refused with 400: bare LF or CR, obsolete line folding, white
// space before a field's colon, control characters, a request target that is not an
// absolute path, Transfer-Encoding together with Content-Length, more than one
// Content-Length or Host, a Content-Length that is not plain digits, an HTTP/1.1 request
// without Host. Versions other than 1.0/1.1 get 505, chunked request bodies 501, too
// long a target 414, too many or too long header lines 431, too large a body 413.
//
// Why our own and not a library: Debian 12 packages only the Node.js http-parser, which
// is unmaintained since 2022 and lenient where this is strict (bare LF, versions);
// llhttp is not packaged. The parser is small, fuzzed (tests/fuzz/http_request.cc) and
// unit-tested against each rule above.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http/server.h"

namespace sluice::http {

struct parse_limits {
    size_t max_target_bytes = size_t{8} * 1024;
    size_t max_field_line_bytes = size_t{8} * 1024;
    size_t max_fields = 100;
    size_t max_head_bytes = size_t{32} * 1024;
    size_t max_body_bytes = size_t{1024} * 1024;
};

struct parse_outcome {
    enum class state { incomplete, complete, error } what = state::incomplete;
    size_t consumed = 0;     // complete: head + body bytes used from the input
    int status = 0;          // error: the HTTP status to answer with
    std::string reason;      // error: why, for the log and the response body
    bool keep_alive = true;  // complete: whether the connection may carry another request
};

// Parses one request from the start of `in` into `out`. Nothing is consumed unless the
// whole request (head and body) is there.
parse_outcome parse_request(std::string_view in, request& out, const parse_limits& limits = {});

}  // namespace sluice::http
