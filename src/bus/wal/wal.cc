// SPDX-License-Identifier: Apache-2.0
//
// The WAL bus: opens the partitions (recovery.cc) and starts their writers
// (wal_writer.cc), routes appends, enforces the quota, opens readers (reader.cc) and
// keeps the durable cursors that gate segment deletion.
#include "bus/wal/wal.h"

#include <atomic>
#include <optional>

#include "base/log.h"
#include "base/thread_annotations.h"
#include "bus/wal/cursors.h"
#include "bus/wal/wal_internal.h"

namespace sluice::bus {
namespace {

using wal::detail::err;
using wal::detail::partition;
using wal::detail::pending;

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
            mutex_lock lock(cursor_mu_);
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
        return wal::detail::make_reader(parts_[part], fs_, from);
    }

    result<void> commit_cursor(std::string_view consumer, uint32_t part, uint64_t next_offset) override {
        if (part >= parts_.size() || consumer.empty() || consumer.size() > 0xFFFF ||
            next_offset > parts_[part]->visible_end()) {
            return err(errc::invalid_argument);
        }
        std::optional<uint64_t> min;
        {
            mutex_lock lock(cursor_mu_);
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
        mutex_lock lock(cursor_mu_);
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
        mutex_lock lock(cursor_mu_);
        return min_cursor_locked(part);
    }
    std::optional<uint64_t> min_cursor_locked(uint32_t part) const SLUICE_REQUIRES(cursor_mu_) {
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
    sluice::mutex cursor_mu_;
    wal::cursor_map cursors_ SLUICE_GUARDED_BY(cursor_mu_);
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
