// SPDX-License-Identifier: Apache-2.0
//
// Error codes of the broker's state store (persistent sessions and retained messages).
// Storage keeps the kind of failure (docs/conventions.md, "Errors"): an I/O error is retried by the next
// compaction, corruption stops recovery and needs an operator (or options::repair), and
// a record written by a newer Sluice is refused rather than misread.
#pragma once

#include <system_error>

namespace sluice::broker::persist {

enum class errc {
    io_error = 1,         // the operating system failed a read, write, sync or rename
    corruption,           // on-disk bytes fail their checks (CRC, framing, record layout)
    unsupported_version,  // an intact file or record of a format this build cannot read
    closed,               // the store was closed
    locked,               // another state_store (in this or another process) has the directory open
};

const std::error_category& persist_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

}  // namespace sluice::broker::persist

template <>
struct std::is_error_code_enum<sluice::broker::persist::errc> : std::true_type {};
