// SPDX-License-Identifier: Apache-2.0
#include "pipeline/runner.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "base/log.h"
#include "bus/bus.h"
#include "pipeline/processor.h"
#include "store/errc.h"
#include "store/registry.h"
#include "store/store.h"

namespace sluice::pipeline {
namespace {

using namespace std::chrono_literals;

int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

metric_def to_def(const store::metric_row& row) {
    metric_def def;
    def.id = static_cast<uint32_t>(row.id);
    def.name = row.name;
    def.unit = row.unit;
    def.scale = row.scale;
    def.offset = row.offset;
    def.valid_min = row.valid_min;
    def.valid_max = row.valid_max;
    def.warn_low = row.warn_low;
    def.warn_high = row.warn_high;
    return def;
}

bool retryable(std::error_code ec) {
    return ec == store::errc::connection_failed || ec == store::errc::conflict || ec == store::errc::resource_exhausted;
}

// Exponential backoff: 200 ms doubling to 5 s, reset after a success.
class backoff {
public:
    std::chrono::milliseconds next() {
        auto d = delay_;
        delay_ = std::min(delay_ * 2, std::chrono::milliseconds(5000));
        return d;
    }
    void reset() { delay_ = 200ms; }

private:
    std::chrono::milliseconds delay_{200};
};

}  // namespace

// The state of one run() (kept out of the header: it is all thread-local to the runner).
struct runner::impl {
    runner& r;
    metric_dictionary metrics;
    std::unordered_map<std::string, uint32_t> devices;
    // Last accepted payload sequence number per device (committed or in this batch), and
    // the devices whose number this batch changed, with the value before the batch.
    std::unordered_map<uint32_t, uint64_t> last_seq;
    std::unordered_map<uint32_t, std::optional<uint64_t>> batch_seq_before;
    std::optional<std::pair<uint32_t, std::optional<uint64_t>>> seq_undo;  // the current message's change
    bool db_error = false;  // set by the registry hooks when the database could not answer
    backoff wait;
    std::unique_ptr<processor> proc;

    std::vector<telemetry_row> trows;
    std::vector<rejected_reading> rejected;
    std::vector<store::row> rows;
    std::vector<store::dead_letter> dead;
    uint64_t batch_first = 0;
    uint64_t next = 0;
    // The offset stored in the database as far as this runner knows (-1: none). Every
    // write is a compare-and-set from it; when another writer moved it (a rebalance gave
    // the partition to another worker meanwhile) the write is refused and `fenced` set:
    // the runner drops its batch and resumes from what the database holds.
    int64_t stored = -1;
    bool fenced = false;
    int64_t batch_started_ms = 0;
    int64_t newest_receive_ms = 0;

    explicit impl(runner& owner) : r(owner) {}

    // Sleeps for the next backoff step, waking early on stop. Returns false if stopping.
    bool pause() {
        auto until = std::chrono::steady_clock::now() + wait.next();
        while (std::chrono::steady_clock::now() < until) {
            if (r.stopping_.load()) return false;
            std::this_thread::sleep_for(20ms);
        }
        return !r.stopping_.load();
    }

    std::optional<uint32_t> device_id(std::string_view key, const topic_match& m) {
        auto it = devices.find(std::string(key));
        if (it != devices.end()) return it->second;
        if (!r.options_.auto_register_devices) {
            auto found = r.registry_.find_device(key);
            if (!found) {
                db_error = retryable(found.error());
                return std::nullopt;
            }
            if (!*found) return std::nullopt;
            devices.emplace(std::string(key), static_cast<uint32_t>((*found)->id));
            return static_cast<uint32_t>((*found)->id);
        }
        auto d = r.registry_.ensure_device(key, m.get("site").value_or(""), m.get("line").value_or(""));
        if (!d) {
            db_error = retryable(d.error());
            if (!db_error)
                SLUICE_ERROR("pipeline", "cannot register device %.*s: %s", static_cast<int>(key.size()), key.data(),
                             d.error().message().c_str());
            return std::nullopt;
        }
        devices.emplace(std::string(key), static_cast<uint32_t>(d->id));
        return static_cast<uint32_t>(d->id);
    }

    // Cardinality guard (issue 11): new metric names per device and interval.
    std::unordered_map<std::string, uint32_t> new_names;  // device key -> names registered this interval
    int64_t names_interval_start = 0;
    std::string current_device;  // device key of the record being processed
    size_t capped = 0;           // new names of the current record refused by the guard

    bool allow_new_name(std::string_view device) {
        const int64_t now = steady_ms();
        if (now - names_interval_start >= r.options_.new_metrics_interval.count()) {
            new_names.clear();
            names_interval_start = now;
        }
        uint32_t& n = new_names[std::string(device)];
        if (n >= r.options_.max_new_metrics_per_device) return false;
        ++n;
        return true;
    }

    // Registers the new metric names of a polled batch (up to each device's allowance) in
    // one statement, so a burst of names costs one round trip and never stalls other
    // devices' readings for minutes.
    bool register_new_metrics(const std::vector<bus::record>& recs) {
        payload_decoder decoder;
        decoded_payload decoded;
        std::vector<std::string> names;
        std::unordered_set<std::string> seen;
        for (const auto& rec : recs) {
            auto m = r.rules_.match(rec.msg.topic);
            if (!m) continue;
            std::string_view key = m->device.empty() ? std::string_view(rec.msg.client_id) : m->device;
            if (!decoder.decode(rec.msg.payload, m->format, rec.msg.receive_time_ms, decoded)) continue;
            for (const auto& rd : decoded.readings) {
                if (rd.metric_name.empty() || metrics.find(rd.metric_name) != nullptr) continue;
                std::string name(rd.metric_name);
                if (seen.count(name) != 0 || !allow_new_name(key)) continue;
                seen.insert(name);
                names.push_back(std::move(name));
            }
        }
        if (names.empty()) return true;
        for (;;) {
            auto got = r.registry_.ensure_metrics(names);
            if (got) {
                for (const auto& [name, id] : *got) {
                    metric_def def;
                    def.id = static_cast<uint32_t>(id);
                    def.name = name;
                    std::string reason;
                    if (!metrics.add(def, reason))
                        SLUICE_WARN("pipeline", "metric %s: %s", name.c_str(), reason.c_str());
                }
                if (names.size() > 100)
                    SLUICE_INFO("pipeline", "registered %zu new metric names at once", names.size());
                wait.reset();
                return true;
            }
            if (!retryable(got.error())) {
                SLUICE_WARN("pipeline", "registering %zu metric names at once failed (%s); one by one instead",
                            names.size(), got.error().message().c_str());
                return true;
            }
            r.stats_.retries.fetch_add(1, std::memory_order_relaxed);
            r.stats_.database_up.store(false);
            if (!pause()) return false;
        }
    }

    const metric_def* metric(std::string_view name) {
        if (!allow_new_name(current_device)) {
            ++capped;
            return nullptr;
        }
        auto id = r.registry_.ensure_metric(name);
        if (!id) {
            db_error = retryable(id.error());
            return nullptr;
        }
        metric_def def;
        def.id = static_cast<uint32_t>(*id);
        def.name = std::string(name);
        std::string reason;
        if (!metrics.add(def, reason)) {
            SLUICE_ERROR("pipeline", "metric %s: %s", def.name.c_str(), reason.c_str());
            return nullptr;
        }
        return metrics.find(def.id);
    }

    // Picks up metric definitions added or changed in the database since the last load
    // (binary payloads name metrics by id, so a new id is unknown until then). Failures are
    // left for the next reload.
    void reload_dictionary() {
        auto m = r.registry_.load_metrics();
        if (!m) return;
        for (const auto& row : *m) {
            std::string reason;
            (void)metrics.add(to_def(row), reason);
        }
    }

    bool load_dictionary() {
        for (;;) {
            auto m = r.registry_.load_metrics();
            if (m) {
                for (const auto& row : *m) {
                    metric_def def = to_def(row);
                    std::string reason;
                    if (!metrics.add(def, reason))
                        SLUICE_WARN("pipeline", "metric %s ignored: %s", def.name.c_str(), reason.c_str());
                }
                wait.reset();
                return true;
            }
            SLUICE_WARN("pipeline", "cannot load the metrics dictionary: %s; retrying", m.error().message().c_str());
            if (!pause()) return false;
        }
    }

    // QoS 1 resends after a lost PUBACK reach the bus twice; a payload's sequence number
    // tells them apart. A number at or below the device's last one is a resend unless it is
    // far below (the device restarted its counter) or the payload says it restarted.
    bool accept_sequence(uint32_t device, uint64_t seq, bool restart) {
        constexpr uint64_t k_restart_distance = 1024;
        auto it = last_seq.find(device);
        std::optional<uint64_t> before;
        if (it != last_seq.end()) before = it->second;
        if (before && !restart && seq <= *before && *before - seq <= k_restart_distance) return false;
        seq_undo = std::make_pair(device, before);
        batch_seq_before.try_emplace(device, before);
        last_seq[device] = seq;
        return true;
    }

    void undo_sequence() {
        if (!seq_undo) return;
        auto [device, before] = *seq_undo;
        if (before) {
            last_seq[device] = *before;
        } else {
            last_seq.erase(device);
        }
        seq_undo.reset();
    }

    void rewind_batch_sequences() {
        for (auto& [device, before] : batch_seq_before) {
            if (before) {
                last_seq[device] = *before;
            } else {
                last_seq.erase(device);
            }
        }
        batch_seq_before.clear();
    }

    // Devices already registered are known at start, so a restart does not look them up
    // one by one.
    bool preload_devices() {
        for (;;) {
            auto d = r.registry_.load_devices();
            if (d) {
                for (const auto& dev : *d)
                    devices[dev.key] = static_cast<uint32_t>(dev.id);
                return true;
            }
            SLUICE_WARN("pipeline", "cannot load the device registry: %s; retrying", d.error().message().c_str());
            if (!pause()) return false;
        }
    }

    // Registers the unknown devices of a polled batch in one statement (a reconnect storm
    // of new devices costs one round trip, not one fsync per device).
    bool register_new_devices(const std::vector<bus::record>& recs) {
        if (!r.options_.auto_register_devices) return true;
        std::vector<store::registry::device_request> requests;
        std::unordered_set<std::string_view> seen;
        for (const auto& rec : recs) {
            auto m = r.rules_.match(rec.msg.topic);
            if (!m) continue;
            std::string_view key = m->device.empty() ? std::string_view(rec.msg.client_id) : m->device;
            if (key.empty() || seen.count(key) || devices.count(std::string(key))) continue;
            seen.insert(key);
            requests.push_back(store::registry::device_request{
                std::string(key), std::string(m->get("site").value_or("")), std::string(m->get("line").value_or(""))});
        }
        if (requests.empty()) return true;
        for (;;) {
            auto got = r.registry_.ensure_devices(requests);
            if (got) {
                for (const auto& dev : *got)
                    devices[dev.key] = static_cast<uint32_t>(dev.id);
                wait.reset();
                return true;
            }
            if (!retryable(got.error())) {
                SLUICE_WARN("pipeline", "registering %zu devices at once failed (%s); registering one by one",
                            requests.size(), got.error().message().c_str());
                return true;
            }
            r.stats_.retries.fetch_add(1, std::memory_order_relaxed);
            r.stats_.database_up.store(false);
            if (!pause()) return false;
        }
    }

    bool load_sequences() {
        for (;;) {
            auto s = r.store_.load_sequences();
            if (s) {
                for (const auto& u : *s)
                    last_seq[static_cast<uint32_t>(u.device_id)] = static_cast<uint64_t>(u.last_seq);
                return true;
            }
            SLUICE_WARN("pipeline", "cannot load device sequence numbers: %s; retrying", s.error().message().c_str());
            if (!pause()) return false;
        }
    }

    // Turns one bus record into rows and dead letters appended to the batch. Retries
    // (after a pause) when the registry could not reach the database.
    bool process(const bus::record& rec) {
        for (;;) {
            db_error = false;
            capped = 0;
            seq_undo.reset();
            trows.clear();
            rejected.clear();
            message_view view{rec.msg.topic, rec.msg.client_id, rec.msg.payload, rec.msg.receive_time_ms};
            auto res = proc->process(view, unix_ms(), trows, rejected);
            if (db_error) {
                undo_sequence();
                r.stats_.retries.fetch_add(1, std::memory_order_relaxed);
                r.stats_.database_up.store(false);
                if (!pause()) return false;
                continue;
            }
            int64_t received_us = rec.msg.receive_time_ms * 1000;
            if (!res) {
                dead.push_back(store::dead_letter{received_us, rec.msg.topic, rec.msg.client_id, rec.msg.payload,
                                                  std::string(proc->reason())});
                return true;
            }
            for (const auto& t : trows) {
                rows.push_back(store::row{t.time_ms * 1000, static_cast<int32_t>(t.device_id),
                                          static_cast<int32_t>(t.metric_id), t.value, t.flags});
            }
            if (!rejected.empty()) {
                std::string reason = std::to_string(rejected.size()) + " of " +
                                     std::to_string(rejected.size() + trows.size()) + " readings refused: ";
                if (capped > 0) {
                    reason += std::to_string(capped) + " new metric names over the device's limit (" +
                              std::to_string(r.options_.max_new_metrics_per_device) + " per " +
                              std::to_string(r.options_.new_metrics_interval.count() / 1000) + " s); ";
                }
                for (size_t i = 0; i < rejected.size() && i < 8; ++i) {
                    if (i) reason += "; ";
                    reason += "reading " + std::to_string(rejected[i].index) + ": " + rejected[i].reason;
                }
                dead.push_back(store::dead_letter{received_us, rec.msg.topic, rec.msg.client_id, rec.msg.payload,
                                                  std::move(reason)});
            }
            return true;
        }
    }

    // Writes the batch with its offset. Returns false if stopping interrupted it.
    bool flush() {
        if (next == batch_first) return true;
        std::vector<store::offset_update> offsets{store::offset_update{
            r.options_.consumer, static_cast<int32_t>(r.options_.partition), static_cast<int64_t>(next), true, stored}};
        std::vector<store::sequence_update> sequences;
        sequences.reserve(batch_seq_before.size());
        for (const auto& [device, before] : batch_seq_before) {
            sequences.push_back(
                store::sequence_update{static_cast<int32_t>(device), static_cast<int64_t>(last_seq[device])});
        }
        for (;;) {
            auto w = r.store_.write_batch(rows, dead, offsets, sequences);
            if (w) break;
            if (w.error() == store::errc::stale_offset) {
                SLUICE_WARN("pipeline",
                            "partition %u: another writer stored offsets past %lld; dropping the batch "
                            "%llu..%llu and resuming from the database",
                            r.options_.partition, static_cast<long long>(stored),
                            static_cast<unsigned long long>(batch_first), static_cast<unsigned long long>(next));
                drop_batch();
                return true;
            }
            if (retryable(w.error())) {
                if (r.stats_.database_up.exchange(false)) {
                    SLUICE_WARN("pipeline", "database unavailable (%s); the WAL keeps everything, retrying",
                                w.error().message().c_str());
                }
                r.stats_.retries.fetch_add(1, std::memory_order_relaxed);
                if (!pause()) return false;
                continue;
            }
            SLUICE_ERROR("pipeline", "the store refused a batch (%s); writing it message by message",
                         w.error().message().c_str());
            rewind_batch_sequences();
            if (!write_one_by_one()) return false;
            break;
        }
        if (fenced) {  // write_one_by_one() was fenced (and counted it)
            rewind_batch_sequences();
            rows.clear();
            dead.clear();
            batch_started_ms = 0;
            return true;
        }
        stored = static_cast<int64_t>(next);
        wait.reset();
        if (!r.stats_.database_up.exchange(true)) SLUICE_INFO("pipeline", "database available; writing");
        r.stats_.rows.fetch_add(rows.size(), std::memory_order_relaxed);
        r.stats_.dead_letters.fetch_add(dead.size(), std::memory_order_relaxed);
        r.stats_.batches.fetch_add(1, std::memory_order_relaxed);
        r.stats_.committed_offset.store(next);
        r.stats_.committed_receive_time_ms.store(newest_receive_ms);
        const auto& seq = proc->transforms().sequences().totals();
        r.stats_.sequence_gaps.store(seq.gaps);
        r.stats_.sequence_missing.store(seq.missing);
        r.stats_.duplicates.store(proc->totals().duplicates);
        auto c = r.log_.commit_cursor(r.options_.consumer, r.options_.partition, next);
        if (!c) SLUICE_WARN("pipeline", "cannot commit the bus cursor: %s", c.error().message().c_str());
        rows.clear();
        dead.clear();
        batch_seq_before.clear();
        batch_first = next;
        batch_started_ms = 0;
        return true;
    }

    void drop_batch() {
        r.stats_.fenced.fetch_add(1, std::memory_order_relaxed);
        rewind_batch_sequences();
        rows.clear();
        dead.clear();
        fenced = true;
        batch_started_ms = 0;
    }

    // Rare path: the store refused the batch's data. Re-read it from the bus and write each
    // message alone; a message the store refuses becomes a dead letter with the store's error.
    bool write_one_by_one() {
        auto reader = r.log_.open_reader(r.options_.partition, batch_first);
        if (!reader) {
            SLUICE_ERROR("pipeline", "cannot re-read offsets %llu..%llu: %s",
                         static_cast<unsigned long long>(batch_first), static_cast<unsigned long long>(next),
                         reader.error().message().c_str());
            return false;
        }
        std::vector<bus::record> recs;
        uint64_t at = batch_first;
        while (at < next) {
            recs.clear();
            auto n = (*reader)->poll(recs, std::min<size_t>(1024, next - at), 1000ms);
            if (!n) return false;
            for (const auto& rec : recs) {
                if (rec.offset >= next) break;
                rows.clear();
                dead.clear();
                batch_seq_before.clear();
                if (!process(rec)) return false;
                std::vector<store::offset_update> off{
                    store::offset_update{r.options_.consumer, static_cast<int32_t>(r.options_.partition),
                                         static_cast<int64_t>(rec.offset + 1), true, stored}};
                std::vector<store::sequence_update> seqs;
                for (const auto& [device, before] : batch_seq_before) {
                    seqs.push_back(
                        store::sequence_update{static_cast<int32_t>(device), static_cast<int64_t>(last_seq[device])});
                }
                bool written = false;
                for (;;) {
                    auto w = r.store_.write_batch(rows, dead, off, seqs);
                    if (w) {
                        written = true;
                        break;
                    }
                    if (w.error() == store::errc::stale_offset) break;
                    if (retryable(w.error())) {
                        if (!pause()) return false;
                        continue;
                    }
                    std::vector<store::dead_letter> refused{
                        store::dead_letter{rec.msg.receive_time_ms * 1000, rec.msg.topic, rec.msg.client_id,
                                           rec.msg.payload, "the store refused this message: " + w.error().message()}};
                    auto d = r.store_.write_batch({}, refused, off);
                    if (d) {
                        written = true;
                        break;
                    }
                    if (d.error() == store::errc::stale_offset) break;
                    if (!pause()) return false;
                }
                if (!written) {  // fenced: another writer owns the partition now
                    r.stats_.fenced.fetch_add(1, std::memory_order_relaxed);
                    fenced = true;
                    rows.clear();
                    dead.clear();
                    return true;
                }
                stored = static_cast<int64_t>(rec.offset + 1);
                at = rec.offset + 1;
            }
        }
        rows.clear();
        dead.clear();
        return true;
    }
};

runner::runner(bus::bus& log, store::telemetry_store& store, store::registry& registry, const rule_set& rules,
               runner_options options)
    : log_(log), store_(store), registry_(registry), rules_(rules), options_(std::move(options)) {}

runner::~runner() {
    stop();
}

void runner::start() {
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "sluice-pipeline");
        run();
    });
}

void runner::stop() {
    stopping_.store(true);
    if (thread_.joinable()) thread_.join();
}

void runner::run() {
    impl s(*this);
    if (!s.load_dictionary()) return;
    if (!s.load_sequences()) return;
    if (!s.preload_devices()) return;

    // Resume from the offset committed with the data (exactly once); again after being
    // fenced by another writer of this partition.
    std::unique_ptr<bus::reader> reader;
    auto resume = [&]() -> bool {
        // Retried with backoff until it works or the runner stops: a reader that cannot be
        // opened (a Kafka broker away, a log being repaired) must not end the runner for good.
        for (;;) {
            uint64_t start = 0;
            auto o = store_.load_offset(options_.consumer, static_cast<int32_t>(options_.partition));
            if (!o) {
                SLUICE_WARN("pipeline", "cannot read the stored offset: %s; retrying", o.error().message().c_str());
                if (!s.pause()) return false;
                continue;
            }
            s.stored = o->has_value() ? **o : -1;
            start = o->has_value() ? static_cast<uint64_t>(**o) : log_.get_stats(options_.partition).oldest_offset;
            stats_.database_up.store(true);
            reader.reset();
            auto opened = log_.open_reader(options_.partition, start);
            if (!opened && opened.error() == bus::errc::not_found) {
                uint64_t oldest = log_.get_stats(options_.partition).oldest_offset;
                SLUICE_ERROR("pipeline",
                             "offset %llu is no longer in the bus (retention); continuing at %llu: offsets in "
                             "between are lost",
                             static_cast<unsigned long long>(start), static_cast<unsigned long long>(oldest));
                start = oldest;
                opened = log_.open_reader(options_.partition, start);
            }
            if (!opened) {
                SLUICE_ERROR("pipeline", "cannot read partition %u of the bus at %llu: %s; retrying",
                             options_.partition, static_cast<unsigned long long>(start),
                             opened.error().message().c_str());
                if (!s.pause()) return false;
                continue;
            }
            s.wait.reset();
            reader = std::move(*opened);
            SLUICE_INFO("pipeline", "consumer %s resumes partition %u at offset %llu", options_.consumer.c_str(),
                        options_.partition, static_cast<unsigned long long>(start));
            stats_.committed_offset.store(start);
            s.batch_first = s.next = start;
            s.fenced = false;
            return true;
        }
    };
    if (!resume()) return;

    s.proc = std::make_unique<processor>(
        rules_, s.metrics, [&s](std::string_view key, const topic_match& m) { return s.device_id(key, m); },
        options_.anomalies);
    s.proc->transforms().on_unknown_metric([&s](std::string_view name) { return s.metric(name); });
    s.proc->on_sequence(
        [&s](uint32_t device, uint64_t seq, bool restart) { return s.accept_sequence(device, seq, restart); });

    std::vector<bus::record> recs;
    int64_t last_maintenance = 0;
    int64_t last_reload = steady_ms();
    while (!stopping_.load()) {
        int64_t now = steady_ms();
        if (now - last_reload > 10'000) {
            s.reload_dictionary();
            last_reload = now;
        }
        if (options_.partition == 0 && now - last_maintenance > 60'000) {
            auto m = store_.maintain(std::chrono::system_clock::now());
            if (!m) SLUICE_WARN("pipeline", "store maintenance: %s", m.error().message().c_str());
            last_maintenance = now;
        }
        auto wait = 100ms;
        if (s.batch_started_ms != 0) {
            int64_t left = s.batch_started_ms + options_.max_batch_delay.count() - now;
            wait = std::chrono::milliseconds(std::clamp<int64_t>(left, 0, 100));
        }
        recs.clear();
        auto n = reader->poll(recs, options_.poll_records, wait);
        if (!n) {
            if (n.error() == bus::errc::closed) break;
            SLUICE_ERROR("pipeline", "reading the bus at %llu: %s", static_cast<unsigned long long>(reader->position()),
                         n.error().message().c_str());
            if (!s.pause()) break;
            continue;
        }
        if (!s.register_new_devices(recs)) return;
        if (!s.register_new_metrics(recs)) return;
        for (const auto& rec : recs) {
            if (auto m = rules_.match(rec.msg.topic)) {
                s.current_device.assign(m->device.empty() ? std::string_view(rec.msg.client_id) : m->device);
            }
            if (!s.process(rec)) return;  // stopping: the batch is abandoned, its offset not stored
            s.next = rec.offset + 1;
            s.newest_receive_ms = rec.msg.receive_time_ms;
            stats_.records.fetch_add(1, std::memory_order_relaxed);
        }
        if (s.next != s.batch_first && s.batch_started_ms == 0) s.batch_started_ms = steady_ms();
        bool full = s.rows.size() >= options_.max_batch_rows;
        bool old = s.batch_started_ms != 0 && steady_ms() - s.batch_started_ms >= options_.max_batch_delay.count();
        if ((full || old) && !s.flush()) return;
        if (s.fenced) {
            // Sequence numbers the other writer stored are in the database now.
            s.last_seq.clear();
            if (!s.load_sequences() || !resume()) return;
        }
    }
    s.flush();
}

}  // namespace sluice::pipeline
