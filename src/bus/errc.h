// SPDX-License-Identifier: Apache-2.0
//
// Error codes of the bus module. Every bus backend (the embedded WAL, later Kafka)
// reports the environment's failures with these values so that the broker and the
// pipeline can react to the *kind* of failure (back-pressure on quota_exceeded,
// alarm on corruption) without knowing which backend is behind the interface.
#pragma once

#include <system_error>

namespace sluice::bus {

enum class errc {
    quota_exceeded = 1,  // the log is at/over its size quota; retry after consumers advance
    io_error,            // the operating system failed a read, write or sync
    corruption,          // on-disk bytes fail their checks (CRC, framing, quarantined range)
    closed,              // the bus was stopped
    not_found,           // offset no longer (or not yet) present, unknown partition/file
    invalid_argument,    // caller passed an impossible value (e.g. cursor beyond the end)
};

const std::error_category& bus_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

}  // namespace sluice::bus

template <>
struct std::is_error_code_enum<sluice::bus::errc> : std::true_type {};
