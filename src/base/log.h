// SPDX-License-Identifier: Apache-2.0
//
// Minimal leveled logging to stderr, safe from any thread. One line per call,
// written with a single write(2) so lines from event loops never interleave.
#pragma once

#include <cstdarg>

namespace sluice::log {

enum class level : int { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

void set_level(level l);
level current_level();
// Parses "debug", "info", "warn", "error", "off"; returns false when unknown.
bool parse_level(const char* text, level& out);

void write(level l, const char* module, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

}  // namespace sluice::log

#define SLUICE_LOG(lvl, module, ...)                                                   \
    do {                                                                               \
        if (static_cast<int>(lvl) >= static_cast<int>(::sluice::log::current_level())) \
            ::sluice::log::write(lvl, module, __VA_ARGS__);                            \
    } while (0)
#define SLUICE_DEBUG(module, ...) SLUICE_LOG(::sluice::log::level::debug, module, __VA_ARGS__)
#define SLUICE_INFO(module, ...) SLUICE_LOG(::sluice::log::level::info, module, __VA_ARGS__)
#define SLUICE_WARN(module, ...) SLUICE_LOG(::sluice::log::level::warn, module, __VA_ARGS__)
#define SLUICE_ERROR(module, ...) SLUICE_LOG(::sluice::log::level::error, module, __VA_ARGS__)
