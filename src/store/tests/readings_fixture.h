// SPDX-License-Identifier: Apache-2.0
//
// The fixture of the readings tests (readings_test.cc, bucket_partials_test.cc): a private
// PostgreSQL 15 with the sluice_readings module, on either layout, Sluice's schema migrated,
// a registry, and a history written through the store; helpers for literals, EXPLAIN and
// result digests.
#ifndef SLUICE_STORE_TESTS_READINGS_FIXTURE_H
#define SLUICE_STORE_TESTS_READINGS_FIXTURE_H

#include <chrono>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "store/packing.h"
#include "store/pg.h"
#include "store/registry.h"
#include "store/store.h"
#include "tests/support/pg_instance.h"

namespace sluice::store {
namespace {

using test::pg_instance;

constexpr int64_t k_minute = 60'000'000;
constexpr int64_t k_day = 24 * k_hour_us;

// A UTC time formatted by strftime's `format` (whole seconds).
inline std::string utc(int64_t unix_us, const char* format) {
    const std::time_t t = static_cast<std::time_t>(unix_us / 1'000'000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[48];
    std::strftime(buf, sizeof buf, format, &tm);
    return buf;
}

// The parts of a statement, concatenated.
inline std::string concat(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (std::string_view p : parts)
        out += p;
    return out;
}

// Timestamps as PostgreSQL literals (UTC).
inline std::string ts(int64_t unix_us) {
    return utc(unix_us, "'%Y-%m-%d %H:%M:%S+00'");
}

// The same instant as a timestamp without time zone (read in the session's TimeZone), a
// date, and as Grafana's macros write it ($__timeFilter, $__timeFrom: RFC 3339, quoted).
inline std::string ts_naive(int64_t unix_us) {
    return utc(unix_us, "'%Y-%m-%d %H:%M:%S'::timestamp");
}
inline std::string date(int64_t unix_us) {
    return utc(unix_us, "'%Y-%m-%d'::date");
}
inline std::string rfc3339(int64_t unix_us) {
    return utc(unix_us, "'%Y-%m-%dT%H:%M:%SZ'");
}

class readings_test : public ::testing::TestWithParam<layout_choice> {
protected:
    bool timescale() const { return GetParam() == layout_choice::timescale; }

    void start(bool readings_module = true) {
        if (timescale() && !test::timescale_installed()) GTEST_SKIP() << test::timescale_skip_reason();
        test::pg_instance_options po;
        po.timescale = timescale();
        po.readings_module = readings_module;
        auto inst = pg_instance::start(po);
        ASSERT_TRUE(inst) << inst.error().message();
        pg_ = std::move(*inst);
        auto db = pg_->create_database("readings");
        ASSERT_TRUE(db);
        url_ = *db;
        store_options o;
        o.telemetry_url = o.app_url = url_;
        o.layout = GetParam();
        auto s = open_postgres(o);
        ASSERT_TRUE(s);
        auto m = (*s)->migrate();
        ASSERT_TRUE(m) << m.error().message();
        ASSERT_EQ((*s)->timescale(), timescale());
        store_ = std::move(*s);
        auto r = open_registry(o);
        ASSERT_TRUE(r);
        registry_ = std::move(*r);
    }

    // 3 devices x 2 metrics, one reading every 30 s over `days` days ending at `end`,
    // written through the store in batches of 6 hours (fragments, like the pipeline's).
    void load(int64_t end, int days) {
        std::vector<int32_t> dev, met;
        for (const char* k : {"press-1", "press-2", "oven-7"})
            dev.push_back(registry_->ensure_device(k, "", "")->id);
        for (const char* n : {"temperature", "pressure"})
            met.push_back(*registry_->ensure_metric(n));
        const int64_t begin = end - days * k_day;
        for (int64_t b = begin; b < end; b += 6 * k_hour_us) {
            std::vector<row> rows;
            for (int64_t t = b; t < std::min(end, b + 6 * k_hour_us); t += 30'000'000) {
                for (size_t d = 0; d < dev.size(); ++d) {
                    for (size_t m = 0; m < met.size(); ++m) {
                        const double v = static_cast<double>((t / 30'000'000) % 1000) + static_cast<double>(d * 10 + m);
                        rows.push_back({t, dev[d], met[m], v, static_cast<int16_t>(t % 7 == 0 ? 1 : 0)});
                    }
                }
            }
            auto w = store_->write_batch(rows, {}, {});
            ASSERT_TRUE(w) << w.error().message();
        }
        begin_ = begin;
        end_ = end;
    }

    std::string scalar(const std::string& sql) {
        auto r = pg_instance::scalar(url_, sql);
        EXPECT_TRUE(r) << sql;
        return r ? *r : std::string();
    }

    // Names of the partitions (native) or chunks (TimescaleDB) that EXPLAIN ANALYZE shows
    // as scanned: pruned ones (at plan time or executor start-up) are not listed. `setup`:
    // statements to run before, in the same session.
    std::set<std::string> scanned(const std::string& query, const std::string& setup = "") {
        return partitions_in("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query, setup);
    }

    // The partitions or chunks left in the plan after planning (plain EXPLAIN): those pruned
    // at executor start-up are still listed by ANALYZE-less EXPLAIN only as a count.
    std::set<std::string> planned(const std::string& query, const std::string& setup = "") {
        return partitions_in("EXPLAIN (COSTS OFF) " + query, setup);
    }

    std::set<std::string> partitions_in(const std::string& explain, const std::string& setup) {
        auto rows = pg_instance::query(url_, setup + explain);
        EXPECT_TRUE(rows) << explain;
        std::set<std::string> out;
        static const std::regex part(R"((telemetry_packed_p[0-9]{8}|_hyper_[0-9]+_[0-9]+_chunk))");
        std::string plan;
        for (const auto& r : rows ? *rows : std::vector<std::vector<std::string>>{}) {
            plan += r[0] + "\n";
            for (std::sregex_iterator it(r[0].begin(), r[0].end(), part), e; it != e; ++it)
                out.insert((*it)[1]);
        }
        last_plan_ = plan;
        return out;
    }

    // Row count and digest of `query`'s rows.
    static std::string rows_of(pg::connection& conn, const std::string& query) {
        const std::string sql =
            "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM (" + query +
            ") t";
        auto r = conn.query(sql.c_str());
        EXPECT_TRUE(r) << query;
        return r ? std::string(r->get(0, 0)) : std::string();
    }

    // Runs every query in `zone` in one session with the module's rewrites and one without;
    // the two must return the same, non-empty rows.
    void expect_same_rows_with_module_on_and_off(const char* zone, const std::vector<std::string>& queries) {
        pg::connection on(url_, std::chrono::seconds(10), "test-on");
        pg::connection off(url_, std::chrono::seconds(10), "test-off");
        const std::string tz = std::string("SET TimeZone = '") + zone + "'";
        ASSERT_TRUE(on.ensure() && on.exec(tz.c_str()));
        ASSERT_TRUE(off.ensure() && off.exec((tz + "; SET sluice_readings.enabled = off").c_str()));
        for (const std::string& q : queries) {
            const std::string with = rows_of(on, q);
            EXPECT_EQ(with, rows_of(off, q)) << zone << ": " << q;
            EXPECT_NE(with.rfind("0 ", 0), 0u) << "no rows, nothing compared: " << zone << ": " << q;
        }
    }

    std::unique_ptr<pg_instance> pg_;
    std::string url_;
    std::unique_ptr<telemetry_store> store_;
    std::unique_ptr<registry> registry_;
    int64_t begin_ = 0, end_ = 0;
    std::string last_plan_;
};

// Midnight UTC `days_back` days before today: data near now, so now()-relative
// predicates (what Grafana and people write) select part of it.
inline int64_t today_midnight() {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    return now - now % k_day;
}

inline std::string layout_test_name(const ::testing::TestParamInfo<layout_choice>& p) {
    return p.param == layout_choice::timescale ? "timescale" : "native";
}

}  // namespace
}  // namespace sluice::store

#endif
