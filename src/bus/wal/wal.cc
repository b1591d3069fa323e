// SPDX-License-Identifier: Apache-2.0
//
// The WAL bus: recovery, the per-partition writer thread (group commit), readers,
// cursors, quota and segment deletion. Threads: callers of append() only take
// partition::queue_mu_ to push; the partition's writer thread owns the active segment
// file; readers and stats read the segment list under partition::state_mu_. No disk
// I/O happens under a lock an appender takes.
#include "bus/wal/wal.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/endian.h"
#include "base/log.h"
#include "bus/wal/cursors.h"

namespace sluice::bus {
namespace {

using clock = std::chrono::steady_clock;
using wal::damage;
using wal::header_status;

std::error_code err(errc e) {
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

class wal_bus;

// One partition: its segments, its writer thread and its readers' shared view.
class partition : public std::enable_shared_from_this<partition> {
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

    result<void> recover(std::vector<recovery_event>* report);
    void start() {
        writer_ = std::thread([this] { writer_loop(); });
    }
    void stop();

    // Takes `p` (moves from it) unless the partition is stopping: then returns false and
    // leaves it to the caller.
    bool enqueue(pending& p) {
        {
            std::lock_guard lock(queue_mu_);
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
        std::unique_lock lock(state_mu_);
        state_cv_.wait_for(lock, wait, [&] { return visible_end_ > pos || closed_; });
        if (visible_end_ > pos) return visible_end_;
        if (closed_) return err(errc::closed);
        return visible_end_;
    }
    // The segment holding `pos` (a copy of its current visible state).
    result<segment_info> locate(uint64_t pos) const {
        std::lock_guard lock(state_mu_);
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
        std::lock_guard lock(state_mu_);
        return visible_end_;
    }
    uint64_t oldest_offset() const {
        std::lock_guard lock(state_mu_);
        return segments_.empty() ? visible_end_ : segments_.front().base;
    }
    bus::stats stats() const {
        bus::stats s;
        {
            std::lock_guard lock(state_mu_);
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
    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::vector<pending> queue_;       // guarded by queue_mu_
    uint64_t queued_bytes_ = 0;        // guarded by queue_mu_
    clock::time_point first_enqueue_;  // guarded by queue_mu_
    bool stopping_ = false;            // guarded by queue_mu_

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
    mutable std::mutex state_mu_;
    std::condition_variable state_cv_;
    std::vector<segment_info> segments_;  // guarded by state_mu_, sorted by base
    std::vector<missing_range> missing_;  // guarded by state_mu_
    uint64_t visible_end_ = 0;            // guarded by state_mu_
    int64_t newest_time_ms_ = 0;          // guarded by state_mu_
    bool closed_ = false;                 // guarded by state_mu_

    std::mutex collect_mu_;
    std::atomic<uint64_t> bytes_{0};
    std::atomic<uint64_t> fsyncs_{0};
    std::atomic<uint64_t> appends_{0};
    std::atomic<uint64_t> quarantined_{0};
};

result<void> partition::create_segment(uint64_t base) {
    const std::string path = dir_ + "/" + wal::segment_file_name(base);
    auto file = fs_->open_writable(path);
    if (!file) return file.error();
    if ((*file)->size() != 0) {
        SLUICE_ERROR("bus", "wal: new segment %s already exists", path.c_str());
        return err(errc::io_error);
    }
    const std::string header = wal::encode_segment_header(id_, base);
    if (auto r = (*file)->append(header); !r) return r;
    if (auto r = (*file)->sync(); !r) return r;
    fsyncs_.fetch_add(1);
    if (auto r = fs_->sync_dir(dir_); !r) return r;
    active_ = std::move(*file);
    active_records_ = 0;
    add_bytes(header.size());
    std::lock_guard lock(state_mu_);
    segments_.push_back({base, path, header.size(), base, 0});
    return ok();
}

result<void> partition::recover(std::vector<recovery_event>* report) {
    if (auto r = fs_->create_dirs(dir_); !r) return r;
    auto names = fs_->list(dir_);
    if (!names) return names.error();
    std::vector<uint64_t> bases;
    for (const auto& name : *names) {
        if (auto base = wal::parse_segment_file_name(name))
            bases.push_back(*base);
        else if (name.size() > 8 && name.compare(name.size() - 8, 8, ".corrupt") == 0)
            SLUICE_WARN("bus", "wal: partition %u keeps quarantined file %s/%s", id_, dir_.c_str(), name.c_str());
    }
    std::sort(bases.begin(), bases.end());

    std::vector<segment_info> segs;
    std::vector<missing_range> missing;
    uint64_t expected = bases.empty() ? 0 : bases.front();
    for (size_t i = 0; i < bases.size(); ++i) {
        const bool last = i + 1 == bases.size();
        const uint64_t base = bases[i];
        const std::string name = wal::segment_file_name(base);
        const std::string path = dir_ + "/" + name;
        auto data = read_whole_file(*fs_, path);
        if (!data) return data.error();
        if (base != expected) {
            if (base < expected) {
                SLUICE_ERROR("bus", "wal: segment %s overlaps offsets up to %llu", path.c_str(),
                             static_cast<unsigned long long>(expected));
                return err(errc::corruption);
            }
            SLUICE_ERROR("bus", "wal: partition %u offsets [%llu, %llu) are missing", id_,
                         static_cast<unsigned long long>(expected), static_cast<unsigned long long>(base));
            missing.push_back({expected, base});
            record_event(report, {recovery_event::action::offsets_missing, id_, path, damage::none, header_status::ok,
                                  0, 0, expected, base});
        }
        wal::scan_result scan = wal::scan_segment(*data, base);
        if (scan.header == header_status::unsupported_version) {
            SLUICE_ERROR("bus", "wal: %s has format version %u; this build reads %u to %u", path.c_str(), scan.version,
                         wal::k_oldest_readable_version, wal::k_format_version);
            return err(errc::corruption);
        }
        if (last && (scan.header == header_status::short_file || scan.header == header_status::zero_filled)) {
            // Created, but the header never reached the disk: a crash during a roll.
            SLUICE_WARN("bus", "wal: removing segment %s: %s", path.c_str(), wal::to_string(scan.header));
            if (auto r = fs_->unlink(path); !r) return r;
            if (auto r = fs_->sync_dir(dir_); !r) return r;
            record_event(report, {recovery_event::action::empty_segment_removed, id_, path, damage::none, scan.header,
                                  0, data->size(), base, base});
            expected = base;
            continue;
        }
        const bool tail_damage =
            scan.header == header_status::ok && scan.first_damage != damage::none && !scan.valid_after_damage;
        if (scan.header != header_status::ok || (scan.first_damage != damage::none && !(last && tail_damage))) {
            // Corruption in the middle of the log: quarantine, never skip silently.
            uint64_t end = last ? std::max(scan.next_offset, scan.valid_after_damage ? scan.max_offset_after_damage + 1
                                                                                     : scan.next_offset)
                                : bases[i + 1];
            if (!last) end = std::max(end, base);
            SLUICE_ERROR("bus",
                         "wal: CORRUPTION in %s (%s, %s at byte %llu); quarantined as %s.corrupt, offsets "
                         "[%llu, %llu) unavailable",
                         path.c_str(), wal::to_string(scan.header), wal::to_string(scan.first_damage),
                         static_cast<unsigned long long>(scan.damage_pos), name.c_str(),
                         static_cast<unsigned long long>(base), static_cast<unsigned long long>(end));
            if (auto r = fs_->rename(path, path + ".corrupt"); !r) return r;
            if (auto r = fs_->sync_dir(dir_); !r) return r;
            quarantined_.fetch_add(1);
            if (end > base) missing.push_back({base, end});
            record_event(report, {recovery_event::action::segment_quarantined, id_, path, scan.first_damage,
                                  scan.header, scan.damage_pos, 0, base, end});
            expected = end;
            continue;
        }
        uint64_t size = data->size();
        if (scan.first_damage != damage::none) {
            SLUICE_WARN("bus", "wal: %s: %s at byte %llu; truncating %llu bytes of torn tail", path.c_str(),
                        wal::to_string(scan.first_damage), static_cast<unsigned long long>(scan.damage_pos),
                        static_cast<unsigned long long>(size - scan.valid_bytes));
            if (auto r = fs_->truncate(path, scan.valid_bytes); !r) return r;
            record_event(report, {recovery_event::action::tail_truncated, id_, path, scan.first_damage,
                                  header_status::ok, scan.damage_pos, size - scan.valid_bytes, 0, 0});
            size = scan.valid_bytes;
        }
        segs.push_back({base, path, size, scan.next_offset, scan.newest_time_ms});
        expected = scan.next_offset;
    }

    next_offset_ = expected;
    {
        std::lock_guard lock(state_mu_);
        segments_ = segs;
        missing_ = missing;
        visible_end_ = next_offset_;
        for (const auto& s : segs)
            newest_time_ms_ = std::max(newest_time_ms_, s.newest_time_ms);
    }
    for (const auto& s : segs)
        add_bytes(s.bytes);

    // A last segment already at its size limit (e.g. the quota was lowered since it was
    // written) is sealed now rather than reopened, so it can be deleted once consumed.
    if (!segs.empty() && segs.back().end_offset == next_offset_) {
        auto file = fs_->open_writable(segs.back().path);
        if (!file) return file.error();
        if (auto r = (*file)->sync(); !r) return r;  // makes a truncation durable
        active_ = std::move(*file);
        active_records_ = segs.back().end_offset - segs.back().base;
        if (segs.back().bytes >= segment_limit_ && active_records_ > 0) {
            SLUICE_INFO("bus", "wal: partition %u: last segment %s (%llu bytes) is at the segment limit (%llu); sealed",
                        id_, segs.back().path.c_str(), static_cast<unsigned long long>(segs.back().bytes),
                        static_cast<unsigned long long>(segment_limit_));
            if (auto r = create_segment(next_offset_); !r) return r;
        }
    } else {
        if (auto r = create_segment(next_offset_); !r) return r;
    }
    last_sync_ = clock::now();
    last_collect_ = clock::now();
    return ok();
}

void partition::stop() {
    {
        std::lock_guard lock(queue_mu_);
        if (stopping_ && !writer_.joinable()) return;
        stopping_ = true;
    }
    queue_cv_.notify_one();
    if (writer_.joinable()) writer_.join();
    {
        std::lock_guard lock(state_mu_);
        closed_ = true;
    }
    state_cv_.notify_all();
}

void partition::writer_loop() {
    const bool async = opts_.mode != durability::fsync;  // sync on the window timer
    for (;;) {
        std::vector<pending> batch;
        {
            std::unique_lock lock(queue_mu_);
            auto deadline = clock::now() + std::chrono::seconds(1);
            if (async && unsynced_) deadline = std::min(deadline, last_sync_ + opts_.group_commit_max_delay);
            queue_cv_.wait_until(lock, deadline, [&] { return !queue_.empty() || stopping_; });
            if (queue_.empty()) {
                if (stopping_) break;
                lock.unlock();
                if (async && unsynced_ && clock::now() >= last_sync_ + opts_.group_commit_max_delay) sync_active();
                if (opts_.retention.count() > 0 && clock::now() - last_collect_ >= std::chrono::seconds(1)) {
                    last_collect_ = clock::now();
                    collect(std::nullopt);
                }
                continue;
            }
            // Gather a group: wait up to the max delay, but stop as soon as the group is
            // as large as the previous one (the appenders that were waiting on the last
            // fsync are all back) or max_bytes is reached.
            auto full = [&] {
                return queued_bytes_ >= opts_.group_commit_max_bytes || stopping_ ||
                       (last_group_size_ > 1 && queue_.size() >= last_group_size_);
            };
            if (opts_.mode == durability::fsync && opts_.group_commit_max_delay.count() > 0 && !full()) {
                queue_cv_.wait_until(lock, first_enqueue_ + opts_.group_commit_max_delay, full);
            }
            last_group_size_ = queue_.size();
            batch.swap(queue_);
            queued_bytes_ = 0;
        }
        process(batch);
        if (async && unsynced_ && clock::now() >= last_sync_ + opts_.group_commit_max_delay) sync_active();
    }
    if (unsynced_) sync_active();
}

bool partition::sync_active() {
    if (broken_ || !active_) return false;
    auto r = active_->sync();
    last_sync_ = clock::now();
    if (!r) {
        SLUICE_ERROR("bus", "wal: partition %u fdatasync failed; partition stops accepting appends", id_);
        broken_ = true;
        return false;
    }
    fsyncs_.fetch_add(1);
    unsynced_ = false;
    return true;
}

void partition::fail_staged(std::error_code e) {
    for (auto& s : staged_) {
        if (opts_.mode != durability::none) s.done(e);
    }
    staged_.clear();
}

bool partition::flush_chunk(bool sync) {
    if (staged_.empty()) return true;
    const uint64_t before = active_->size();
    if (auto r = active_->append(chunk_); !r) {
        SLUICE_ERROR("bus", "wal: partition %u write of %zu bytes failed", id_, chunk_.size());
        if (!active_->truncate(before)) broken_ = true;
        next_offset_ = staged_.front().offset;
        active_records_ -= staged_.size();
        chunk_.clear();
        fail_staged(err(errc::io_error));
        return false;
    }
    add_bytes(chunk_.size());
    chunk_.clear();
    if (sync) {
        if (!sync_active()) {
            fail_staged(err(errc::io_error));
            return false;
        }
    } else {
        unsynced_ = true;
    }
    {
        std::lock_guard lock(state_mu_);
        auto& seg = segments_.back();
        seg.bytes = active_->size();
        seg.end_offset = staged_.back().offset + 1;
        for (const auto& s : staged_)
            seg.newest_time_ms = std::max(seg.newest_time_ms, s.time_ms);
        newest_time_ms_ = std::max(newest_time_ms_, seg.newest_time_ms);
        visible_end_ = seg.end_offset;
    }
    state_cv_.notify_all();
    appends_.fetch_add(staged_.size());
    for (auto& s : staged_) {
        if (opts_.mode != durability::none) s.done(s.offset);
    }
    staged_.clear();
    return true;
}

bool partition::roll() {
    // The old segment is complete and synced before the new one exists, so only the
    // last segment can ever have a torn tail.
    if (unsynced_ && !sync_active()) return false;
    if (auto r = create_segment(next_offset_); !r) {
        SLUICE_ERROR("bus", "wal: partition %u cannot create segment %llu", id_,
                     static_cast<unsigned long long>(next_offset_));
        broken_ = true;
        return false;
    }
    return true;
}

void partition::process(std::vector<pending>& batch) {
    const bool sync = opts_.mode == durability::fsync;
    for (auto& p : batch) {
        if (p.preset) {
            p.done(p.preset);
            continue;
        }
        if (broken_) {
            p.done(err(errc::io_error));
            continue;
        }
        const size_t size = wal::encoded_record_size(p.msg);
        if (size == 0) {
            p.done(err(errc::invalid_argument));
            continue;
        }
        // over_quota() (the soft quota) tells callers to stop; appends themselves fail only
        // past the hard limit, so a caller that checked over_quota() is not refused by a
        // race with other appenders. The hard limit protects the disk from a flood.
        if (total_bytes_->load() + chunk_.size() >= quota_hard_limit(opts_)) {
            p.done(err(errc::quota_exceeded));
            continue;
        }
        if (active_records_ > 0 && active_->size() + chunk_.size() + size > segment_limit_) {
            if (!flush_chunk(true) || !roll()) {
                p.done(err(errc::io_error));
                continue;
            }
        }
        const uint64_t offset = next_offset_++;
        ++active_records_;
        wal::encode_record(chunk_, offset, p.msg);
        if (opts_.mode == durability::none) p.done(offset);
        staged_.push_back({std::move(p.done), offset, p.msg.receive_time_ms});
    }
    flush_chunk(sync);
}

void partition::collect(std::optional<uint64_t> min_cursor) {
    std::lock_guard guard(collect_mu_);
    const int64_t cutoff =
        opts_.retention.count() > 0
            ? unix_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(opts_.retention).count()
            : INT64_MIN;
    std::vector<segment_info> doomed;
    {
        std::lock_guard lock(state_mu_);
        size_t n = 0;
        while (n + 1 < segments_.size()) {
            const auto& s = segments_[n];
            const bool consumed = min_cursor && *min_cursor >= s.end_offset;
            const bool expired = opts_.retention.count() > 0 && s.newest_time_ms < cutoff;
            if (!consumed && !expired) break;
            ++n;
        }
        doomed.assign(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
        segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
        if (n > 0) {
            const uint64_t first = segments_.front().base;
            std::erase_if(missing_, [&](const missing_range& m) { return m.end <= first; });
        }
    }
    if (doomed.empty()) return;
    for (const auto& s : doomed) {
        auto size = fs_->file_size(s.path);
        if (auto r = fs_->unlink(s.path); !r) {
            SLUICE_WARN("bus", "wal: cannot delete %s", s.path.c_str());
            continue;
        }
        SLUICE_INFO("bus", "wal: deleted segment %s (offsets [%llu, %llu))", s.path.c_str(),
                    static_cast<unsigned long long>(s.base), static_cast<unsigned long long>(s.end_offset));
        sub_bytes(size ? *size : s.bytes);
    }
    (void)fs_->sync_dir(dir_);
}

// A sequential reader over one partition. Reads only bytes the writer has published,
// so it never sees a partially written record.
class wal_reader final : public reader {
public:
    wal_reader(std::shared_ptr<partition> part, std::shared_ptr<file_system> fs, uint64_t from)
        : part_(std::move(part)), fs_(std::move(fs)), pos_(from) {}

    uint64_t position() const override { return pos_; }

    result<size_t> poll(std::vector<record>& out, size_t max_records, std::chrono::milliseconds wait) override {
        auto end = part_->wait_visible(pos_, wait);
        if (!end) return end.error();
        size_t n = 0;
        while (n < max_records && pos_ < *end) {
            auto seg = part_->locate(pos_);
            if (!seg) {
                if (seg.error() == make_error_code(errc::corruption))
                    SLUICE_ERROR("bus", "wal: reader at offset %llu: offset is in a quarantined range",
                                 static_cast<unsigned long long>(pos_));
                if (n > 0) break;
                return seg.error();
            }
            if (!file_ || seg->base != seg_base_ || pos_ < file_offset_) {
                auto r = open_segment(*seg);
                if (!r) return n > 0 ? result<size_t>(n) : result<size_t>(r.error());
            }
            record rec;
            auto r = read_next(*seg, rec);
            if (!r) return n > 0 ? result<size_t>(n) : result<size_t>(r.error());
            out.push_back(std::move(rec));
            ++pos_;
            ++n;
        }
        return n;
    }

private:
    result<void> open_segment(const segment_info& seg) {
        auto f = fs_->open_readable(seg.path);
        if (!f) return f.error() == make_error_code(errc::not_found) ? err(errc::not_found) : f.error();
        file_ = std::move(*f);
        seg_base_ = seg.base;
        file_pos_ = wal::k_segment_header_size;
        file_offset_ = seg.base;
        buf_.clear();
        buf_pos_ = file_pos_;
        while (file_offset_ < pos_) {
            record skip;
            if (auto r = read_next(seg, skip); !r) return r.error();
        }
        return ok();
    }

    // Makes buf_ cover [file_pos_, file_pos_ + need) without reading past `limit`.
    result<bool> fill(uint64_t need, uint64_t limit) {
        if (file_pos_ >= buf_pos_ && file_pos_ + need <= buf_pos_ + buf_.size()) return true;
        if (file_pos_ + need > limit) return false;
        const uint64_t want = std::min<uint64_t>(limit - file_pos_, std::max<uint64_t>(need, uint64_t{256} * 1024));
        buf_.resize(static_cast<size_t>(want));
        auto got = file_->read_at(file_pos_, buf_.data(), buf_.size());
        if (!got) return got.error();
        buf_.resize(*got);
        buf_pos_ = file_pos_;
        return *got >= need;
    }

    result<void> read_next(const segment_info& seg, record& rec) {
        auto corrupt = [&](const char* what) {
            SLUICE_ERROR("bus", "wal: %s at byte %llu of %s (offset %llu)", what,
                         static_cast<unsigned long long>(file_pos_), seg.path.c_str(),
                         static_cast<unsigned long long>(file_offset_));
            return err(errc::corruption);
        };
        auto have = fill(wal::k_record_header_size, seg.bytes);
        if (!have) return have.error();
        if (!*have) return corrupt("record header beyond published end");
        const char* h = buf_.data() + (file_pos_ - buf_pos_);
        const uint32_t length = load_le32(h + 4);
        const uint64_t total = wal::k_record_header_size + uint64_t{length};
        have = fill(total, seg.bytes);
        if (!have) return have.error();
        if (!*have) return corrupt("record beyond published end");
        size_t size = 0;
        std::string_view view(buf_.data() + (file_pos_ - buf_pos_), static_cast<size_t>(total));
        damage d = wal::decode_record(view, file_offset_, rec, size);
        if (d != damage::none) return corrupt(wal::to_string(d));
        file_pos_ += size;
        ++file_offset_;
        return ok();
    }

    std::shared_ptr<partition> part_;
    std::shared_ptr<file_system> fs_;
    uint64_t pos_;
    std::unique_ptr<readable_file> file_;
    uint64_t seg_base_ = UINT64_MAX;
    uint64_t file_pos_ = 0;  // file position of the record with offset file_offset_
    uint64_t file_offset_ = 0;
    std::string buf_;  // bytes [buf_pos_, buf_pos_ + buf_.size()) of the file
    uint64_t buf_pos_ = 0;
};

class wal_bus final : public bus {
public:
    wal_bus(wal_options opts, std::shared_ptr<file_system> fs) : opts_(std::move(opts)), fs_(std::move(fs)) {}
    ~wal_bus() override { stop(); }

    result<void> open(std::vector<recovery_event>* report) {
        if (auto r = fs_->create_dirs(opts_.dir); !r) return r;
        auto loaded = wal::load_cursors(*fs_, cursors_path(opts_.dir));
        if (!loaded) {
            if (loaded.error() != make_error_code(errc::corruption)) return loaded.error();
            // Cursors only gate deletion; without them nothing is deleted, which is safe.
            SLUICE_ERROR("bus", "wal: cursor file %s is corrupt; renamed *.corrupt, starting without cursors",
                         cursors_path(opts_.dir).c_str());
            if (auto r = fs_->rename(cursors_path(opts_.dir), cursors_path(opts_.dir) + ".corrupt"); !r) return r;
        } else {
            cursors_ = std::move(*loaded);
        }
        for (uint32_t i = 0; i < opts_.partitions; ++i) {
            auto p = std::make_shared<partition>(i, partition_dir(opts_.dir, i), opts_, fs_, &total_bytes_);
            if (auto r = p->recover(report); !r) return r;
            parts_.push_back(std::move(p));
        }
        for (uint32_t i = 0; i < opts_.partitions; ++i)
            parts_[i]->collect(min_cursor(i));
        for (auto& p : parts_)
            p->start();
        return ok();
    }

    uint32_t partitions() const override { return opts_.partitions; }

    void append(uint32_t part, message m, append_callback done) override {
        SLUICE_CHECK(part < parts_.size(), "append to partition %u of %zu", part, parts_.size());
        if (!done) done = [](result<uint64_t>) {};
        pending p{std::move(m), std::move(done), {}};
        if (total_bytes_.load() >= quota_hard_limit(opts_)) p.preset = err(errc::quota_exceeded);
        if (!parts_[part]->enqueue(p)) {
            // Stopped: nothing will run the callback on a bus thread any more.
            if (p.done) p.done(err(errc::closed));
        }
    }

    bool over_quota() const override { return total_bytes_.load() >= opts_.quota_bytes; }

    uint64_t quota_headroom() const override {
        // Appends fail once total + staged >= the hard limit, so the headroom stops 1 short.
        const uint64_t used = total_bytes_.load();
        const uint64_t hard = quota_hard_limit(opts_);
        return used + 1 >= hard ? 0 : hard - used - 1;
    }

    result<std::unique_ptr<reader>> open_reader(uint32_t part, uint64_t from) override {
        if (part >= parts_.size()) return err(errc::invalid_argument);
        if (from > parts_[part]->visible_end()) return err(errc::invalid_argument);
        if (from < parts_[part]->oldest_offset()) return err(errc::not_found);
        return std::unique_ptr<reader>(std::make_unique<wal_reader>(parts_[part], fs_, from));
    }

    result<void> commit_cursor(std::string_view consumer, uint32_t part, uint64_t next_offset) override {
        if (part >= parts_.size() || consumer.empty() || consumer.size() > 0xFFFF ||
            next_offset > parts_[part]->visible_end()) {
            return err(errc::invalid_argument);
        }
        std::optional<uint64_t> min;
        {
            std::lock_guard lock(cursor_mu_);
            wal::cursor_map next = cursors_;
            next[{std::string(consumer), part}] = next_offset;
            if (auto r = wal::store_cursors(*fs_, cursors_path(opts_.dir), next); !r) return r;
            cursors_ = std::move(next);
            min = min_cursor_locked(part);
        }
        parts_[part]->collect(min);
        return ok();
    }

    result<std::optional<uint64_t>> cursor(std::string_view consumer, uint32_t part) override {
        if (part >= parts_.size()) return err(errc::invalid_argument);
        std::lock_guard lock(cursor_mu_);
        auto it = cursors_.find({std::string(consumer), part});
        if (it == cursors_.end()) return std::optional<uint64_t>{};
        return std::optional<uint64_t>{it->second};
    }

    stats get_stats(uint32_t part) const override {
        SLUICE_CHECK(part < parts_.size(), "stats of partition %u of %zu", part, parts_.size());
        return parts_[part]->stats();
    }

    void stop() override {
        for (auto& p : parts_)
            p->stop();
    }

private:
    std::optional<uint64_t> min_cursor(uint32_t part) {
        std::lock_guard lock(cursor_mu_);
        return min_cursor_locked(part);
    }
    // REQUIRES: cursor_mu_ held.
    std::optional<uint64_t> min_cursor_locked(uint32_t part) const {
        std::optional<uint64_t> min;
        for (const auto& [key, off] : cursors_) {
            if (key.second == part && (!min || off < *min)) min = off;
        }
        return min;
    }

    const wal_options opts_;
    const std::shared_ptr<file_system> fs_;
    std::atomic<uint64_t> total_bytes_{0};
    std::vector<std::shared_ptr<partition>> parts_;
    std::mutex cursor_mu_;
    wal::cursor_map cursors_;  // guarded by cursor_mu_
};

}  // namespace

std::string partition_dir(const std::string& wal_dir, uint32_t part) {
    return wal_dir + "/partition-" + std::to_string(part);
}

std::string cursors_path(const std::string& wal_dir) {
    return wal_dir + "/cursors";
}

result<std::unique_ptr<bus>> open_wal(const wal_options& options, std::shared_ptr<file_system> fs,
                                      std::vector<recovery_event>* report) {
    if (options.dir.empty() || options.partitions == 0 ||
        options.segment_bytes < wal::k_segment_header_size + wal::k_record_header_size + wal::k_min_body_size || !fs) {
        return err(errc::invalid_argument);
    }
    auto b = std::make_unique<wal_bus>(options, std::move(fs));
    if (auto r = b->open(report); !r) return r.error();
    return std::unique_ptr<bus>(std::move(b));
}

}  // namespace sluice::bus
