// SPDX-License-Identifier: Apache-2.0
//
// The libpq implementation of telemetry_store: a pool of connections (one per
// concurrent write_batch), each batch written in one transaction with binary COPY.
// The contract is in store/store.h, the layout in docs/storage.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "base/log.h"
#include "base/thread_annotations.h"
#include "base/utf8.h"
#include "store/copy_format.h"
#include "store/packing.h"
#include "store/pg.h"
#include "store/schema.h"
#include "store/store.h"

namespace sluice::store {
namespace {

// Flush the COPY buffer to libpq every this many bytes.
constexpr size_t k_copy_chunk = 1 << 20;
// Windows are compacted once they closed this long ago (late readings of the
// batches in flight still land before).
constexpr int64_t k_compaction_grace_us = 120'000'000;
// Compaction works through at most this many hours of windows per maintain() call.
constexpr int k_compaction_hours_per_call = 168;

std::string timestamp_literal(int64_t unix_us) {
    // An ISO-8601 literal PostgreSQL parses exactly (microseconds, UTC).
    const int64_t secs = floor_to(unix_us, 1'000'000) / 1'000'000;
    const int64_t micros = unix_us - secs * 1'000'000;
    const std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
    return buf;
}

int64_t to_unix_us(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

class pg_store final : public telemetry_store {
public:
    explicit pg_store(store_options options) : options_(std::move(options)) {
        const int n = std::max(1, options_.parallel_connections);
        for (int i = 0; i < n; ++i) {
            pool_.push_back(
                std::make_unique<pg::connection>(options_.telemetry_url, options_.connect_timeout, "sluice-store"));
            free_.push_back(pool_.back().get());
        }
        admin_ = std::make_unique<pg::connection>(options_.telemetry_url, options_.connect_timeout, "sluice-admin");
    }

    result<void> migrate() override {
        mutex_lock lk(admin_mu_);
        if (auto r = schema::migrate_telemetry(*admin_, options_.layout); !r) return r;
        auto ts = schema::telemetry_uses_timescale(*admin_);
        if (!ts) return ts.error();
        timescale_.store(*ts);
        if (*ts) return schema::ensure_retention_job(*admin_, options_.retention);
        return ok();
    }

    bool timescale() const override { return timescale_.load(); }

    result<std::vector<sequence_update>> load_sequences() override {
        lease conn(*this);
        if (auto r = conn->ensure(); !r) return r.error();
        auto q = conn->query("SELECT device_id, last_seq FROM sluice_telemetry.device_sequences", {});
        if (!q) return q.error();
        std::vector<sequence_update> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i) {
            out.push_back(sequence_update{static_cast<int32_t>(std::stol(std::string(q->get(i, 0)))),
                                          std::stoll(std::string(q->get(i, 1)))});
        }
        return out;
    }

    result<void> write_batch(std::span<const row> rows, std::span<const dead_letter> dead_letters,
                             std::span<const offset_update> offsets,
                             std::span<const sequence_update> sequences) override {
        for (const offset_update& o : offsets) {
            if (o.consumer.empty() || o.next_offset < 0) return errc::invalid_argument;
        }
        prepared_batch batch;
        if (!prepare_batch(rows, batch)) return errc::invalid_data;
        std::vector<const offset_update*> sorted_offsets;
        for (const offset_update& o : offsets)
            sorted_offsets.push_back(&o);
        // One lock order for every writer: no deadlocks between parallel batches.
        std::sort(sorted_offsets.begin(), sorted_offsets.end(), [](const auto* a, const auto* b) {
            return std::tie(a->consumer, a->partition) < std::tie(b->consumer, b->partition);
        });

        lease conn(*this);
        if (auto r = conn->ensure(); !r) return r;
        if (auto r = ensure_partitions(*conn, batch.days_us); !r) return r;
        auto r = write_transaction(*conn, batch, dead_letters, sorted_offsets, sequences);
        if (!r && r.error() == errc::constraint_violation && !batch.series.empty()) {
            // "no partition of relation found for row": a partition this process
            // believed in was dropped (retention elsewhere). Forget and retry once.
            {
                mutex_lock lk(mu_);
                known_days_.clear();
            }
            if (auto p = ensure_partitions(*conn, batch.days_us); !p) return p;
            r = write_transaction(*conn, batch, dead_letters, sorted_offsets, sequences);
        }
        return r;
    }

    result<std::optional<int64_t>> load_offset(std::string_view consumer, int32_t partition) override {
        lease conn(*this);
        if (auto r = conn->ensure(); !r) return r.error();
        auto q = conn->query(
            "SELECT next_offset FROM sluice_telemetry.sluice_offsets WHERE consumer = $1 AND partition = $2",
            {std::string(consumer), std::to_string(partition)});
        if (!q) return q.error();
        if (q->rows() == 0) return std::optional<int64_t>{};
        return std::optional<int64_t>{std::stoll(std::string(q->get(0, 0)))};
    }

    result<void> maintain(std::chrono::system_clock::time_point now) override {
        mutex_lock lk(admin_mu_);
        pg::connection& conn = *admin_;
        if (auto r = conn.ensure(); !r) return r;
        const int64_t now_us = to_unix_us(now);
        constexpr int64_t day_us = 24 * k_hour_us;

        // 1. Partitions for today and the days ahead.
        std::vector<int64_t> days;
        const int64_t today = floor_to(now_us, day_us);
        for (int d = 0; d <= options_.partitions_ahead_days; ++d)
            days.push_back(today + d * day_us);
        if (auto r = ensure_partitions(conn, days); !r) return r;

        // 2. Retention: whole partitions past the cutoff, and old dead letters. On
        // TimescaleDB a Timescale job does it (schema::ensure_retention_job).
        if (options_.retention.count() > 0 && !timescale_.load()) {
            const int64_t cutoff =
                now_us - std::chrono::duration_cast<std::chrono::microseconds>(options_.retention).count();
            auto q = conn.query("SELECT sluice_telemetry.apply_retention($1)", {timestamp_literal(cutoff)});
            if (!q) return q.error();
            if (q->get(0, 0) != "0")
                SLUICE_INFO("store", "retention dropped %s partitions", std::string(q->get(0, 0)).c_str());
            mutex_lock lk2(mu_);
            known_days_.clear();
        }

        // 3. Compaction of closed windows, an hour of windows per transaction.
        if (auto r = compact(conn, now_us); !r) return r;

        // 4. Hourly rollups of the compacted hours, materialised.
        return roll(conn);
    }

private:
    // RAII checkout of a pool connection; waits while all are in use.
    class lease {
    public:
        explicit lease(pg_store& s) : s_(s) {
            mutex_lock lk(s_.mu_);
            while (s_.free_.empty())
                lk.wait(s_.cv_);
            c_ = s_.free_.back();
            s_.free_.pop_back();
        }
        ~lease() {
            {
                mutex_lock lk(s_.mu_);
                s_.free_.push_back(c_);
            }
            s_.cv_.notify_one();
        }
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        pg::connection* operator->() { return c_; }
        pg::connection& operator*() { return *c_; }

    private:
        pg_store& s_;
        pg::connection* c_;
    };

    result<void> ensure_partitions(pg::connection& conn, const std::vector<int64_t>& days) {
        if (timescale_.load()) return ok();
        for (int64_t day : days) {
            {
                mutex_lock lk(mu_);
                if (known_days_.count(day) != 0) continue;
            }
            auto q = conn.query("SELECT sluice_telemetry.ensure_partition($1)", {timestamp_literal(day)});
            if (!q) return q.error();
            if (q->get(0, 0) == "t") SLUICE_INFO("store", "created partition for %s", timestamp_literal(day).c_str());
            mutex_lock lk(mu_);
            known_days_.insert(day);
        }
        return ok();
    }

    result<void> probe(write_stage stage) {
        if (log::current_level() == log::level::debug) {
            const auto now = std::chrono::steady_clock::now();
            SLUICE_DEBUG("store", "write stage %d after %.1f ms", static_cast<int>(stage),
                         std::chrono::duration<double, std::milli>(now - stage_start_).count());
            stage_start_ = now;
        }
        if (!options_.failure_probe) return ok();
        return options_.failure_probe(stage);
    }

    result<void> write_transaction(pg::connection& conn, const prepared_batch& batch,
                                   std::span<const dead_letter> dead_letters,
                                   const std::vector<const offset_update*>& offsets,
                                   std::span<const sequence_update> sequences) {
        auto fail = [&](std::error_code ec) -> result<void> {
            conn.abort_transaction();
            return ec;
        };
        stage_start_ = std::chrono::steady_clock::now();
        // The shared side of the rollups lock (schema.cc k_rollups_v6), before any table lock:
        // while this batch is open, the rollup watermark does not move.
        if (auto r = conn.exec("BEGIN; SELECT pg_advisory_xact_lock_shared(hashtext('sluice_telemetry.rollups'))"); !r)
            return fail(r.error());
        copy_encoder enc;

        if (!batch.series.empty()) {
            if (auto r = conn.begin_copy("COPY sluice_telemetry.telemetry_packed "
                                         "(device_id, metric_id, window_start, n, sum, min, max, last_off, "
                                         "last_value, time_deltas, vals, flags) "
                                         "FROM STDIN (FORMAT binary)");
                !r)
                return fail(r.error());
            enc.header();
            for (const packed_series& s : batch.series) {
                enc.begin_tuple(12);
                enc.int4(s.device_id);
                enc.int4(s.metric_id);
                enc.timestamptz(s.window_start_us);
                enc.int4(static_cast<int32_t>(s.values.size()));
                enc.float8(s.sum);
                enc.float8(s.min);
                enc.float8(s.max);
                enc.int4(s.last_offset_us);
                enc.float8(s.last_value);
                enc.int4_array(s.deltas);
                enc.float8_array(s.values);
                if (s.any_flag) {
                    enc.int2_array(s.flags);
                } else {
                    enc.null_field();
                }
                if (enc.size() >= k_copy_chunk) {
                    if (auto r = conn.put(enc); !r) return fail(r.error());
                }
            }
            enc.trailer();
            if (auto r = conn.put(enc); !r) return fail(r.error());
            if (auto r = conn.end_copy(); !r) return fail(r.error());
            if (auto r = add_late_rollups(conn, batch); !r) return fail(r.error());
        }
        if (auto r = probe(write_stage::after_rows_copied); !r) return fail(r.error());

        if (!dead_letters.empty()) {
            if (auto r = conn.begin_copy("COPY sluice_telemetry.dead_letters "
                                         "(received_at, topic, client_id, payload, reason) FROM STDIN (FORMAT binary)");
                !r)
                return fail(r.error());
            enc.header();
            for (const dead_letter& d : dead_letters) {
                if (d.received_at_us < k_min_time_us || d.received_at_us >= k_max_time_us) {
                    return fail(errc::invalid_data);
                }
                enc.begin_tuple(5);
                enc.timestamptz(d.received_at_us);
                enc.text(repair_utf8(d.topic));
                enc.text(repair_utf8(d.client_id));
                enc.bytea(d.payload);
                enc.text(repair_utf8(d.reason));
                if (enc.size() >= k_copy_chunk) {
                    if (auto r = conn.put(enc); !r) return fail(r.error());
                }
            }
            enc.trailer();
            if (auto r = conn.put(enc); !r) return fail(r.error());
            if (auto r = conn.end_copy(); !r) return fail(r.error());
        }
        if (auto r = probe(write_stage::after_dead_letters); !r) return fail(r.error());

        for (const offset_update* o : offsets) {
            // Fenced: compare-and-set on the stored offset (-1: none stored yet, so only the
            // INSERT can succeed). The row lock taken here orders racing writers.
            auto q = o->fenced
                         ? conn.query(
                               "INSERT INTO sluice_telemetry.sluice_offsets AS o (consumer, partition, next_offset, "
                               "updated_at) VALUES ($1, $2, $3, now()) ON CONFLICT (consumer, partition) DO UPDATE "
                               "SET next_offset = excluded.next_offset, updated_at = excluded.updated_at "
                               "WHERE o.next_offset = $4 RETURNING 1",
                               {o->consumer, std::to_string(o->partition), std::to_string(o->next_offset),
                                std::to_string(o->expected_offset)})
                         : conn.query(
                               "INSERT INTO sluice_telemetry.sluice_offsets AS o (consumer, partition, next_offset, "
                               "updated_at) VALUES ($1, $2, $3, now()) ON CONFLICT (consumer, partition) DO UPDATE "
                               "SET next_offset = excluded.next_offset, updated_at = excluded.updated_at "
                               "WHERE o.next_offset < excluded.next_offset RETURNING 1",
                               {o->consumer, std::to_string(o->partition), std::to_string(o->next_offset)});
            if (!q) return fail(q.error());
            if (q->rows() == 0) {
                SLUICE_WARN("store", "offset %lld of %s/%d: %s: batch refused", static_cast<long long>(o->next_offset),
                            o->consumer.c_str(), o->partition,
                            o->fenced ? "the stored offset is not the one this writer started from (fenced)"
                                      : "does not advance the stored offset");
                return fail(errc::stale_offset);
            }
        }
        if (!sequences.empty()) {
            std::string ids = "{", seqs = "{";
            for (size_t i = 0; i < sequences.size(); ++i) {
                if (i) {
                    ids += ',';
                    seqs += ',';
                }
                ids += std::to_string(sequences[i].device_id);
                seqs += std::to_string(sequences[i].last_seq);
            }
            ids += '}';
            seqs += '}';
            auto q = conn.query(
                "INSERT INTO sluice_telemetry.device_sequences (device_id, last_seq) "
                "SELECT * FROM unnest($1::int4[], $2::int8[]) ON CONFLICT (device_id) DO UPDATE "
                "SET last_seq = excluded.last_seq, updated_at = now()",
                {ids, seqs});
            if (!q) return fail(q.error());
        }
        if (auto r = probe(write_stage::before_commit); !r) return fail(r.error());
        if (auto r = conn.exec("COMMIT"); !r) {
            // A failed COMMIT on a broken connection leaves the outcome unknown to us;
            // the caller reloads the offset (load_offset) before retrying, which resolves it.
            return fail(r.error());
        }
        return ok();
    }

    // Windows of this batch behind the rollup watermark (late readings) are not counted from
    // the packed rows any more: their aggregates go into telemetry_1h_state, in this
    // transaction, one state row per window (readers sum the rows of an hour).
    result<void> add_late_rollups(pg::connection& conn, const prepared_batch& batch) {
        auto w = conn.query("SELECT sluice_telemetry.writer_rolled_until()");
        if (!w) return w.error();
        if (w->is_null(0, 0)) return ok();  // nothing rolled yet
        const int64_t rolled_until = std::stoll(std::string(w->get(0, 0)));
        std::string devices = "{", metrics = "{", windows = "{", sums = "{", counts = "{", mins = "{", maxs = "{",
                    last_offsets = "{", last_values = "{";
        int late = 0;
        char num[32];
        auto add = [&](std::string& list, const char* text) {
            if (late > 0) list += ',';
            list += text;
        };
        for (const packed_series& s : batch.series) {
            if (s.window_start_us >= rolled_until) continue;
            add(devices, std::to_string(s.device_id).c_str());
            add(metrics, std::to_string(s.metric_id).c_str());
            add(windows, std::to_string(s.window_start_us).c_str());
            std::snprintf(num, sizeof num, "%.17g", s.sum);
            add(sums, num);
            add(counts, std::to_string(s.values.size()).c_str());
            std::snprintf(num, sizeof num, "%.17g", s.min);
            add(mins, num);
            std::snprintf(num, sizeof num, "%.17g", s.max);
            add(maxs, num);
            add(last_offsets, std::to_string(s.last_offset_us).c_str());
            std::snprintf(num, sizeof num, "%.17g", s.last_value);
            add(last_values, num);
            ++late;
        }
        if (late == 0) return ok();
        for (std::string* list :
             {&devices, &metrics, &windows, &sums, &counts, &mins, &maxs, &last_offsets, &last_values})
            *list += '}';
        auto q = conn.query(
            "INSERT INTO sluice_telemetry.telemetry_1h_state "
            "(bucket, device_id, metric_id, sum, count, min, max, last_time, last_value) "
            "SELECT date_bin('1 hour', w.ws, timestamptz '2000-01-01 00:00:00+00'), w.d, w.m, w.s, w.n, w.mn, w.mx, "
            "w.ws + w.lo * interval '1 microsecond', w.lv FROM (SELECT timestamptz 'epoch' + u.us * interval "
            "'1 microsecond' AS ws, u.* FROM unnest($1::int4[], $2::int4[], $3::int8[], $4::float8[], $5::int8[], "
            "$6::float8[], $7::float8[], $8::int4[], $9::float8[]) AS u(d, m, us, s, n, mn, mx, lo, lv)) w",
            {devices, metrics, windows, sums, counts, mins, maxs, last_offsets, last_values});
        if (!q) return q.error();
        SLUICE_DEBUG("store", "%d windows behind the rollup watermark added to telemetry_1h_state", late);
        return ok();
    }

    // Hours whose windows are all compacted are materialised into telemetry_1h_state
    // (roll_hours), an hour per transaction: writers wait for each, so each stays short.
    result<void> roll(pg::connection& conn) {
        auto q = conn.query(
            "SELECT (SELECT value FROM sluice_telemetry.settings WHERE key = 'rolled_until'), "
            "(SELECT value FROM sluice_telemetry.settings WHERE key = 'compacted_until'), "
            "(extract(epoch FROM sluice_telemetry.first_window()) * 1000000)::int8");
        if (!q) return q.error();
        if (q->is_null(0, 1)) return ok();  // nothing compacted yet
        const int64_t limit = floor_to(std::stoll(std::string(q->get(0, 1))), k_hour_us);
        int64_t from = 0;
        if (!q->is_null(0, 0)) {
            from = std::stoll(std::string(q->get(0, 0)));
        } else if (!q->is_null(0, 2)) {
            from = floor_to(std::stoll(std::string(q->get(0, 2))), k_hour_us);
        } else {
            return ok();  // no partitions
        }
        for (int step = 0; step < k_compaction_hours_per_call && from < limit; ++step) {
            from += k_hour_us;
            auto r = conn.query("SELECT sluice_telemetry.roll_hours($1)", {timestamp_literal(from)});
            if (!r) return r.error();
        }
        return ok();
    }

    result<void> compact(pg::connection& conn, int64_t now_us) {
        // Windows that closed at least the grace period ago: window_start < limit.
        const int64_t limit = floor_to(now_us - k_window_us - k_compaction_grace_us, k_window_us) + k_window_us;
        auto q = conn.query(
            "SELECT coalesce((SELECT value FROM sluice_telemetry.settings WHERE key = 'compacted_until'), "
            "(extract(epoch FROM sluice_telemetry.first_window()) * 1000000)::int8::text)");
        if (!q) return q.error();
        if (q->is_null(0, 0)) return ok();  // no partitions, nothing to compact
        int64_t from = std::stoll(std::string(q->get(0, 0)));
        for (int step = 0; step < k_compaction_hours_per_call && from < limit; ++step) {
            const int64_t to = std::min(limit, floor_to(from, k_hour_us) + k_hour_us);
            auto fail = [&](std::error_code ec) -> result<void> {
                conn.abort_transaction();
                return ec;
            };
            if (auto r = conn.exec("BEGIN"); !r) return fail(r.error());
            auto c = conn.query("SELECT sluice_telemetry.compact_windows($1, $2)",
                                {timestamp_literal(from), timestamp_literal(to)});
            if (!c) return fail(c.error());
            auto u = conn.query(
                "INSERT INTO sluice_telemetry.settings VALUES ('compacted_until', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                {std::to_string(to)});
            if (!u) return fail(u.error());
            if (auto r = conn.exec("COMMIT"); !r) return fail(r.error());
            if (c->get(0, 0) != "0") {
                SLUICE_DEBUG("store", "compacted %s series windows from %s", std::string(c->get(0, 0)).c_str(),
                             timestamp_literal(from).c_str());
            }
            from = to;
        }
        return ok();
    }

    store_options options_;
    sluice::mutex mu_;
    std::condition_variable cv_;  // a connection went back to free_
    std::vector<std::unique_ptr<pg::connection>> pool_;
    std::vector<pg::connection*> free_ SLUICE_GUARDED_BY(mu_);
    std::set<int64_t> known_days_ SLUICE_GUARDED_BY(mu_);
    sluice::mutex admin_mu_;  // migrate and maintain, one at a time, on admin_
    std::unique_ptr<pg::connection> admin_ SLUICE_PT_GUARDED_BY(admin_mu_);
    std::atomic<bool> timescale_{false};
    // Debug-level stage timing of write_transaction (only read when logging at debug).
    static thread_local std::chrono::steady_clock::time_point stage_start_;
};

thread_local std::chrono::steady_clock::time_point pg_store::stage_start_;

}  // namespace

bool parse_layout(std::string_view text, layout_choice& out) {
    if (text == "auto") {
        out = layout_choice::automatic;
    } else if (text == "native") {
        out = layout_choice::native;
    } else if (text == "timescale") {
        out = layout_choice::timescale;
    } else {
        return false;
    }
    return true;
}

result<std::unique_ptr<telemetry_store>> open_postgres(const store_options& options) {
    if (options.telemetry_url.empty() || options.parallel_connections < 1) return errc::invalid_argument;
    auto store = std::make_unique<pg_store>(options);
    return std::unique_ptr<telemetry_store>(std::move(store));
}

}  // namespace sluice::store
