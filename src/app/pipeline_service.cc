// SPDX-License-Identifier: Apache-2.0
#include "app/pipeline_service.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "base/log.h"
#include "bus/bus.h"
#include "http/prometheus.h"

namespace sluice::app {

pipeline_service::pipeline_service(bus::bus& log, const pipeline::rule_set& rules, store::store_options store_opts,
                                   pipeline::runner_options runner_opts)
    : log_(log), rules_(rules), store_opts_(std::move(store_opts)), runner_opts_(std::move(runner_opts)) {}

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
            std::lock_guard<std::mutex> lock(runners_mutex_);
            for (uint32_t p = 0; p < log_.partitions(); ++p) {
                auto opts = runner_opts_;
                opts.partition = p;
                runners_.push_back(std::make_unique<pipeline::runner>(log_, *store_, *registry_, rules_, opts));
                runners_.back()->start();
            }
            running_.store(true);
            SLUICE_INFO("pipeline", "database schema ready (%s); %u pipeline runner(s) started",
                        store_->timescale() ? "TimescaleDB" : "PostgreSQL partitions", log_.partitions());
            return;
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

void pipeline_service::stop() {
    stopping_.store(true);
    if (supervisor_.joinable()) supervisor_.join();
    std::lock_guard<std::mutex> lock(runners_mutex_);
    for (auto& r : runners_)
        r->stop();
}

void pipeline_service::write_metrics(http::prometheus_writer& w) const {
    w.gauge("pipeline_running", "1 once the schema is migrated and pipeline runners are going.", running_ ? 1 : 0);
    std::lock_guard<std::mutex> lock(runners_mutex_);
    for (const auto& r : runners_) {
        const auto& s = r->get_stats();
        uint32_t p = r->options().partition;
        http::prometheus_writer::labels l{{"partition", std::to_string(p)}};
        auto bus_stats = log_.get_stats(p);
        uint64_t committed = s.committed_offset.load();
        uint64_t lag = bus_stats.durable_end > committed ? bus_stats.durable_end - committed : 0;
        double lag_seconds = 0;
        if (lag > 0) {
            int64_t stored = s.committed_receive_time_ms.load();
            int64_t newest = bus_stats.newest_receive_time_ms;
            // Before the first commit of this run the stored time is unknown: report 0 s
            // and let bus_lag_messages speak.
            lag_seconds = stored > 0 && newest > stored ? static_cast<double>(newest - stored) / 1000.0 : 0;
        }
        w.gauge("bus_lag_messages", "Durable bus records not yet committed to the database.", static_cast<double>(lag),
                l);
        w.gauge("bus_lag_seconds", "Receive-time gap between the newest durable record and the newest stored one.",
                lag_seconds, l);
        w.gauge("pipeline_committed_offset", "Next bus offset stored in the database.", static_cast<double>(committed),
                l);
        w.counter("pipeline_records_total", "Bus records processed.", static_cast<double>(s.records.load()), l);
        w.counter("pipeline_rows_total", "Readings committed to the database.", static_cast<double>(s.rows.load()), l);
        w.counter("pipeline_dead_letters_total", "Messages (or readings) refused and stored as dead letters.",
                  static_cast<double>(s.dead_letters.load()), l);
        w.counter("pipeline_batches_total", "Batches committed.", static_cast<double>(s.batches.load()), l);
        w.counter("pipeline_retries_total", "Database operations retried while it was unavailable.",
                  static_cast<double>(s.retries.load()), l);
        w.gauge("pipeline_database_up", "1 while the last database operation succeeded.", s.database_up.load() ? 1 : 0,
                l);
        w.counter("pipeline_sequence_gaps_total", "Device sequence gaps detected.",
                  static_cast<double>(s.sequence_gaps.load()), l);
        w.counter("pipeline_duplicates_total", "Resent payloads (same device sequence number) dropped.",
                  static_cast<double>(s.duplicates.load()), l);
        w.counter("pipeline_sequence_missing_total", "Device payloads missing, summed over gaps.",
                  static_cast<double>(s.sequence_missing.load()), l);
    }
}

}  // namespace sluice::app
