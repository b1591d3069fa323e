// SPDX-License-Identifier: Apache-2.0
//
// The partition's writer thread: group commit, segment rolls, and deletion of
// consumed or expired segments.
#include <algorithm>
#include <chrono>

#include "base/clock.h"
#include "base/log.h"
#include "bus/wal/wal_internal.h"

namespace sluice::bus::wal::detail {

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
    mutex_lock lock(state_mu_);
    segments_.push_back({base, path, header.size(), base, 0});
    return ok();
}

void partition::stop() {
    {
        mutex_lock lock(queue_mu_);
        if (stopping_ && !writer_.joinable()) return;
        stopping_ = true;
    }
    queue_cv_.notify_one();
    if (writer_.joinable()) writer_.join();
    {
        mutex_lock lock(state_mu_);
        closed_ = true;
    }
    state_cv_.notify_all();
}

void partition::writer_loop() {
    const bool async = opts_.mode != durability::fsync;  // sync on the window timer
    for (;;) {
        std::vector<pending> batch;
        {
            mutex_lock lock(queue_mu_);
            auto deadline = clock::now() + std::chrono::seconds(1);
            if (async && unsynced_) deadline = std::min(deadline, last_sync_ + opts_.group_commit_max_delay);
            while (queue_.empty() && !stopping_) {
                if (lock.wait_until(queue_cv_, deadline) == std::cv_status::timeout) break;
            }
            if (queue_.empty() && stopping_) break;
            if (!queue_.empty()) {
                // Gather a group: wait up to the max delay, but stop as soon as the group is
                // as large as the previous one (the appenders that were waiting on the last
                // fsync are all back) or max_bytes is reached.
                if (opts_.mode == durability::fsync && opts_.group_commit_max_delay.count() > 0) {
                    const auto group_deadline = first_enqueue_ + opts_.group_commit_max_delay;
                    while (!group_full()) {
                        if (lock.wait_until(queue_cv_, group_deadline) == std::cv_status::timeout) break;
                    }
                }
                last_group_size_ = queue_.size();
                batch.swap(queue_);
                queued_bytes_ = 0;
            }
        }
        if (batch.empty()) {  // idle: the timers' work
            if (async && unsynced_ && clock::now() >= last_sync_ + opts_.group_commit_max_delay) sync_active();
            if (opts_.retention.count() > 0 && clock::now() - last_collect_ >= std::chrono::seconds(1)) {
                last_collect_ = clock::now();
                collect(std::nullopt);
            }
            continue;
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
        mutex_lock lock(state_mu_);
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
    mutex_lock guard(collect_mu_);
    const int64_t cutoff =
        opts_.retention.count() > 0
            ? unix_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(opts_.retention).count()
            : INT64_MIN;
    std::vector<segment_info> doomed;
    {
        mutex_lock lock(state_mu_);
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

}  // namespace sluice::bus::wal::detail
