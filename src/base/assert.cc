// SPDX-License-Identifier: Apache-2.0
#include "base/assert.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace sluice::detail {

void check_failed(const char* file, int line, const char* expr, const char* fmt, ...) {
    std::fprintf(stderr, "sluice: invariant violated at %s:%d: %s: ", file, line, expr);
    va_list args;
    va_start(args, fmt);
    std::vfprintf(stderr, fmt, args);
    va_end(args);
    std::fputc('\n', stderr);
    std::fflush(stderr);
    std::abort();
}

}  // namespace sluice::detail
