// SPDX-License-Identifier: Apache-2.0
//
// The durable cursor file of the WAL: named consumers' next offsets per partition,
// rewritten atomically (write temp, fdatasync, rename, fsync dir) on every commit.
// Format in docs/wal-format.md "Cursor file".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "base/result.h"
#include "bus/file_system.h"

namespace sluice::bus::wal {

using cursor_map = std::map<std::pair<std::string, uint32_t>, uint64_t>;

std::string encode_cursors(const cursor_map& cursors);
// Returns errc::corruption when the bytes are not a valid cursor file.
result<cursor_map> decode_cursors(std::string_view bytes);

// Atomically replaces `path` with `cursors`; durable on success.
result<void> store_cursors(file_system& fs, const std::string& path, const cursor_map& cursors);
// Empty map when the file does not exist; errc::corruption / errc::io_error otherwise.
result<cursor_map> load_cursors(file_system& fs, const std::string& path);

}  // namespace sluice::bus::wal
