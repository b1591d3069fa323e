// SPDX-License-Identifier: Apache-2.0
//
// The HTTP request parser (http/request_parser.h) on arbitrary bytes. Invariants: no crash
// or sanitizer report; a complete request never consumes more than it was given; the
// verdict on a complete request does not change when more bytes follow it (pipelining);
// an incomplete input never becomes an error by being cut shorter.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using sluice::http::parse_outcome;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    sluice::http::request req;
    parse_outcome whole = sluice::http::parse_request(in, req);
    if (whole.what == parse_outcome::state::complete) {
        if (whole.consumed == 0 || whole.consumed > size) std::abort();
        sluice::http::request again;
        parse_outcome exact = sluice::http::parse_request(in.substr(0, whole.consumed), again);
        if (exact.what != parse_outcome::state::complete || exact.consumed != whole.consumed) std::abort();
        if (again.path != req.path || again.body != req.body || again.headers != req.headers) std::abort();
    }
    if (whole.what == parse_outcome::state::incomplete && size > 0) {
        sluice::http::request shorter;
        if (sluice::http::parse_request(in.substr(0, size - 1), shorter).what == parse_outcome::state::error)
            std::abort();
    }
    return 0;
}
