// SPDX-License-Identifier: Apache-2.0
//
// Loads a generated sensor history into a fresh Sluice telemetry database through the
// store's own writer (telemetry_store::write_batch, then maintain()), for the query
// benchmark (bench/macro/query_history/run). Each batch holds one whole 10-minute window of
// every series, so every (device, metric, window) is one packed row: what compaction
// leaves of a live stream. Devices and metrics are registered through the registry, which
// also fills the telemetry database's name dictionary.
//
// Usage: query_history_load URL native|timescale DEVICES HOURS END_EPOCH_S
// Series: DEVICES devices (dev-0001..) x 4 metrics (temperature, humidity, pressure,
// vibration), 1 Hz with 0-19 ms jitter, over the HOURS before END (a multiple of 10 min).
// Values: a slow sine per series plus Gaussian noise, rounded to the sensor's resolution.
// Deterministic: the same arguments give the same readings.
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "store/registry.h"
#include "store/store.h"

namespace sluice::store {
namespace {

constexpr int64_t k_second_us = 1'000'000;
constexpr int64_t k_window_s = 600;
constexpr int k_writers = 2;  // write_batch calls at once (store_options::parallel_connections)

// mean + amplitude * sin(2 pi t / period + phase) + N(0, noise), rounded to 1/steps (as a
// sensor's decimal reading parses: the nearest double).
struct sensor {
    const char* name;
    double mean, amplitude, period_s, noise, steps;
};
constexpr std::array<sensor, 4> k_sensors{{
    {"temperature", 21.0, 4.0, 86'400.0, 0.05, 100.0},
    {"humidity", 45.0, 10.0, 86'400.0, 0.3, 10.0},
    {"pressure", 1013.0, 3.0, 259'200.0, 0.05, 10.0},
    {"vibration", 2.0, 0.5, 900.0, 0.2, 1000.0},
}};

int fail(const char* what, const std::error_code& ec) {
    std::fprintf(stderr, "query_history_load: %s: %s\n", what, ec.message().c_str());
    return 1;
}

// A whole decimal number in [1, max], else 0.
int64_t positive(const char* text, int64_t max) {
    int64_t v = 0;
    const std::string_view sv(text);
    const auto [end, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), v);
    return ec == std::errc() && end == sv.data() + sv.size() && v >= 1 && v <= max ? v : 0;
}

// One series' generator state; seeded by its index so values do not depend on batching.
struct series_state {
    int32_t device_id;
    int32_t metric_id;
    const sensor* kind;
    double phase;
    std::mt19937_64 rng;
};

// The rows of window `w` (seconds [start + w * 600, start + (w + 1) * 600)) of every series.
std::vector<row> window_rows(std::vector<series_state>& series, int64_t start_s, int64_t w) {
    std::vector<row> rows;
    rows.reserve(series.size() * k_window_s);
    std::uniform_int_distribution<int64_t> jitter_ms(0, 19);
    for (series_state& s : series) {
        std::normal_distribution<double> noise(0.0, s.kind->noise);
        for (int64_t k = 0; k < k_window_s; ++k) {
            const int64_t t = start_s + w * k_window_s + k;
            const double wave = std::sin(2.0 * std::numbers::pi * static_cast<double>(t) / s.kind->period_s + s.phase);
            const double v = s.kind->mean + s.kind->amplitude * wave + noise(s.rng);
            const double rounded = std::round(v * s.kind->steps) / s.kind->steps;
            rows.push_back({t * k_second_us + jitter_ms(s.rng) * 1000, s.device_id, s.metric_id, rounded, 0});
        }
    }
    return rows;
}

int run(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: query_history_load URL native|timescale DEVICES HOURS END_EPOCH_S\n");
        return 2;
    }
    store_options options;
    options.telemetry_url = argv[1];
    options.app_url = argv[1];
    options.parallel_connections = k_writers;
    if (!parse_layout(argv[2], options.layout)) {
        std::fprintf(stderr, "query_history_load: layout must be native or timescale\n");
        return 2;
    }
    const auto devices = static_cast<int>(positive(argv[3], 9999));
    const int64_t hours = positive(argv[4], int64_t{24} * 366);
    const int64_t end_s = positive(argv[5], int64_t{1} << 40);
    if (devices == 0 || hours == 0 || end_s == 0 || end_s % k_window_s != 0) {
        std::fprintf(stderr, "query_history_load: DEVICES (1-9999), HOURS > 0, END a multiple of 600\n");
        return 2;
    }
    const int64_t start_s = end_s - hours * 3600;

    auto store = open_postgres(options);
    if (!store) return fail("open", store.error());
    if (auto r = (*store)->migrate(); !r) return fail("migrate", r.error());
    auto reg = open_registry(options);
    if (!reg) return fail("registry", reg.error());
    std::vector<registry::device_request> requests;
    requests.reserve(static_cast<size_t>(devices));
    for (int d = 1; d <= devices; ++d) {
        char key[32];
        std::snprintf(key, sizeof key, "dev-%04d", d);
        requests.push_back(
            {key, "site-" + std::to_string((d - 1) / 50 + 1), "line-" + std::to_string((d - 1) % 5 + 1)});
    }
    auto devs = (*reg)->ensure_devices(requests);
    if (!devs) return fail("ensure_devices", devs.error());
    std::vector<std::string> metric_names;
    metric_names.reserve(k_sensors.size());
    for (const sensor& s : k_sensors)
        metric_names.emplace_back(s.name);
    auto metrics = (*reg)->ensure_metrics(metric_names);
    if (!metrics) return fail("ensure_metrics", metrics.error());
    // ensure_metrics does not fill metric_names; load_metrics (the pipeline's start-up and
    // periodic reload) does.
    if (auto r = (*reg)->load_metrics(); !r) return fail("load_metrics", r.error());

    std::map<std::string, int32_t> metric_id;  // ensure_metrics returns them in any order
    for (const auto& [name, id] : *metrics)
        metric_id[name] = id;
    // Writer i writes windows i, i + k_writers, ... as bus partition i, in offset order.
    std::array<std::vector<series_state>, k_writers> series;
    for (auto& per_writer : series) {
        uint64_t seed = 0;
        for (const device& d : *devs) {
            for (size_t m = 0; m < k_sensors.size(); ++m, ++seed) {
                const double phase = static_cast<double>(seed % 97) * 0.065;
                per_writer.push_back(
                    {d.id, metric_id.at(k_sensors[m].name), &k_sensors[m], phase, std::mt19937_64(seed)});
            }
        }
    }
    const int64_t windows = hours * 3600 / k_window_s;
    std::atomic<int64_t> written{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::array<std::error_code, k_writers> errors;
    std::vector<std::thread> writers;
    writers.reserve(k_writers);
    for (int i = 0; i < k_writers; ++i) {
        writers.emplace_back([&, i] {
            for (int64_t w = i; w < windows; w += k_writers) {
                const std::vector<row> rows = window_rows(series[static_cast<size_t>(i)], start_s, w);
                const offset_update off{"query_history", i, w + 1};
                if (auto r = (*store)->write_batch(rows, {}, {&off, 1}); !r) {
                    errors[static_cast<size_t>(i)] = r.error();
                    return;
                }
                written += static_cast<int64_t>(rows.size());
            }
        });
    }
    for (auto& t : writers)
        t.join();
    for (const std::error_code& ec : errors) {
        if (ec) return fail("write_batch", ec);
    }
    const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (auto r = (*store)->maintain(std::chrono::system_clock::now()); !r) return fail("maintain", r.error());
    std::printf("%lld readings in %.1f s (%.0f readings/s) through write_batch\n",
                static_cast<long long>(written.load()), write_s, static_cast<double>(written.load()) / write_s);
    return 0;
}

}  // namespace
}  // namespace sluice::store

// Nothing may escape main (an allocation failure would).
int main(int argc, char** argv) try { return sluice::store::run(argc, argv); } catch (const std::exception& e) {
    std::fprintf(stderr, "query_history_load: %s\n", e.what());
    return 1;
}
