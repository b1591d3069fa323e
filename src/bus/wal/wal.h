// SPDX-License-Identifier: Apache-2.0
//
// The embedded write-ahead log behind the abstract bus: segment files per partition,
// a CRC per record, group commit on one writer thread per partition, recovery that
// truncates a torn tail and quarantines mid-log corruption, named durable cursors and
// a size quota. The format is in docs/wal-format.md (see bus/wal/format.h).
//
// Lifecycle: open_wal() recovers and starts one writer thread per partition; stop()
// (or destruction) drains and joins them. Durability contract per mode:
//   fsync (default): an append's callback reports success only after the record and
//     every record before it were written and fdatasync'ed; survives power loss.
//   batch_async: the callback runs after write(2); fdatasync follows within
//     group_commit_max_delay. Survives a process crash; a power loss can lose the
//     acknowledged records of the last window.
//   none: the callback runs when the writer dequeues the record, before write(2);
//     any crash can lose everything not yet written.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bus/bus.h"
#include "bus/file_system.h"
#include "bus/wal/format.h"

namespace sluice::bus {

enum class durability { fsync, batch_async, none };

struct wal_options {
    std::string dir;  // data dir/wal
    uint32_t partitions = 1;
    uint64_t segment_bytes = 64 << 20;  // roll a segment when it would exceed this
    // Total on-disk size (all partitions) at which over_quota() turns true, so callers
    // stop sending (back-pressure). Appends still succeed up to quota_hard_limit(): what
    // a caller accepted just before the quota was reached is never refused.
    uint64_t quota_bytes = 8ull << 30;
    std::chrono::microseconds group_commit_max_delay{1000};  // max wait to gather a group
    uint64_t group_commit_max_bytes = 4 << 20;               // a group is written once this much is queued
    durability mode = durability::fsync;
    std::chrono::seconds retention{0};  // 0 = keep until all cursors passed; else also delete older
};

// What recovery found and did, one entry per event (also logged).
struct recovery_event {
    enum class action {
        tail_truncated,         // torn/zero-filled/garbled end of the last segment cut off
        empty_segment_removed,  // last segment whose header never reached the disk
        segment_quarantined,    // renamed *.corrupt; its offsets become a missing range
        offsets_missing,        // gap between segments (e.g. an earlier quarantine)
    };
    action what;
    uint32_t partition = 0;
    std::string file;
    wal::damage record_damage = wal::damage::none;
    wal::header_status header = wal::header_status::ok;
    uint64_t position = 0;       // file position of the damage
    uint64_t bytes_dropped = 0;  // for tail_truncated
    uint64_t first_offset = 0;   // for segment_quarantined / offsets_missing: [first, end)
    uint64_t end_offset = 0;
};

// Opens (creating if needed) the WAL, running recovery: verify tail, truncate a torn
// last record (bad CRC/short/zero-filled at the very end of the last segment), report
// corruption in the middle (that segment is quarantined: renamed *.corrupt and
// reported through the log, `report` and stats.quarantined_segments; never silently
// skipped: readers get errc::corruption for its offsets).
// Returns: errc::invalid_argument (bad options), errc::io_error, errc::corruption
// (a segment of an unsupported format version).
result<std::unique_ptr<bus>> open_wal(const wal_options& options, std::shared_ptr<file_system> fs = default_fs(),
                                      std::vector<recovery_event>* report = nullptr);

// Layout helpers shared with sluice-wal-dump: <dir>/partition-<N>/<segments>, <dir>/cursors.
// The size past which appends fail with errc::quota_exceeded: the quota plus 1/8.
inline uint64_t quota_hard_limit(const wal_options& o) {
    return o.quota_bytes + o.quota_bytes / 8;
}

std::string partition_dir(const std::string& wal_dir, uint32_t partition);
std::string cursors_path(const std::string& wal_dir);

}  // namespace sluice::bus
