// SPDX-License-Identifier: Apache-2.0
//
// An in-memory bus (bus/bus.h) for unit tests of code that consumes the bus, so that the
// pipeline runner's paths can be driven without disk, threads of its own or timing games.
// Differences from the WAL a test must know: an append is durable at once and its
// callback runs inline on the caller's thread; retention is simulated by drop_before().
// Thread-safe: the runner's thread polls while the test appends and inspects.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "bus/bus.h"

namespace sluice::doubles {

class memory_bus final : public ::sluice::bus::bus {
public:
    explicit memory_bus(uint32_t partitions = 1);

    uint32_t partitions() const override { return static_cast<uint32_t>(logs_.size()); }
    // `done` runs before append returns, with the new offset (errc::closed after stop()).
    void append(uint32_t partition, ::sluice::bus::message m, ::sluice::bus::append_callback done) override;
    bool over_quota() const override { return false; }
    result<std::unique_ptr<::sluice::bus::reader>> open_reader(uint32_t partition, uint64_t from_offset) override;
    result<void> commit_cursor(std::string_view consumer, uint32_t partition, uint64_t next_offset) override;
    result<std::optional<uint64_t>> cursor(std::string_view consumer, uint32_t partition) override;
    stats get_stats(uint32_t partition) const override;
    void stop() override;

    // Test controls.
    // Appends and returns the offset (no callback needed).
    uint64_t push(uint32_t partition, ::sluice::bus::message m);
    // Deletes the records below `offset`, as retention would: readers positioned there
    // get errc::not_found, and open_reader refuses offsets below it.
    void drop_before(uint32_t partition, uint64_t offset);

private:
    class memory_reader;
    struct partition_log {
        uint64_t oldest = 0;                         // offset of records.front()
        std::vector<::sluice::bus::record> records;  // offsets oldest, oldest + 1, ...
        uint64_t appends = 0;
    };

    mutable std::mutex mu_;
    std::condition_variable appended_;
    std::vector<partition_log> logs_;
    std::map<std::pair<std::string, uint32_t>, uint64_t> cursors_;
    bool stopped_ = false;
};

}  // namespace sluice::doubles
