// SPDX-License-Identifier: Apache-2.0
//
// The state store's engine: recovery (snapshot + journal replay, torn-tail truncation),
// the group-commit writer thread, and compaction (snapshot written to a temporary file,
// fsynced, renamed over the old one, directory fsynced, then a fresh journal). See
// state_store.h for the contracts and docs/decisions/0002-session-persistence.md for why.
#include "broker/persist/state_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "base/assert.h"
#include "base/endian.h"
#include "base/errno_text.h"
#include "base/log.h"
#include "base/thread_annotations.h"
#include "broker/persist/format.h"

namespace sluice::broker::persist {
namespace {

constexpr const char* k_log = "persist";
constexpr size_t k_snapshot_chunk = 1u << 20;
constexpr size_t k_write_chunk = 4u << 20;

std::error_code to_persist_error(std::error_code ec) {
    // The file_system speaks bus::errc; callers of the store get persist::errc.
    if (ec.category() == persist_category()) return ec;
    return make_error_code(errc::io_error);
}

// Live keys are the kind byte followed by the caller's key, so one ordered map holds every
// kind and erase_prefix is a range erase.
std::string live_key(uint8_t k, std::string_view key) {
    std::string out;
    out.reserve(1 + key.size());
    out.push_back(static_cast<char>(k));
    out.append(key);
    return out;
}

struct pending_op {
    format::op o;
    uint8_t kind;
    std::string key;
    std::string value;
};

}  // namespace

class state_store::impl {
public:
    impl(std::string dir, options opts) : dir_(std::move(dir)), opts_(std::move(opts)), fs_(opts_.fs) {
        if (!fs_) fs_ = bus::default_fs();
    }
    ~impl() {
        if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
    }

    result<void> recover();
    void start() {
        thread_ = std::thread([this] { run(); });
    }

    void enqueue(format::op o, kind k, std::string_view key, std::string_view value);
    result<void> flush();
    void when_durable(std::function<void(std::error_code)> done);
    result<void> compact();
    result<void> close();
    void load(const std::function<void(kind, std::string_view, std::string_view)>& visit) const;
    stats get_stats() const;
    std::error_code last_error() const {
        mutex_lock lock(mu_);
        return last_error_;
    }

private:
    std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }

    using live_map = std::map<std::string, std::string, std::less<>>;
    // Applies one record to `live` (live_, with live_mu_ held exclusively); a put takes
    // the value from `owned` when given (saving a copy).
    void apply(live_map& live, format::op o, uint8_t k, std::string_view key, std::string_view value,
               std::string* owned = nullptr);
    result<void> load_snapshot(uint64_t& generation);
    result<void> replay_journal(uint64_t generation);
    result<void> create_journal(uint64_t generation);

    void run();
    bool urgent() const SLUICE_REQUIRES(mu_) {
        return flush_waiters_ > 0 || pending_bytes_ >= opts_.group_bytes || compact_requests_ > compact_served_;
    }
    // Applies a group to the live map and makes it durable. Returns the group's error;
    // `compact_ec` gets the result of a forced compaction.
    std::error_code process(std::vector<pending_op>& batch, bool force_compact, std::error_code& compact_ec);
    // Appends the group to the journal and fsyncs it; on failure marks the journal broken.
    std::error_code append_batch(const std::vector<pending_op>& batch);
    // Applies the group to the live map, moving the values in when `take_values`.
    void apply_batch(std::vector<pending_op>& batch, bool take_values);
    std::error_code write_snapshot_and_journal();
    // opts_.before_sync, mapped to errc::io_error.
    result<void> sync_referenced_files();
    bool should_compact() const {
        const auto journal = journal_bytes_.load();
        return journal > opts_.compact_min_bytes &&
               static_cast<double>(journal) > opts_.compact_ratio * static_cast<double>(live_bytes_.load()) &&
               std::chrono::steady_clock::now() >= compact_retry_after_;
    }

    result<void> lock_dir();

    const std::string dir_;
    const options opts_;
    std::shared_ptr<bus::file_system> fs_;
    int lock_fd_ = -1;  // flock(LOCK_EX) on <dir>/LOCK while open

    // Live state: mutated by recovery, then only by the writer thread; load() and the
    // writer's snapshots read it.
    mutable sluice::shared_mutex live_mu_;
    live_map live_ SLUICE_GUARDED_BY(live_mu_);
    std::atomic<uint64_t> live_bytes_{0};
    std::atomic<uint64_t> live_keys_{0};

    // Writer thread only (after recovery).
    std::unique_ptr<bus::writable_file> journal_;
    uint64_t generation_ = 0;       // of journal_ (and of the snapshot it follows)
    uint64_t next_generation_ = 1;  // for the next compaction
    bool broken_ = false;           // journal_ unusable after an I/O error: next write compacts
    std::string buf_;
    std::chrono::steady_clock::time_point compact_retry_after_{};
    std::atomic<uint64_t> journal_bytes_{0};
    std::atomic<uint64_t> syncs_{0};
    std::atomic<uint64_t> compactions_{0};
    std::atomic<uint64_t> write_errors_{0};

    // The queue between callers and the writer.
    mutable sluice::mutex mu_;
    std::condition_variable work_cv_;  // writer waits for work
    std::condition_variable done_cv_;  // flush()/compact()/close() wait for the writer
    std::vector<pending_op> pending_ SLUICE_GUARDED_BY(mu_);
    size_t pending_bytes_ SLUICE_GUARDED_BY(mu_) = 0;
    std::chrono::steady_clock::time_point first_pending_ SLUICE_GUARDED_BY(mu_){};
    uint64_t enqueued_seq_ SLUICE_GUARDED_BY(mu_) = 0;   // changes queued so far
    uint64_t processed_seq_ SLUICE_GUARDED_BY(mu_) = 0;  // changes the writer has handled (durably or not)
    uint64_t durable_seq_ SLUICE_GUARDED_BY(mu_) = 0;    // changes known durable
    std::error_code last_error_ SLUICE_GUARDED_BY(mu_);
    int flush_waiters_ SLUICE_GUARDED_BY(mu_) = 0;
    std::deque<std::pair<uint64_t, std::function<void(std::error_code)>>> callbacks_
        SLUICE_GUARDED_BY(mu_);  // by ticket
    uint64_t compact_requests_ SLUICE_GUARDED_BY(mu_) = 0;
    uint64_t compact_served_ SLUICE_GUARDED_BY(mu_) = 0;
    std::error_code compact_error_ SLUICE_GUARDED_BY(mu_);  // result of the most recent requested compaction
    bool stop_ SLUICE_GUARDED_BY(mu_) = false;
    bool closed_ SLUICE_GUARDED_BY(mu_) = false;
    bool thread_done_ SLUICE_GUARDED_BY(mu_) = false;
    std::error_code close_error_ SLUICE_GUARDED_BY(mu_);
    std::thread thread_;
};

// ---- recovery ------------------------------------------------------------------------

void state_store::impl::apply(live_map& live, format::op o, uint8_t k, std::string_view key, std::string_view value,
                              std::string* owned) {
    switch (o) {
        case format::op::put: {
            std::string lk = live_key(k, key);
            auto it = live.find(lk);
            if (it == live.end()) {
                live_bytes_ += format::encoded_record_size(key, value);
                ++live_keys_;
                live.emplace(std::move(lk), owned ? std::move(*owned) : std::string(value));
            } else {
                live_bytes_ -= it->second.size();
                live_bytes_ += value.size();
                if (owned) {
                    it->second = std::move(*owned);
                } else {
                    it->second.assign(value);
                }
            }
            break;
        }
        case format::op::erase: {
            auto it = live.find(live_key(k, key));
            if (it != live.end()) {
                live_bytes_ -= format::encoded_record_size(key, it->second);
                --live_keys_;
                live.erase(it);
            }
            break;
        }
        case format::op::erase_prefix: {
            const std::string lk = live_key(k, key);
            auto it = live.lower_bound(lk);
            while (it != live.end() && std::string_view(it->first).substr(0, lk.size()) == lk) {
                live_bytes_ -= format::encoded_record_size(std::string_view(it->first).substr(1), it->second);
                --live_keys_;
                it = live.erase(it);
            }
            break;
        }
        case format::op::snapshot_end:
            break;
    }
}

result<void> state_store::impl::load_snapshot(uint64_t& generation) {
    const std::string file = path(format::k_snapshot_name);
    auto bytes = bus::read_whole_file(*fs_, file);
    if (!bytes) {
        if (bytes.error() == bus::errc::not_found) return ok();
        SLUICE_ERROR(k_log, "cannot read %s", file.c_str());
        return errc::io_error;
    }
    const std::string_view all(*bytes);
    const auto hs = format::decode_file_header(all, format::file_type::snapshot, generation);
    if (hs != format::header_status::ok) {
        SLUICE_ERROR(k_log, "%s: %s", file.c_str(), format::to_string(hs));
        return hs == format::header_status::unsupported_version ? errc::unsupported_version : errc::corruption;
    }
    bool ended = false;
    bool bad = false;
    uint64_t count = 0;
    writer_lock live_lock(live_mu_);
    // The analysis checks a lambda on its own; this one runs inside scan(), under live_lock.
    const auto scan = format::scan(all.substr(format::k_file_header_size),
                                   [&](const format::record_view& r) SLUICE_NO_THREAD_SAFETY_ANALYSIS {
                                       if (ended || (r.o != format::op::put && r.o != format::op::snapshot_end)) {
                                           bad = true;
                                       } else if (r.o == format::op::snapshot_end) {
                                           const uint64_t n = load_le64(r.value.data());
                                           ended = true;
                                           bad = bad || n != count;
                                       } else {
                                           apply(live_, r.o, r.kind, r.key, r.value);
                                           ++count;
                                       }
                                   });
    // A snapshot is fsynced before it is renamed into place: any damage is real corruption.
    if (scan.first_damage != format::damage::none || bad || !ended) {
        if (scan.first_damage != format::damage::none) {
            SLUICE_ERROR(k_log, "%s: corrupt snapshot: %s at byte %llu after %llu records", file.c_str(),
                         format::to_string(scan.first_damage),
                         static_cast<unsigned long long>(format::k_file_header_size + scan.damage_pos),
                         static_cast<unsigned long long>(scan.records));
        } else {
            SLUICE_ERROR(k_log, "%s: corrupt snapshot: %s", file.c_str(),
                         ended ? "record count or order does not match its end record" : "no end record");
        }
        return errc::corruption;
    }
    SLUICE_INFO(k_log, "%s: generation %llu, %llu keys", file.c_str(), static_cast<unsigned long long>(generation),
                static_cast<unsigned long long>(count));
    return ok();
}

result<void> state_store::impl::create_journal(uint64_t generation) {
    const std::string file = path(format::journal_file_name(generation));
    auto f = fs_->open_writable(file);
    if (!f) return to_persist_error(f.error());
    auto& j = *f;
    if (j->size() != 0) {
        if (auto r = j->truncate(0); !r) return to_persist_error(r.error());
    }
    const std::string header = format::encode_file_header(format::file_type::journal, generation);
    if (auto r = j->append(header); !r) return to_persist_error(r.error());
    if (auto r = j->sync(); !r) return to_persist_error(r.error());
    if (auto r = fs_->sync_dir(dir_); !r) return to_persist_error(r.error());
    journal_ = std::move(j);
    generation_ = generation;
    journal_bytes_ = header.size();
    return ok();
}

result<void> state_store::impl::replay_journal(uint64_t generation) {
    const std::string file = path(format::journal_file_name(generation));
    auto bytes = bus::read_whole_file(*fs_, file);
    if (!bytes) {
        if (bytes.error() == bus::errc::not_found) return create_journal(generation);
        SLUICE_ERROR(k_log, "cannot read %s", file.c_str());
        return errc::io_error;
    }
    const std::string_view all(*bytes);
    uint64_t header_generation = 0;
    const auto hs = format::decode_file_header(all, format::file_type::journal, header_generation);
    if (hs == format::header_status::short_file || hs == format::header_status::zero_filled) {
        if (std::all_of(all.begin(), all.end(), [](char c) { return c == 0; }) ||
            all.size() < format::k_file_header_size) {
            // Created but its header never synced: nothing in it was ever durable.
            SLUICE_WARN(k_log, "%s: torn header (%zu bytes), recreating", file.c_str(), all.size());
            return create_journal(generation);
        }
    }
    if (hs != format::header_status::ok || header_generation != generation) {
        SLUICE_ERROR(k_log, "%s: %s", file.c_str(),
                     hs == format::header_status::ok ? "generation differs from its name" : format::to_string(hs));
        return hs == format::header_status::unsupported_version ? errc::unsupported_version : errc::corruption;
    }
    writer_lock live_lock(live_mu_);
    // The analysis checks a lambda on its own; this one runs inside scan(), under live_lock.
    const auto scan = format::scan(all.substr(format::k_file_header_size),
                                   [&](const format::record_view& r)
                                       SLUICE_NO_THREAD_SAFETY_ANALYSIS { apply(live_, r.o, r.kind, r.key, r.value); });
    uint64_t keep = all.size();
    if (scan.first_damage != format::damage::none) {
        keep = format::k_file_header_size + scan.valid_bytes;
        if (!scan.valid_after_damage) {
            SLUICE_WARN(k_log, "%s: torn tail (%s) at byte %llu, dropping %llu unsynced bytes", file.c_str(),
                        format::to_string(scan.first_damage), static_cast<unsigned long long>(keep),
                        static_cast<unsigned long long>(all.size() - keep));
        } else if (!opts_.repair) {
            SLUICE_ERROR(k_log,
                         "%s: corruption (%s) at byte %llu with %s after it; replay stopped after %llu "
                         "records. Refusing to open; set repair to keep the state before the damage.",
                         file.c_str(), format::to_string(scan.first_damage), static_cast<unsigned long long>(keep),
                         scan.search_exhausted ? "too much data to rule out valid records" : "valid records",
                         static_cast<unsigned long long>(scan.records));
            return errc::corruption;
        } else {
            const std::string copy = file + ".corrupt";
            auto c = fs_->open_writable(copy);
            if (!c) return to_persist_error(c.error());
            if (auto r = (*c)->truncate(0); !r) return to_persist_error(r.error());
            if (auto r = (*c)->append(all); !r) return to_persist_error(r.error());
            if (auto r = (*c)->sync(); !r) return to_persist_error(r.error());
            SLUICE_ERROR(k_log, "%s: corruption (%s) at byte %llu; repaired by dropping %llu bytes (copy in %s)",
                         file.c_str(), format::to_string(scan.first_damage), static_cast<unsigned long long>(keep),
                         static_cast<unsigned long long>(all.size() - keep), copy.c_str());
        }
    }
    auto f = fs_->open_writable(file);
    if (!f) return to_persist_error(f.error());
    if (keep != all.size()) {
        if (auto r = (*f)->truncate(keep); !r) return to_persist_error(r.error());
        if (auto r = (*f)->sync(); !r) return to_persist_error(r.error());
    }
    journal_ = std::move(*f);
    generation_ = generation;
    journal_bytes_ = keep;
    return ok();
}

// Two stores on one directory would interleave their journals: the second open fails.
// The lock is advisory flock(2) on the real file system, outside the file_system seam,
// because it guards the process, not the data.
result<void> state_store::impl::lock_dir() {
    const std::string file = path("LOCK");
    lock_fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
        SLUICE_ERROR(k_log, "cannot open %s: %s", file.c_str(), errno_text(errno).c_str());
        return errc::io_error;
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        SLUICE_ERROR(k_log, "cannot lock %s: %s", file.c_str(), errno_text(err).c_str());
        return err == EWOULDBLOCK ? errc::locked : errc::io_error;
    }
    return ok();
}

result<void> state_store::impl::recover() {
    if (auto r = fs_->create_dirs(dir_); !r) {
        SLUICE_ERROR(k_log, "cannot create %s", dir_.c_str());
        return errc::io_error;
    }
    if (auto r = lock_dir(); !r) return r;
    auto names = fs_->list(dir_);
    if (!names) {
        SLUICE_ERROR(k_log, "cannot list %s", dir_.c_str());
        return errc::io_error;
    }
    uint64_t generation = 0;
    if (auto r = load_snapshot(generation); !r) return r;

    uint64_t newest = generation;
    for (const auto& name : *names) {
        if (name == format::k_snapshot_temp_name) {
            (void)fs_->unlink(path(name));  // an interrupted compaction; the old snapshot stands
            continue;
        }
        const auto g = format::parse_journal_file_name(name);
        if (!g) continue;
        if (*g > generation) {
            SLUICE_ERROR(k_log, "%s is newer than the snapshot (generation %llu): snapshot lost?", path(name).c_str(),
                         static_cast<unsigned long long>(generation));
            return errc::corruption;
        }
        if (*g < generation) (void)fs_->unlink(path(name));  // already in the snapshot
        newest = std::max(newest, *g);
    }
    next_generation_ = newest + 1;
    return replay_journal(generation);
}

// ---- the queue -----------------------------------------------------------------------

void state_store::impl::enqueue(format::op o, kind k, std::string_view key, std::string_view value) {
    const auto kv = static_cast<uint8_t>(k);
    SLUICE_CHECK(kv != 0, "state store kind 0 is reserved");
    const size_t size = format::encoded_record_size(key, value);
    SLUICE_CHECK(size - format::k_record_header_size <= format::k_max_body_size,
                 "state store record of %zu bytes is too large", size);
    bool wake = false;
    {
        mutex_lock lock(mu_);
        SLUICE_CHECK(!closed_, "state store used after close()");
        if (pending_.empty()) {
            first_pending_ = std::chrono::steady_clock::now();
            wake = true;
        }
        pending_.push_back(pending_op{o, kv, std::string(key), std::string(value)});
        const bool was_below = pending_bytes_ < opts_.group_bytes;
        pending_bytes_ += size;
        wake = wake || (was_below && pending_bytes_ >= opts_.group_bytes);
        ++enqueued_seq_;
    }
    if (wake) work_cv_.notify_one();
}

result<void> state_store::impl::flush() {
    mutex_lock lock(mu_);
    const uint64_t ticket = enqueued_seq_;
    if (processed_seq_ < ticket) {
        SLUICE_CHECK(!thread_done_, "flush() with changes queued after the writer stopped");
        ++flush_waiters_;
        work_cv_.notify_one();
        while (processed_seq_ < ticket)
            lock.wait(done_cv_);
        --flush_waiters_;
    }
    if (durable_seq_ >= ticket) return ok();
    return last_error_ ? last_error_ : make_error_code(errc::io_error);
}

void state_store::impl::when_durable(std::function<void(std::error_code)> done) {
    {
        mutex_lock lock(mu_);
        SLUICE_CHECK(!closed_, "state store used after close()");
        callbacks_.emplace_back(enqueued_seq_, std::move(done));
        // Nothing to wait for: the writer fires it on its next turn.
        if (callbacks_.front().first > processed_seq_) return;
    }
    work_cv_.notify_one();
}

result<void> state_store::impl::compact() {
    mutex_lock lock(mu_);
    if (thread_done_) return errc::closed;
    const uint64_t ticket = ++compact_requests_;
    work_cv_.notify_one();
    while (compact_served_ < ticket)
        lock.wait(done_cv_);
    if (compact_error_) return compact_error_;
    return ok();
}

result<void> state_store::impl::close() {
    {
        mutex_lock lock(mu_);
        if (closed_) return close_error_ ? result<void>(close_error_) : ok();
        closed_ = true;  // no put after this point (checked)
        stop_ = true;
    }
    work_cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    if (lock_fd_ >= 0) {  // the directory is free for the next open
        ::close(lock_fd_);
        lock_fd_ = -1;
    }
    mutex_lock lock(mu_);
    return close_error_ ? result<void>(close_error_) : ok();
}

void state_store::impl::load(const std::function<void(kind, std::string_view, std::string_view)>& visit) const {
    reader_lock lock(live_mu_);
    for (const auto& [k, v] : live_) {
        visit(static_cast<kind>(static_cast<uint8_t>(k[0])), std::string_view(k).substr(1), v);
    }
}

state_store::stats state_store::impl::get_stats() const {
    stats s;
    s.live_keys = live_keys_.load();
    s.live_bytes = live_bytes_.load();
    s.journal_bytes = journal_bytes_.load();
    s.syncs = syncs_.load();
    s.compactions = compactions_.load();
    s.write_errors = write_errors_.load();
    mutex_lock lock(mu_);
    s.pending_bytes = pending_bytes_;
    return s;
}

// ---- the writer thread ---------------------------------------------------------------

void state_store::impl::run() {
    mutex_lock lock(mu_);
    for (;;) {
        while (!stop_ && pending_.empty() && compact_requests_ <= compact_served_ &&
               (callbacks_.empty() || callbacks_.front().first > processed_seq_)) {
            lock.wait(work_cv_);
        }
        if (!pending_.empty() && !stop_ && !urgent()) {
            // Group commit: wait for more changes until the oldest has waited sync_interval.
            const auto deadline = first_pending_ + opts_.sync_interval;
            while (!stop_ && !urgent()) {
                if (lock.wait_until(work_cv_, deadline) == std::cv_status::timeout) break;
            }
        }
        std::vector<pending_op> batch;
        batch.swap(pending_);
        pending_bytes_ = 0;
        const uint64_t seq = enqueued_seq_;
        const uint64_t compact_ticket = compact_requests_;
        const bool compact_asked = compact_ticket > compact_served_;
        const bool final_pass = stop_;
        lock.unlock();

        std::error_code compact_ec;
        const std::error_code ec = process(batch, compact_asked, compact_ec);
        std::error_code close_ec;
        if (final_pass) {
            // Clean close: leave a snapshot and an empty journal behind, so the next
            // start reads one file (skipped when the journal has nothing new).
            if (!ec && (broken_ || journal_bytes_.load() > format::k_file_header_size)) {
                close_ec = write_snapshot_and_journal();
            }
            journal_.reset();
        }

        lock.lock();
        processed_seq_ = seq;
        if (!ec) {
            durable_seq_ = seq;
        } else {
            last_error_ = ec;
        }
        if (compact_ec) last_error_ = compact_ec;
        if (compact_ticket > compact_served_) {
            compact_served_ = compact_ticket;
            compact_error_ = compact_ec ? compact_ec : ec;
        }
        // Callbacks are queued in ticket order; everything up to `seq` is now decided.
        std::vector<std::pair<std::function<void(std::error_code)>, std::error_code>> fire;
        while (!callbacks_.empty() && callbacks_.front().first <= seq) {
            const uint64_t ticket = callbacks_.front().first;
            std::error_code result_ec;
            if (durable_seq_ < ticket) result_ec = last_error_ ? last_error_ : make_error_code(errc::io_error);
            fire.emplace_back(std::move(callbacks_.front().second), result_ec);
            callbacks_.pop_front();
        }
        if (!fire.empty()) {
            lock.unlock();
            for (auto& [cb, cb_ec] : fire)
                cb(cb_ec);
            lock.lock();
        }
        if (final_pass) {
            close_error_ = ec ? ec : close_ec;
            if (close_ec) last_error_ = close_ec;
            if (compact_requests_ > compact_served_) {
                compact_served_ = compact_requests_;  // asked for during close: closing compacted
                compact_error_ = close_error_;
            }
            thread_done_ = true;
            done_cv_.notify_all();
            return;
        }
        done_cv_.notify_all();
    }
}

std::error_code state_store::impl::append_batch(const std::vector<pending_op>& batch) {
    // Encoded and written in chunks so a huge group does not need a second copy of itself.
    buf_.clear();
    auto r = ok();
    for (size_t i = 0; i < batch.size() && r; ++i) {
        const auto& op = batch[i];
        format::encode_record(buf_, op.o, op.kind, op.key, op.value);
        if (buf_.size() >= k_write_chunk || i + 1 == batch.size()) {
            r = journal_->append(buf_);
            buf_.clear();
        }
    }
    if (buf_.capacity() > 4 * k_write_chunk) std::string().swap(buf_);
    if (r) r = sync_referenced_files();
    if (r) r = journal_->sync();
    if (!r) {
        // After a failed write or fsync the journal's content is unknown (and a retried
        // fsync may lie): abandon it; the next group writes a snapshot instead.
        SLUICE_ERROR(k_log, "journal write failed (%s); will rewrite the state into a new journal",
                     r.error().message().c_str());
        broken_ = true;
        ++write_errors_;
        return to_persist_error(r.error());
    }
    ++syncs_;
    journal_bytes_ = journal_->size();
    return {};
}

void state_store::impl::apply_batch(std::vector<pending_op>& batch, bool take_values) {
    if (batch.empty()) return;
    writer_lock lock(live_mu_);
    for (auto& op : batch)
        apply(live_, op.o, op.kind, op.key, op.value, take_values ? &op.value : nullptr);
}

std::error_code state_store::impl::process(std::vector<pending_op>& batch, bool force_compact,
                                           std::error_code& compact_ec) {
    if (!broken_ && !force_compact) {
        // The usual path: one append and one fsync for the group, then the map.
        const std::error_code ec = batch.empty() ? std::error_code{} : append_batch(batch);
        apply_batch(batch, true);  // also on failure: the next snapshot must hold it
        if (ec || !should_compact()) return ec;
        if (auto cec = write_snapshot_and_journal()) {
            // The group itself is durable in the old journal. If the failure came after
            // the new snapshot replaced the old one, broken_ is set and the next group
            // retries at once; otherwise retry after a pause.
            SLUICE_ERROR(k_log, "compaction failed: %s", cec.message().c_str());
            ++write_errors_;
            compact_retry_after_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
        return {};
    }
    // A full snapshot makes everything in memory durable, whatever the old journal holds.
    apply_batch(batch, false);
    compact_ec = write_snapshot_and_journal();
    if (!compact_ec) return {};
    ++write_errors_;
    SLUICE_ERROR(k_log, "compaction failed: %s", compact_ec.message().c_str());
    if (broken_ || batch.empty()) return broken_ ? compact_ec : std::error_code{};
    // Failed before the new snapshot replaced the old one: the journal is still the
    // current one, so the group goes there as usual.
    return append_batch(batch);
}

result<void> state_store::impl::sync_referenced_files() {
    if (!opts_.before_sync) return ok();
    if (auto ec = opts_.before_sync()) {
        SLUICE_ERROR(k_log, "syncing the files the journal refers to: %s", ec.message().c_str());
        return make_error_code(errc::io_error);
    }
    return ok();
}

std::error_code state_store::impl::write_snapshot_and_journal() {
    const uint64_t generation = next_generation_++;
    const std::string temp = path(format::k_snapshot_temp_name);
    (void)fs_->unlink(temp);
    auto f = fs_->open_writable(temp);
    if (!f) return to_persist_error(f.error());
    auto& out = *f;
    std::string chunk = format::encode_file_header(format::file_type::snapshot, generation);
    uint64_t count = 0;
    reader_lock live_lock(live_mu_);  // only this thread mutates live_: load() may read alongside
    for (const auto& [k, v] : live_) {
        format::encode_record(chunk, format::op::put, static_cast<uint8_t>(k[0]), std::string_view(k).substr(1), v);
        ++count;
        if (chunk.size() >= k_snapshot_chunk) {
            if (auto r = out->append(chunk); !r) return to_persist_error(r.error());
            chunk.clear();
        }
    }
    std::string end;
    append_le64(end, count);
    format::encode_record(chunk, format::op::snapshot_end, 0, {}, end);
    if (auto r = out->append(chunk); !r) return to_persist_error(r.error());
    if (auto r = sync_referenced_files(); !r) return r.error();
    if (auto r = out->sync(); !r) return to_persist_error(r.error());
    out.reset();
    if (auto r = fs_->rename(temp, path(format::k_snapshot_name)); !r) return to_persist_error(r.error());
    // From here on the old journal is no longer the one recovery reads.
    broken_ = true;
    if (auto r = fs_->sync_dir(dir_); !r) return to_persist_error(r.error());
    const uint64_t old_generation = generation_;
    const bool had_journal = journal_ != nullptr;
    journal_.reset();
    if (auto r = create_journal(generation); !r) return r.error();
    broken_ = false;
    if (had_journal && old_generation != generation) {
        (void)fs_->unlink(path(format::journal_file_name(old_generation)));
    }
    ++compactions_;
    SLUICE_DEBUG(k_log, "compacted %s to generation %llu (%llu keys)", dir_.c_str(),
                 static_cast<unsigned long long>(generation), static_cast<unsigned long long>(count));
    return {};
}

// ---- the public face -----------------------------------------------------------------

state_store::state_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

state_store::~state_store() {
    if (impl_) {
        if (auto r = impl_->close(); !r) {
            SLUICE_ERROR(k_log, "closing the state store: %s", r.error().message().c_str());
        }
    }
}

result<std::unique_ptr<state_store>> state_store::open(const std::string& dir, options opts) {
    auto p = std::make_unique<impl>(dir, std::move(opts));
    if (auto r = p->recover(); !r) return r.error();
    p->start();
    return std::unique_ptr<state_store>(new state_store(std::move(p)));
}

void state_store::put(kind k, std::string_view key, std::string_view value) {
    impl_->enqueue(format::op::put, k, key, value);
}
void state_store::erase(kind k, std::string_view key) {
    impl_->enqueue(format::op::erase, k, key, {});
}
void state_store::erase_prefix(kind k, std::string_view prefix) {
    impl_->enqueue(format::op::erase_prefix, k, prefix, {});
}
result<void> state_store::flush() {
    return impl_->flush();
}
void state_store::when_durable(std::function<void(std::error_code)> done) {
    impl_->when_durable(std::move(done));
}
void state_store::load(const std::function<void(kind, std::string_view, std::string_view)>& visit) const {
    impl_->load(visit);
}
result<void> state_store::compact() {
    return impl_->compact();
}
result<void> state_store::close() {
    return impl_->close();
}
state_store::stats state_store::get_stats() const {
    return impl_->get_stats();
}
std::error_code state_store::last_error() const {
    return impl_->last_error();
}

}  // namespace sluice::broker::persist
