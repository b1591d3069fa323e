// SPDX-License-Identifier: Apache-2.0
//
// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected 0x82F63B78), the checksum of
// every WAL record and header (docs/wal-format.md). Uses the SSE4.2 crc32 instruction
// when the CPU has it (checked once at run time) and a slicing table otherwise; both
// give identical results (tested against RFC 3720 B.4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::bus::wal {

// Extends `crc` (the CRC of some preceding bytes; 0 for none) with data[0, n).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);
inline uint32_t crc32c(const void* data, size_t n) {
    return crc32c_extend(0, data, n);
}
inline uint32_t crc32c(std::string_view s) {
    return crc32c(s.data(), s.size());
}

// The portable table implementation, exposed so tests can compare both paths.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n);
bool crc32c_hardware_available();

}  // namespace sluice::bus::wal
