// SPDX-License-Identifier: Apache-2.0
//
// Queued QoS 1/2 messages of persistent sessions live on disk, not in memory (issue 10): a
// session's queue is appended to its own spool file, and read back a chunk at a time while
// its client takes it. What is in memory per session is a few offsets
// (session::spool_state); the state store keeps them too (persist::spool_record), so a
// restart reads neither the messages nor the files, and its time does not grow with what
// is queued.
//
// Durability: a record is written with pwrite(2) on the shard's thread, then its range
// is put in the state store. The store's writer syncs every spool file written since its
// last group (spool_directory::sync_written, its before_sync hook) before it syncs the
// journal, so a durable spool_record never points past durable spool bytes; bytes past
// a record's end_offset are ignored and overwritten. A file is unlinked only after the
// record that stopped referring to it is durable. Format: a header, then records framed
// as the WAL's (bus/framing.h) whose bodies are persist::encode(session_message_record).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/result.h"
#include "base/thread_annotations.h"
#include "broker/persist/records.h"

namespace sluice::broker {

// One spool file, open for reading and writing. Used by one shard at a time; sync() may
// run on the state store's writer thread alongside.
class spool_file {
public:
    spool_file(uint64_t id, std::string path, int fd) : id_(id), path_(std::move(path)), fd_(fd) {}
    ~spool_file();
    spool_file(const spool_file&) = delete;
    spool_file& operator=(const spool_file&) = delete;

    uint64_t id() const { return id_; }
    result<void> write_at(uint64_t offset, std::string_view bytes);
    // Reads up to n bytes; fewer only at the end of the file.
    result<size_t> read_at(uint64_t offset, char* dst, size_t n) const;
    result<void> sync();

private:
    uint64_t id_;
    std::string path_;
    int fd_;
};

// The directory of every session's spool file, shared by all shards.
class spool_directory {
public:
    // Creates `dir` if needed. Errors: the directory cannot be created or listed.
    static result<std::unique_ptr<spool_directory>> open(const std::string& dir);

    // A new, empty file with an id not used before in this directory.
    result<std::shared_ptr<spool_file>> create();
    // The file of a spool_record. Errors: missing or unreadable.
    result<std::shared_ptr<spool_file>> open_file(uint64_t id);
    // `f` was written: the next sync_written() syncs it. Any thread.
    void written(const std::shared_ptr<spool_file>& f);
    // Syncs what was written (and created) since the last call. Any thread; the state
    // store's writer calls it before each journal sync.
    std::error_code sync_written();
    // Unlinks file `id`. Any thread.
    void remove(uint64_t id);
    // Start-up: unlinks every spool file whose id is not in `live` (left by a crash
    // between creating a file and its first durable record, or after the last).
    void remove_all_but(const std::unordered_set<uint64_t>& live);

    const std::string& dir() const { return dir_; }

private:
    explicit spool_directory(std::string dir, uint64_t next_id) : dir_(std::move(dir)), next_id_(next_id) {}
    std::string path_of(uint64_t id) const;

    std::string dir_;
    mutex mu_;
    uint64_t next_id_ SLUICE_GUARDED_BY(mu_);
    bool created_since_sync_ SLUICE_GUARDED_BY(mu_) = false;
    std::vector<std::shared_ptr<spool_file>> written_ SLUICE_GUARDED_BY(mu_);
};

inline constexpr size_t k_spool_header_size = 16;
// The header every spool file starts with (written by spool_directory::create).
std::string_view spool_file_header();
// Appends one framed record for `m` to `out`.
void encode_spool_entry(std::string& out, const persist::session_message_record& m);

// One record read back: its message, and where the next record starts.
struct spool_entry {
    persist::session_message_record record;
    uint64_t end_offset = 0;
};

// Reads the records of [from, end) of `f` that start within its first `max_bytes` (at
// least one whole record). Errors: persist::errc::corruption when the bytes are not a
// record (durable data is damaged: the caller drops the rest of that spool),
// persist::errc::io_error when they cannot be read.
result<std::vector<spool_entry>> read_spool(const spool_file& f, uint64_t from, uint64_t end, size_t max_bytes);

}  // namespace sluice::broker
