// SPDX-License-Identifier: Apache-2.0
//
// The pipeline runner: one thread per bus partition that reads records from the bus,
// turns them into rows (rule -> decode -> device -> convert -> flag) and writes them to
// the store in large batches, each batch committed in one transaction together with the
// bus offset it reached (docs/promises.md, promise 2: exactly once). On start it resumes from the
// offset stored in the database, so a crash anywhere repeats nothing and skips nothing.
//
// Failure handling:
//  - database unreachable: the batch is retried with backoff (200 ms doubling to 5 s);
//    the bus keeps everything meanwhile and lag grows visibly, then catches up;
//  - a message that cannot be decoded or validated becomes a dead letter (with reason);
//  - the store refusing a batch's data (should not happen: the transformer validates)
//    makes the runner re-read that batch from the bus and write it message by message,
//    dead-lettering the messages the store refuses.
// After each committed batch the runner commits its bus cursor, so the WAL may delete
// segments that every consumer has passed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "pipeline/topic_rules.h"
#include "pipeline/transforms.h"

namespace sluice::bus {
class bus;
}
namespace sluice::store {
class telemetry_store;
class registry;
}  // namespace sluice::store

namespace sluice::pipeline {

struct runner_options {
    std::string consumer = "sluice-pipeline";
    uint32_t partition = 0;
    size_t max_batch_rows = 500'000;                  // a batch is written at this many rows...
    std::chrono::milliseconds max_batch_delay{1000};  // ...or when its first record is this old
    size_t poll_records = 8192;
    anomaly_config anomalies;
    bool auto_register_devices = true;  // unknown device keys: register (true) or dead-letter (false)
    // Cardinality guard (issue 11): new metric names one device may register per
    // interval; readings with further new names are dead-lettered with the reason. New
    // names of a polled batch are registered in one statement.
    uint32_t max_new_metrics_per_device = 1000;
    std::chrono::milliseconds new_metrics_interval{60'000};
};

class runner {
public:
    struct stats {
        std::atomic<uint64_t> records{0};       // bus records processed
        std::atomic<uint64_t> rows{0};          // readings committed
        std::atomic<uint64_t> dead_letters{0};  // messages or readings refused, committed
        std::atomic<uint64_t> batches{0};
        std::atomic<uint64_t> retries{0};                   // batch writes retried (database unavailable)
        std::atomic<uint64_t> committed_offset{0};          // next offset stored in the database
        std::atomic<int64_t> committed_receive_time_ms{0};  // receive time of the newest stored record
        std::atomic<bool> database_up{false};
        std::atomic<uint64_t> sequence_gaps{0};
        std::atomic<uint64_t> sequence_missing{0};
        std::atomic<uint64_t> duplicates{0};  // resent payloads dropped by sequence number
        std::atomic<uint64_t> fenced{0};      // batches refused: another writer moved the stored offset
    };

    runner(bus::bus& log, store::telemetry_store& store, store::registry& registry, const rule_set& rules,
           runner_options options);
    ~runner();
    runner(const runner&) = delete;
    runner& operator=(const runner&) = delete;

    void start();
    // Stops after the batch in progress (written or abandoned; nothing is lost since the
    // offset only advances with a commit). Idempotent.
    void stop();

    const stats& get_stats() const { return stats_; }
    const runner_options& options() const { return options_; }

private:
    struct impl;
    void run();

    bus::bus& log_;
    store::telemetry_store& store_;
    store::registry& registry_;
    const rule_set& rules_;
    runner_options options_;
    stats stats_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

}  // namespace sluice::pipeline
