// SPDX-License-Identifier: Apache-2.0
//
// Internal to the pipeline module: formats a dead-letter reason into a reused string
// (no allocation once its capacity is reached) and returns the matching error, so that
// every failure site reads `return set_reason(reason_, errc::x, "...", ...);`.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>

#include "base/result.h"
#include "pipeline/errc.h"

namespace sluice::pipeline::detail {

inline std::error_code set_reason(std::string& reason, errc code, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

inline std::error_code set_reason(std::string& reason, errc code, const char* fmt, ...) {
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const std::size_t len =
        n < 0 ? 0 : (static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1);
    reason.assign(buf, len);
    return make_error_code(code);
}

// Names in reasons are cut to this many bytes so that a hostile key cannot bloat them.
constexpr int max_name_in_reason = 64;

inline int name_len(std::size_t n) {
    return n > static_cast<std::size_t>(max_name_in_reason) ? max_name_in_reason : static_cast<int>(n);
}

}  // namespace sluice::pipeline::detail
