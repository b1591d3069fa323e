// SPDX-License-Identifier: Apache-2.0
#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace sluice::log {
namespace {
std::atomic<int> g_level{static_cast<int>(level::info)};
const char* const k_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};
}  // namespace

void set_level(level l) {
    g_level.store(static_cast<int>(l), std::memory_order_relaxed);
}
level current_level() {
    return static_cast<level>(g_level.load(std::memory_order_relaxed));
}

bool parse_level(const char* text, level& out) {
    for (int i = 0; i <= static_cast<int>(level::off); ++i) {
        if (strcasecmp(text, k_names[i]) == 0) {
            out = static_cast<level>(i);
            return true;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        out = level::warn;
        return true;
    }
    return false;
}

void write(level l, const char* module, const char* fmt, ...) {
    char line[2048];
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s: ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000),
                          k_names[static_cast<int>(l)], module);
    va_list args;
    va_start(args, fmt);
    int m = std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, args);
    va_end(args);
    size_t len = static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t ignored = ::write(STDERR_FILENO, line, len);
    (void)ignored;
}

}  // namespace sluice::log
