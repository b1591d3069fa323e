// SPDX-License-Identifier: Apache-2.0
//
// An in-memory telemetry store (store/store.h) for unit tests of the pipeline: it keeps
// the store's contract that matters to a writer (a batch, its dead letters, offsets and
// sequences land together or not at all; an offset that does not advance fails the batch
// with errc::stale_offset; rows outside the storable time range are invalid_data) and
// lets a test script failures: the database going away, a concurrent writer storing an
// offset first, the store refusing particular rows. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "store/store.h"

namespace sluice::doubles {

class memory_store final : public store::telemetry_store {
public:
    result<void> migrate() override { return {}; }
    result<void> write_batch(std::span<const store::row> rows, std::span<const store::dead_letter> dead_letters,
                             std::span<const store::offset_update> offsets,
                             std::span<const store::sequence_update> sequences) override;
    using store::telemetry_store::write_batch;
    result<std::vector<store::sequence_update>> load_sequences() override;
    result<std::optional<int64_t>> load_offset(std::string_view consumer, int32_t partition) override;
    bool timescale() const override { return false; }
    result<void> maintain(std::chrono::system_clock::time_point) override { return {}; }

    // Test controls.
    // The next `count` write_batch calls fail with `error` and store nothing.
    void fail_next_writes(std::error_code error, int count);
    // write_batch fails with errc::invalid_data, storing nothing, while a batch holds a
    // row for which `refuse` is true (a row the real database would reject).
    void refuse_rows(std::function<bool(const store::row&)> refuse);
    // Stores an offset as another writer's committed batch would.
    void set_offset(const std::string& consumer, int32_t partition, int64_t next_offset);

    // What is committed.
    std::vector<store::row> rows() const;
    std::vector<store::dead_letter> dead_letters() const;
    std::optional<int64_t> offset(const std::string& consumer, int32_t partition) const;
    int write_calls() const;  // every write_batch call, failed ones included

private:
    mutable std::mutex mu_;
    std::deque<std::error_code> scripted_failures_;
    std::function<bool(const store::row&)> refuse_;
    std::vector<store::row> rows_;
    std::vector<store::dead_letter> dead_letters_;
    std::map<std::pair<std::string, int32_t>, int64_t> offsets_;
    std::map<int32_t, int64_t> sequences_;
    int write_calls_ = 0;
};

}  // namespace sluice::doubles
