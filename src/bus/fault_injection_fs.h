// SPDX-License-Identifier: Apache-2.0
//
// A file_system for tests that sits on top of a real one (LevelDB's
// db/fault_injection_test.cc idea). It counts operations, fails chosen operations on
// paths containing a given substring (Redpanda's failure probes, by name), and
// simulates a machine crash: crash() makes every later mutating call fail without
// effect, drop_unsynced_data() then truncates each file back to the size covered by
// its last successful sync and deletes files whose creation no sync_dir() covered.
// Simplification: rename() is treated as durable immediately (the target's *content*
// still needs its own sync); see docs/wal-format.md "Testing".
#pragma once

#include <atomic>
#include <map>
#include <string>

#include "base/thread_annotations.h"
#include "bus/file_system.h"

namespace sluice::bus {

class fault_injection_fs final : public file_system {
public:
    enum class op { write, sync, sync_dir, rename, open, truncate };

    explicit fault_injection_fs(std::shared_ptr<file_system> base = default_fs());

    // The next `count` calls of `o` on a path containing `path_substring` fail with
    // errc::io_error (count < 0: until clear_faults()).
    void inject(op o, std::string path_substring, int count = -1);
    void clear_faults();

    // From now on every mutating call fails with errc::io_error and changes nothing.
    void crash();
    bool crashed() const { return crashed_.load(); }
    // Drops all data not covered by a successful sync, as a power loss would. Call
    // after crash() and after the bus using this fs has been stopped.
    void drop_unsynced_data();

    uint64_t syncs() const { return syncs_.load(); }
    uint64_t dir_syncs() const { return dir_syncs_.load(); }
    uint64_t writes() const { return writes_.load(); }

    result<std::unique_ptr<writable_file>> open_writable(const std::string& path) override;
    result<std::unique_ptr<readable_file>> open_readable(const std::string& path) override;
    result<void> rename(const std::string& from, const std::string& to) override;
    result<void> unlink(const std::string& path) override;
    result<std::vector<std::string>> list(const std::string& dir) override;
    result<uint64_t> file_size(const std::string& path) override;
    result<void> truncate(const std::string& path, uint64_t size) override;
    result<void> sync_dir(const std::string& dir) override;
    result<void> create_dirs(const std::string& dir) override;

private:
    friend class fault_file;
    struct file_state {
        uint64_t synced_size = 0;
        bool unsynced_create = false;  // created since the last sync_dir of its directory
    };
    // True (and consumes one count) when an injected fault matches.
    bool should_fail(op o, const std::string& path);
    void on_synced(const std::string& path, uint64_t size);
    void on_truncated(const std::string& path, uint64_t size);

    std::shared_ptr<file_system> base_;
    std::atomic<bool> crashed_{false};
    std::atomic<uint64_t> syncs_{0};
    std::atomic<uint64_t> dir_syncs_{0};
    std::atomic<uint64_t> writes_{0};
    sluice::mutex mu_;
    struct fault {
        op o;
        std::string substring;
        int count;
    };
    std::vector<fault> faults_ SLUICE_GUARDED_BY(mu_);
    std::map<std::string, file_state> files_ SLUICE_GUARDED_BY(mu_);  // files opened for writing
};

}  // namespace sluice::bus
