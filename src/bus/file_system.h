// SPDX-License-Identifier: Apache-2.0
//
// The file system behind the WAL, as an interface (LevelDB's Env idea) so that tests
// can count syncs, fail operations by name and simulate a crash that drops every byte
// not covered by a successful sync (bus/fault_injection_fs.h). Only the operations the
// WAL needs are here. All paths are plain strings; errors are values: errc::not_found
// when a path does not exist, errc::io_error for every other failure (logged with errno).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "bus/errc.h"

namespace sluice::bus {

// A file open for writing. Used by one thread at a time.
// Durability contract: after append()/pwrite() return, the bytes are in the OS page
// cache (they survive a process crash, not a power loss); after sync() returns
// successfully, every byte written before the call survives a power loss.
class writable_file {
public:
    virtual ~writable_file() = default;
    // Writes `data` at the current end of the file (the whole buffer or an error).
    virtual result<void> append(std::string_view data) = 0;
    // Writes `data` at `offset`; the end moves if the write extends the file.
    virtual result<void> pwrite(uint64_t offset, std::string_view data) = 0;
    virtual result<void> sync() = 0;  // fdatasync(2)
    virtual result<void> truncate(uint64_t size) = 0;
    virtual uint64_t size() const = 0;  // current end of the file
};

// A file open for reading; read_at may be called from one thread at a time.
class readable_file {
public:
    virtual ~readable_file() = default;
    // Reads up to n bytes at offset; returns fewer only at the end of the file.
    virtual result<size_t> read_at(uint64_t offset, char* dst, size_t n) = 0;
    virtual result<uint64_t> size() = 0;
};

class file_system {
public:
    virtual ~file_system() = default;
    // Opens for writing at the end, creating the file if missing.
    virtual result<std::unique_ptr<writable_file>> open_writable(const std::string& path) = 0;
    virtual result<std::unique_ptr<readable_file>> open_readable(const std::string& path) = 0;
    // Atomically replaces `to` (if present) by `from`. Durable after sync_dir().
    virtual result<void> rename(const std::string& from, const std::string& to) = 0;
    virtual result<void> unlink(const std::string& path) = 0;
    // Names (not paths) of the regular files in `dir`, unsorted.
    virtual result<std::vector<std::string>> list(const std::string& dir) = 0;
    virtual result<uint64_t> file_size(const std::string& path) = 0;
    virtual result<void> truncate(const std::string& path, uint64_t size) = 0;
    // Makes creations, renames and unlinks in `dir` durable (fsync on the directory).
    virtual result<void> sync_dir(const std::string& dir) = 0;
    // Creates `dir` and its parents; success when it already exists.
    virtual result<void> create_dirs(const std::string& dir) = 0;
};

// The real POSIX file system (pread/pwrite/fdatasync). Shared, stateless, thread-safe.
std::shared_ptr<file_system> default_fs();

// Reads a whole file. Returns errc::not_found / errc::io_error.
result<std::string> read_whole_file(file_system& fs, const std::string& path);

}  // namespace sluice::bus
