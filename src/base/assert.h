// SPDX-License-Identifier: Apache-2.0
//
// Invariants crash loudly (docs/conventions.md, "Errors"). SLUICE_CHECK is on in every build and is
// for states that would corrupt data if we went on; SLUICE_ASSERT is compiled out
// in release builds and is for the cheap-to-state, expensive-to-check rest.
#pragma once

namespace sluice::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* expr, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
}  // namespace sluice::detail

#define SLUICE_CHECK(expr, ...)                                                     \
    do {                                                                            \
        if (__builtin_expect(!(expr), 0)) {                                         \
            ::sluice::detail::check_failed(__FILE__, __LINE__, #expr, __VA_ARGS__); \
        }                                                                           \
    } while (0)

#ifdef NDEBUG
#define SLUICE_ASSERT(expr, ...) \
    do {                         \
        (void)sizeof(expr);      \
    } while (0)
#else
#define SLUICE_ASSERT(expr, ...) SLUICE_CHECK(expr, __VA_ARGS__)
#endif
