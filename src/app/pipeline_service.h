// SPDX-License-Identifier: Apache-2.0
//
// Owns the database side of `sluice serve`: the telemetry store, the device registry
// and one pipeline runner per bus partition. Starting never waits for the database:
// a supervisor thread migrates the schema when PostgreSQL answers (retrying with
// backoff) and then joins the bus's consumer group: a runner runs for each partition the
// group gives this process (every partition with the WAL; a share of them with Kafka,
// moving between `sluice pipeline` workers on join, leave and crash), so the broker
// serves and the bus fills even while the database is down.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/lag_probe.h"
#include "base/thread_annotations.h"
#include "bus/bus.h"
#include "pipeline/runner.h"
#include "pipeline/topic_rules.h"
#include "store/registry.h"
#include "store/store.h"

namespace sluice::http {
class metrics_snapshot;
}

namespace sluice::app {

class pipeline_service {
public:
    // `group`: the consumer group the runners join (Kafka); `kafka_topic`, when not empty,
    // adds per-partition lag metrics in kafka-lag-exporter's style.
    pipeline_service(bus::bus& log, const pipeline::rule_set& rules, store::store_options store_opts,
                     pipeline::runner_options runner_opts, std::string group = "sluice-pipeline",
                     std::string kafka_topic = {});
    ~pipeline_service();

    void start();
    void stop();  // stops runners after their current batch; idempotent

    // Pipeline and lag metrics (sluice_pipeline_*, sluice_bus_lag_*).
    void write_metrics(http::metrics_snapshot& w) const;
    // True once the schema is migrated and runners are going.
    bool running() const { return running_.load(); }
    // True when the database cannot be used as configured (store.layout unavailable or not
    // the recorded one): the supervisor logged why and sent SIGTERM to the process.
    bool failed() const { return failed_.load(); }

private:
    void supervise();
    void assign(const std::vector<uint32_t>& partitions);
    void revoke(const std::vector<uint32_t>& partitions);

    bus::bus& log_;
    const pipeline::rule_set& rules_;
    store::store_options store_opts_;
    pipeline::runner_options runner_opts_;
    std::string group_;
    std::string kafka_topic_;
    std::unique_ptr<store::telemetry_store> store_;
    std::unique_ptr<store::registry> registry_;
    mutable sluice::mutex runners_mutex_;
    std::vector<std::unique_ptr<pipeline::runner>> runners_ SLUICE_GUARDED_BY(runners_mutex_);
    uint64_t retired_fenced_ SLUICE_GUARDED_BY(runners_mutex_) = 0;  // fenced batches of runners revoked since start
    sluice::mutex membership_mutex_;
    // Set by the supervisor, reset by stop().
    std::unique_ptr<bus::bus::membership> membership_ SLUICE_GUARDED_BY(membership_mutex_);
    std::atomic<bool> stopping_{false};
    std::atomic<bool> running_{false};
    std::atomic<bool> failed_{false};
    std::thread supervisor_;
    std::unique_ptr<lag_probe> lag_;  // oldest unstored receive time, per partition
};

}  // namespace sluice::app
