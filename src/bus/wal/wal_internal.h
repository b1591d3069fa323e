// SPDX-License-Identifier: Apache-2.0
//
// Private to bus/wal: the partition shared by the writer (wal_writer.cc), recovery
// (recovery.cc), the readers (reader.cc) and the bus (wal.cc). Threads: callers of
// append() only take partition::queue_mu_ to push; the partition's writer thread owns
// the active segment file; readers and stats read the segment list under
// partition::state_mu_. No disk I/O happens under a lock an appender takes.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/thread_annotations.h"
#include "bus/wal/wal.h"

namespace sluice::bus::wal::detail {

using clock = std::chrono::steady_clock;

inline std::error_code err(errc e) {
    return make_error_code(e);
}

struct segment_info {
    uint64_t base = 0;
    std::string path;
    uint64_t bytes = 0;       // visible (published) bytes
    uint64_t end_offset = 0;  // offset after the last visible record
    int64_t newest_time_ms = 0;
};

struct missing_range {
    uint64_t begin = 0;
    uint64_t end = 0;
};

struct pending {
    message msg;
    append_callback done;
    std::error_code preset;  // failed at enqueue (quota); the writer only runs the callback
};

// One partition: its segments, its writer thread and its readers' shared view.
class partition {
public:
    partition(uint32_t id, std::string dir, const wal_options& opts, std::shared_ptr<file_system> fs,
              std::atomic<uint64_t>* total_bytes)
        : id_(id),
          dir_(std::move(dir)),
          opts_(opts),
          segment_limit_(segment_limit(opts)),
          fs_(std::move(fs)),
          total_bytes_(total_bytes) {}

    ~partition() { SLUICE_CHECK(!writer_.joinable(), "partition destroyed while running"); }

    // Defined in recovery.cc.
    result<void> recover(std::vector<recovery_event>* report);
    // start(), stop(), collect() and the private writer functions: wal_writer.cc.
    void start() {
        writer_ = std::thread([this] { writer_loop(); });
    }
    void stop();

    // Takes `p` (moves from it) unless the partition is stopping: then returns false and
    // leaves it to the caller.
    bool enqueue(pending& p) {
        {
            mutex_lock lock(queue_mu_);
            if (stopping_) return false;
            if (queue_.empty()) first_enqueue_ = clock::now();
            queued_bytes_ += p.msg.payload.size() + p.msg.topic.size() + 32;
            queue_.push_back(std::move(p));
        }
        queue_cv_.notify_one();
        return true;
    }

    // Reader support: waits up to `wait` for visible_end > pos. Returns the visible
    // end, or errc::closed once stopped and nothing more is visible.
    result<uint64_t> wait_visible(uint64_t pos, std::chrono::milliseconds wait) {
        const auto deadline = clock::now() + wait;
        mutex_lock lock(state_mu_);
        while (visible_end_ <= pos && !closed_) {
            if (lock.wait_until(state_cv_, deadline) == std::cv_status::timeout) break;
        }
        if (visible_end_ > pos) return visible_end_;
        if (closed_) return err(errc::closed);
        return visible_end_;
    }
    // The segment holding `pos` (a copy of its current visible state).
    result<segment_info> locate(uint64_t pos) const {
        mutex_lock lock(state_mu_);
        for (const auto& m : missing_) {
            if (pos >= m.begin && pos < m.end) return err(errc::corruption);
        }
        if (segments_.empty() || pos < segments_.front().base) return err(errc::not_found);
        auto it = std::upper_bound(segments_.begin(), segments_.end(), pos,
                                   [](uint64_t p, const segment_info& s) { return p < s.base; });
        --it;
        if (pos >= it->end_offset) return err(errc::not_found);
        return *it;
    }
    uint64_t visible_end() const {
        mutex_lock lock(state_mu_);
        return visible_end_;
    }
    uint64_t oldest_offset() const {
        mutex_lock lock(state_mu_);
        return segments_.empty() ? visible_end_ : segments_.front().base;
    }
    bus::stats stats() const {
        bus::stats s;
        {
            mutex_lock lock(state_mu_);
            s.durable_end = visible_end_;
            s.newest_receive_time_ms = newest_time_ms_;
            s.oldest_offset = segments_.empty() ? visible_end_ : segments_.front().base;
        }
        s.bytes_on_disk = bytes_.load();
        s.fsyncs = fsyncs_.load();
        s.appends = appends_.load();
        s.quarantined_segments = quarantined_.load();
        return s;
    }

    // Deletes whole sealed segments (never the active one) from the front while every
    // record in them is below `min_cursor` (when set) or older than the retention.
    void collect(std::optional<uint64_t> min_cursor);

private:
    void writer_loop();
    // Whether the group being gathered may be written now (see writer_loop).
    bool group_full() const SLUICE_REQUIRES(queue_mu_) {
        return queued_bytes_ >= opts_.group_commit_max_bytes || stopping_ ||
               (last_group_size_ > 1 && queue_.size() >= last_group_size_);
    }
    void process(std::vector<pending>& batch);
    // Writes chunk_ (and syncs when `sync`); publishes or fails staged_.
    bool flush_chunk(bool sync);
    bool roll();
    result<void> create_segment(uint64_t base);
    bool sync_active();
    void fail_staged(std::error_code e);
    void add_bytes(uint64_t n) {
        bytes_.fetch_add(n);
        total_bytes_->fetch_add(n);
    }
    void sub_bytes(uint64_t n) {
        bytes_.fetch_sub(n);
        total_bytes_->fetch_sub(n);
    }
    void record_event(std::vector<recovery_event>* report, recovery_event ev) {
        if (report) report->push_back(std::move(ev));
    }

    // A segment rolls at segment_bytes, or earlier so that every partition's active
    // segment together stays well below the quota: only sealed segments can be deleted,
    // so an active segment as large as the quota would hold it forever (issue 11).
    static uint64_t segment_limit(const wal_options& o) {
        const uint64_t share = o.quota_bytes / (4 * uint64_t{std::max<uint32_t>(o.partitions, 1)});
        return std::max<uint64_t>(std::min<uint64_t>(o.segment_bytes, share),
                                  wal::k_segment_header_size + wal::k_record_header_size + wal::k_min_body_size);
    }

    const uint32_t id_;
    const std::string dir_;
    const wal_options opts_;
    const uint64_t segment_limit_;
    const std::shared_ptr<file_system> fs_;
    std::atomic<uint64_t>* const total_bytes_;

    // Appenders' queue.
    sluice::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::vector<pending> queue_ SLUICE_GUARDED_BY(queue_mu_);
    uint64_t queued_bytes_ SLUICE_GUARDED_BY(queue_mu_) = 0;
    clock::time_point first_enqueue_ SLUICE_GUARDED_BY(queue_mu_);
    bool stopping_ SLUICE_GUARDED_BY(queue_mu_) = false;

    // Writer thread only.
    std::thread writer_;
    std::unique_ptr<writable_file> active_;
    uint64_t next_offset_ = 0;     // next offset to assign
    uint64_t active_records_ = 0;  // records in the active segment (written or staged)
    bool broken_ = false;          // a write/sync failed in a way we cannot undo
    bool unsynced_ = false;        // batch_async: written but not yet synced
    clock::time_point last_sync_;
    clock::time_point last_collect_;
    size_t last_group_size_ = 0;  // appends in the previous group (read under queue_mu_ by the writer)
    std::string chunk_;           // encoded records not yet written
    struct staged_record {
        append_callback done;
        uint64_t offset;
        int64_t time_ms;
    };
    std::vector<staged_record> staged_;  // records in chunk_ (or written, awaiting callbacks)

    // Readers' and stats' view.
    mutable sluice::mutex state_mu_;
    std::condition_variable state_cv_;
    std::vector<segment_info> segments_ SLUICE_GUARDED_BY(state_mu_);  // sorted by base
    std::vector<missing_range> missing_ SLUICE_GUARDED_BY(state_mu_);
    uint64_t visible_end_ SLUICE_GUARDED_BY(state_mu_) = 0;
    int64_t newest_time_ms_ SLUICE_GUARDED_BY(state_mu_) = 0;
    bool closed_ SLUICE_GUARDED_BY(state_mu_) = false;

    sluice::mutex collect_mu_;  // one collect() at a time (writer thread and bus::commit)
    std::atomic<uint64_t> bytes_{0};
    std::atomic<uint64_t> fsyncs_{0};
    std::atomic<uint64_t> appends_{0};
    std::atomic<uint64_t> quarantined_{0};
};

// A sequential reader over `part` from offset `from` (reader.cc).
std::unique_ptr<reader> make_reader(std::shared_ptr<partition> part, std::shared_ptr<file_system> fs, uint64_t from);

}  // namespace sluice::bus::wal::detail
