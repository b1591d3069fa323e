// SPDX-License-Identifier: Apache-2.0
#include "app/pipeline_service.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string_view>

#include "base/clock.h"
#include "base/log.h"
#include "bus/bus.h"
#include "http/metric_names.h"
#include "http/metrics_snapshot.h"

namespace sluice::app {

pipeline_service::pipeline_service(bus::bus& log, const pipeline::rule_set& rules, store::store_options store_opts,
                                   pipeline::runner_options runner_opts, std::string group, std::string kafka_topic)
    : log_(log),
      rules_(rules),
      store_opts_(std::move(store_opts)),
      runner_opts_(std::move(runner_opts)),
      group_(std::move(group)),
      kafka_topic_(std::move(kafka_topic)),
      lag_(std::make_unique<lag_probe>(log)) {}

pipeline_service::~pipeline_service() {
    stop();
}

void pipeline_service::start() {
    supervisor_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "sluice-pipe-sup");
        supervise();
    });
}

void pipeline_service::supervise() {
    auto delay = std::chrono::milliseconds(500);
    bool warned = false;
    while (!stopping_.load()) {
        auto st = store::open_postgres(store_opts_);
        result<void> ok = st ? (*st)->migrate() : result<void>(st.error());
        std::unique_ptr<store::registry> reg;
        if (ok) {
            auto r = store::open_registry(store_opts_);
            if (r) {
                reg = std::move(*r);
            } else {
                ok = r.error();
            }
        }
        if (ok) {
            store_ = std::move(*st);
            registry_ = std::move(reg);
            SLUICE_INFO("pipeline", "database schema ready (%s); joining consumer group %s",
                        store_->timescale() ? "TimescaleDB" : "PostgreSQL partitions", group_.c_str());
            // Joining only now: a worker whose database is unreachable takes no partitions.
            for (;;) {
                auto m = log_.join_group(
                    group_, [this](const std::vector<uint32_t>& p) { assign(p); },
                    [this](const std::vector<uint32_t>& p) { revoke(p); });
                if (m) {
                    sluice::mutex_lock lock(membership_mutex_);
                    membership_ = std::move(*m);
                    running_.store(true);
                    return;
                }
                SLUICE_WARN("pipeline", "cannot join consumer group %s: %s; retrying", group_.c_str(),
                            m.error().message().c_str());
                for (int i = 0; i < 50 && !stopping_.load(); ++i)
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                if (stopping_.load()) return;
            }
        }
        if (ok.error() == store::errc::layout_unavailable || ok.error() == store::errc::layout_mismatch) {
            // Retrying cannot help: the operator must change postgresql.conf or store.layout.
            SLUICE_ERROR("pipeline", "cannot use the telemetry database: %s; stopping", ok.error().message().c_str());
            failed_.store(true);
            kill(getpid(), SIGTERM);
            return;
        }
        if (!warned) {
            SLUICE_WARN("pipeline", "database not ready: %s; ingest stays in the WAL, retrying",
                        ok.error().message().c_str());
            warned = true;
        }
        auto until = std::chrono::steady_clock::now() + delay;
        while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        delay = std::min(delay * 2, std::chrono::milliseconds(5000));
    }
}

void pipeline_service::assign(const std::vector<uint32_t>& partitions) {
    sluice::mutex_lock lock(runners_mutex_);
    for (uint32_t p : partitions) {
        bool have = false;
        for (const auto& r : runners_)
            have = have || r->options().partition == p;
        if (have) continue;
        auto opts = runner_opts_;
        opts.partition = p;
        runners_.push_back(std::make_unique<pipeline::runner>(log_, *store_, *registry_, rules_, opts));
        runners_.back()->start();
    }
    SLUICE_INFO("pipeline", "%zu partition(s) assigned; %zu pipeline runner(s) running", partitions.size(),
                runners_.size());
}

void pipeline_service::revoke(const std::vector<uint32_t>& partitions) {
    sluice::mutex_lock lock(runners_mutex_);
    for (auto it = runners_.begin(); it != runners_.end();) {
        uint32_t p = (*it)->options().partition;
        if (std::find(partitions.begin(), partitions.end(), p) != partitions.end()) {
            (*it)->stop();  // after its current batch: the next owner resumes from the database
            retired_fenced_ += (*it)->get_stats().fenced.load();
            it = runners_.erase(it);
        } else {
            ++it;
        }
    }
    SLUICE_INFO("pipeline", "%zu partition(s) revoked; %zu pipeline runner(s) running", partitions.size(),
                runners_.size());
}

void pipeline_service::stop() {
    stopping_.store(true);
    if (supervisor_.joinable()) supervisor_.join();
    {
        std::unique_ptr<bus::bus::membership> m;
        {
            sluice::mutex_lock lock(membership_mutex_);
            m = std::move(membership_);
        }
        m.reset();  // leaves the group: revoke() stops the runners
    }
    sluice::mutex_lock lock(runners_mutex_);
    for (auto& r : runners_)
        r->stop();
}

void pipeline_service::write_metrics(http::metrics_snapshot& w) const {
    namespace m = http::metric_names;
    w.gauge(m::pipeline_running, "1 once the schema is migrated and pipeline runners are going.", running_ ? 1 : 0);
    const int64_t now_ms = unix_ms();
    sluice::mutex_lock lock(runners_mutex_);
    w.gauge("pipeline_partitions_owned", "Bus partitions this process's pipeline owns (its share of the group).",
            static_cast<double>(runners_.size()));
    uint64_t fenced = retired_fenced_;
    for (const auto& r : runners_)
        fenced += r->get_stats().fenced.load();
    w.counter("pipeline_fenced_batches_total",
              "Batches refused because another writer had moved the partition's stored offset (a rebalance).",
              static_cast<double>(fenced));
    // Every partition gets every metric from the first scrape (issue 11), also while the
    // database has not answered yet and no runner exists: then the committed offset is
    // the bus cursor the pipeline last committed (or the oldest record on disk).
    for (uint32_t p = 0; p < log_.partitions(); ++p) {
        const pipeline::runner* r = nullptr;
        for (const auto& candidate : runners_) {
            if (candidate->options().partition == p) r = candidate.get();
        }
        http::metrics_snapshot::labels l{{"partition", std::to_string(p)}};
        auto bus_stats = log_.get_stats(p);
        uint64_t committed = 0;
        if (r != nullptr) {
            committed = r->get_stats().committed_offset.load();
        } else {
            auto c = log_.cursor(runner_opts_.consumer, p);
            committed = c && *c ? **c : bus_stats.oldest_offset;
        }
        committed = std::max(committed, bus_stats.oldest_offset);
        uint64_t lag = bus_stats.durable_end > committed ? bus_stats.durable_end - committed : 0;
        double lag_seconds = 0;
        if (lag > 0) {
            // The age of the oldest reading not stored yet: keeps growing while it waits.
            int64_t oldest = lag_->receive_time_at(p, committed);
            lag_seconds = oldest > 0 && now_ms > oldest ? static_cast<double>(now_ms - oldest) / 1000.0 : 0;
        }
        auto counter = [&](std::string_view name, std::string_view help,
                           const std::atomic<uint64_t> pipeline::runner::stats::*f) {
            w.counter(name, help, r != nullptr ? static_cast<double>((r->get_stats().*f).load()) : 0.0, l);
        };
        w.gauge(m::bus_lag_messages, "Durable bus records not yet committed to the database.", static_cast<double>(lag),
                l);
        w.gauge(m::bus_lag_seconds, "Age (receive time to now) of the oldest durable record not yet in the database.",
                lag_seconds, l);
        w.gauge("pipeline_committed_offset", "Next bus offset stored in the database.", static_cast<double>(committed),
                l);
        using st = pipeline::runner::stats;
        counter("pipeline_records_total", "Bus records processed.", &st::records);
        counter(m::pipeline_rows, "Readings committed to the database.", &st::rows);
        counter(m::pipeline_dead_letters, "Messages (or readings) refused and stored as dead letters.",
                &st::dead_letters);
        counter("pipeline_batches_total", "Batches committed.", &st::batches);
        counter("pipeline_retries_total", "Database operations retried while it was unavailable.", &st::retries);
        w.gauge(m::pipeline_database_up, "1 while the last database operation succeeded.",
                r != nullptr && r->get_stats().database_up.load() ? 1 : 0, l);
        counter(m::pipeline_sequence_gaps, "Device sequence gaps detected.", &st::sequence_gaps);
        counter("pipeline_duplicates_total", "Resent payloads (same device sequence number) dropped.", &st::duplicates);
        counter(m::pipeline_sequence_missing, "Device payloads missing, summed over gaps.", &st::sequence_missing);
        if (!kafka_topic_.empty()) {
            // kafka-lag-exporter's names (prefixed sluice_), from the offsets in the database.
            http::metrics_snapshot::labels kl{
                {"group", group_}, {"topic", kafka_topic_}, {"partition", std::to_string(p)}};
            w.gauge("kafka_consumergroup_group_lag", "Records of the partition not yet stored in the database.",
                    static_cast<double>(lag), kl);
            w.gauge("kafka_consumergroup_group_lag_seconds",
                    "Receive-time gap between the newest record and the newest stored.", lag_seconds, kl);
            w.gauge("kafka_consumergroup_group_offset", "Next offset stored in the database (the group's position).",
                    static_cast<double>(committed), kl);
            w.gauge("kafka_partition_latest_offset", "High watermark of the partition.",
                    static_cast<double>(bus_stats.durable_end), kl);
        }
    }
}

}  // namespace sluice::app
