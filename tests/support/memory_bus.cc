// SPDX-License-Identifier: Apache-2.0
//
// The in-memory bus (see memory_bus.h). Its reader follows ::sluice::bus::reader's contract to the
// letter (errors included), since that contract is what the code under test relies on.
#include "tests/support/memory_bus.h"

#include <algorithm>

#include "base/assert.h"

namespace sluice::doubles {

class memory_bus::memory_reader final : public ::sluice::bus::reader {
public:
    memory_reader(memory_bus& owner, uint32_t partition, uint64_t position)
        : owner_(owner), partition_(partition), position_(position) {}

    result<size_t> poll(std::vector<::sluice::bus::record>& out, size_t max_records,
                        std::chrono::milliseconds wait) override {
        std::unique_lock lock(owner_.mu_);
        const auto end = [&] {
            const partition_log& log = owner_.logs_[partition_];
            return log.oldest + log.records.size();
        };
        owner_.appended_.wait_for(lock, wait, [&] { return owner_.stopped_ || end() > position_; });
        if (owner_.stopped_) return ::sluice::bus::errc::closed;
        const partition_log& log = owner_.logs_[partition_];
        if (position_ < log.oldest) return ::sluice::bus::errc::not_found;
        size_t n = 0;
        for (uint64_t at = position_; at < end() && n < max_records; ++at, ++n) {
            out.push_back(log.records[at - log.oldest]);
        }
        position_ += n;
        return n;
    }

    uint64_t position() const override { return position_; }

private:
    memory_bus& owner_;
    uint32_t partition_;
    uint64_t position_;
};

memory_bus::memory_bus(uint32_t partitions) : logs_(partitions) {}

void memory_bus::append(uint32_t partition, ::sluice::bus::message m, ::sluice::bus::append_callback done) {
    result<uint64_t> offset = ::sluice::bus::errc::closed;
    {
        std::lock_guard lock(mu_);
        if (!stopped_) {
            partition_log& log = logs_.at(partition);
            const uint64_t at = log.oldest + log.records.size();
            log.records.push_back(::sluice::bus::record{at, std::move(m)});
            ++log.appends;
            offset = at;
        }
    }
    appended_.notify_all();
    if (done) done(offset);
}

uint64_t memory_bus::push(uint32_t partition, ::sluice::bus::message m) {
    uint64_t offset = 0;
    append(partition, std::move(m), [&offset](result<uint64_t> r) { offset = r.value(); });
    return offset;
}

result<std::unique_ptr<::sluice::bus::reader>> memory_bus::open_reader(uint32_t partition, uint64_t from_offset) {
    std::lock_guard lock(mu_);
    if (partition >= logs_.size()) return ::sluice::bus::errc::invalid_argument;
    const partition_log& log = logs_[partition];
    if (from_offset > log.oldest + log.records.size()) return ::sluice::bus::errc::invalid_argument;
    if (from_offset < log.oldest) return ::sluice::bus::errc::not_found;
    return std::unique_ptr<::sluice::bus::reader>(std::make_unique<memory_reader>(*this, partition, from_offset));
}

result<void> memory_bus::commit_cursor(std::string_view consumer, uint32_t partition, uint64_t next_offset) {
    std::lock_guard lock(mu_);
    if (consumer.empty() || partition >= logs_.size()) return ::sluice::bus::errc::invalid_argument;
    const partition_log& log = logs_[partition];
    if (next_offset > log.oldest + log.records.size()) return ::sluice::bus::errc::invalid_argument;
    cursors_[{std::string(consumer), partition}] = next_offset;
    return {};
}

result<std::optional<uint64_t>> memory_bus::cursor(std::string_view consumer, uint32_t partition) {
    std::lock_guard lock(mu_);
    const auto it = cursors_.find({std::string(consumer), partition});
    if (it == cursors_.end()) return std::optional<uint64_t>{};
    return std::optional<uint64_t>{it->second};
}

::sluice::bus::bus::stats memory_bus::get_stats(uint32_t partition) const {
    std::lock_guard lock(mu_);
    const partition_log& log = logs_.at(partition);
    stats s;
    s.durable_end = log.oldest + log.records.size();
    s.newest_receive_time_ms = log.records.empty() ? 0 : log.records.back().msg.receive_time_ms;
    s.appends = log.appends;
    s.oldest_offset = log.oldest;
    return s;
}

void memory_bus::stop() {
    {
        std::lock_guard lock(mu_);
        stopped_ = true;
    }
    appended_.notify_all();
}

void memory_bus::drop_before(uint32_t partition, uint64_t offset) {
    std::lock_guard lock(mu_);
    partition_log& log = logs_.at(partition);
    SLUICE_CHECK(offset <= log.oldest + log.records.size(), "drop_before past the end of the log");
    if (offset <= log.oldest) return;
    log.records.erase(log.records.begin(), log.records.begin() + static_cast<std::ptrdiff_t>(offset - log.oldest));
    log.oldest = offset;
}

}  // namespace sluice::doubles
