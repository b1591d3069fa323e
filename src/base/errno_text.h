// SPDX-License-Identifier: Apache-2.0
//
// The text of an errno value, safe to call from any thread (std::strerror may share a
// buffer between threads).
#pragma once

#include <cstring>
#include <string>

namespace sluice {

inline std::string errno_text(int err) {
    char buf[128];
    // GNU strerror_r returns the message (maybe a static string, maybe buf).
    const char* text = ::strerror_r(err, buf, sizeof buf);
    return text;
}

}  // namespace sluice
