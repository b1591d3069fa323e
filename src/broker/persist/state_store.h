// SPDX-License-Identifier: Apache-2.0
//
// The broker's durable state store: persistent sessions, their queued and in-flight
// messages, and retained messages survive a restart (docs/promises.md, promise 4). It is a
// log-structured key/value journal with snapshots, separate from the telemetry WAL
// because its data is keyed, overwritten and compacted rather than appended and consumed.
// Format and failure analysis: docs/decisions/0002-session-persistence.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "base/result.h"
#include "broker/persist/errc.h"
#include "bus/file_system.h"

namespace sluice::broker::persist {

// Record kinds, stored on disk: never renumber, never reuse a value. The store itself
// treats every non-zero value alike; records.h says which value layout each kind uses.
enum class kind : uint8_t {
    session = 1,            // key: client id; value: encode(session_record)
    retained = 2,           // key: topic; value: encode(message_record)
    session_message = 3,    // key: session_message_key(); value: encode(session_message_record)
    resend_entry = 4,       // key: resend_entry_key(); value: encode(resend_entry_record)
    resend_checkpoint = 5,  // key: resend_checkpoint_key(partition); value: encode(resend_checkpoint_record)
    spool = 6,              // key: client id; value: encode(spool_record)
};

struct options {
    std::shared_ptr<bus::file_system> fs;  // null: bus::default_fs()
    // Longest a put waits for its group fsync (measured from the first put of the group).
    std::chrono::milliseconds sync_interval{10};
    // A group is written at once when this many bytes are queued.
    size_t group_bytes = 1u << 20;
    // Compact when the journal exceeds compact_ratio × the live data and compact_min_bytes.
    double compact_ratio = 4.0;
    uint64_t compact_min_bytes = 4u << 20;
    // Corruption in the middle of the journal fails open() with errc::corruption unless
    // `repair`: then the journal is copied to <journal>.corrupt, cut at the damage, and
    // the store opens with the state before it (logged as an error).
    bool repair = false;
    // Called by the writer before it syncs the journal (or a snapshot) that makes a group
    // durable: files whose contents the group's records refer to (the broker's session
    // spools) are synced here first. An error fails the group as a journal error would.
    std::function<std::error_code()> before_sync;
};

// Lifecycle: open() replays the files and starts one writer thread; close() (or the
// destructor) writes what is queued, compacts, and stops it.
//
// Threading: put/erase/erase_prefix/flush/stats may be called from any thread; they never
// do I/O. load() may be called from any thread but is meant for start-up, before the
// first put.
//
// Durability contract: after put()/erase() return, the change is queued in memory only. The
// writer thread appends queued changes to the journal in groups and fdatasyncs once per
// group (at most sync_interval after the group's first change, or sooner when group_bytes
// are queued or a flush() waits). After flush() returns success, every change queued
// before the call survives kill -9 and power loss. A crash loses the changes not yet
// synced: at most about one sync_interval of changes, never a part of one change, and
// never an older change (replay applies a prefix of the queued order).
//
// Failures: an I/O error while writing makes the current journal unusable; the store keeps
// the state in memory, flush() reports the error, and the next group retries by writing a
// complete snapshot into a fresh journal generation. last_error() tells the broker.
class state_store {
public:
    struct stats {
        uint64_t live_keys = 0;
        uint64_t live_bytes = 0;     // size the live state takes in a snapshot
        uint64_t journal_bytes = 0;  // current journal file, header included
        uint64_t syncs = 0;          // journal group fsyncs
        uint64_t compactions = 0;
        uint64_t pending_bytes = 0;  // queued, not yet written
        uint64_t write_errors = 0;
    };

    // Opens (creating) `dir`: reads the snapshot, replays the journal, truncates a torn
    // journal tail (logged as a warning with the bytes dropped), starts the writer.
    // Returns: the store; errc::io_error when the directory or a file cannot be read or
    // written; errc::corruption when the snapshot is damaged, a journal is newer than the
    // snapshot, or a record in the middle of the journal is damaged (logged with its file
    // and position; see options::repair); errc::unsupported_version for files of a newer
    // format; errc::locked when another open store (in any process) holds `dir`.
    static result<std::unique_ptr<state_store>> open(const std::string& dir, options opts = {});

    ~state_store();  // close() if not yet closed
    state_store(const state_store&) = delete;
    state_store& operator=(const state_store&) = delete;

    // Queues key := value. REQUIRES: not closed; the record (key + value + 14 bytes) is at
    // most 320 MiB.
    void put(kind k, std::string_view key, std::string_view value);
    // Queues the removal of key (a no-op if absent). REQUIRES: not closed.
    void erase(kind k, std::string_view key);
    // Queues the removal of every key of kind `k` that starts with `prefix` (e.g. all
    // session messages of a client: session_message_prefix()). REQUIRES: not closed.
    void erase_prefix(kind k, std::string_view prefix);

    // Blocks until every change queued before the call is durable (or failed to be).
    // Returns: success, or the error of the write that covered those changes.
    [[nodiscard]] result<void> flush();

    // The non-blocking flush, for event loops: `done` runs once every change queued before
    // the call is durable (error_code{}) or failed to be (the write's error). It runs on the
    // writer thread, at the group's fsync (no earlier sync is forced), so it must be quick
    // and not call back into the store's blocking functions: typically it posts to the
    // caller's loop. Callbacks run in registration order. REQUIRES: not closed.
    void when_durable(std::function<void(std::error_code)> done);

    // Visits the live state in (kind, key) byte order. The views are valid during the call.
    void load(const std::function<void(kind, std::string_view key, std::string_view value)>& visit) const;

    // Writes a snapshot now and starts a new journal; returns when done.
    [[nodiscard]] result<void> compact();

    // Flushes, compacts (if the journal holds anything), stops the writer and unlocks the
    // directory. Idempotent.
    // Returns the first error of those steps.
    [[nodiscard]] result<void> close();

    stats get_stats() const;
    // The error of the most recent failed write, or none.
    std::error_code last_error() const;

    class impl;

private:
    explicit state_store(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice::broker::persist
