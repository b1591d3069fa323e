// SPDX-License-Identifier: Apache-2.0
//
// PostgreSQL verification for sluice-loadgen (see verify_pg.h): one GROUP BY query per
// poll, compared per device with what the publishers had acknowledged.
#include "verify_pg.h"

#include <charconv>
#include <cstdio>
#include <memory>
#include <thread>
#include <unordered_map>

#include <libpq-fe.h>

namespace sluice::loadgen {
namespace {

struct pg_close {
    void operator()(PGconn* c) const { PQfinish(c); }
};
struct res_clear {
    void operator()(PGresult* r) const { PQclear(r); }
};

// device index -> rows stored since `since_us`
result<std::unordered_map<uint32_t, uint64_t>> count_rows(PGconn* conn, const pg_expectation& e) {
    static const char* sql =
        "SELECT d.key, count(*) FROM sluice_telemetry.telemetry t "
        "JOIN sluice_app.devices d ON d.id = t.device_id "
        "WHERE t.time >= to_timestamp($1::float8 / 1000000) AND starts_with(d.key, $2) GROUP BY d.key";
    const std::string since = std::to_string(e.since_us);
    const char* params[2] = {since.c_str(), e.device_prefix.c_str()};
    std::unique_ptr<PGresult, res_clear> r(PQexecParams(conn, sql, 2, nullptr, params, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        std::fprintf(stderr, "loadgen: verify-pg query failed: %s", PQerrorMessage(conn));
        return std::make_error_code(std::errc::io_error);
    }
    std::unordered_map<uint32_t, uint64_t> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        const std::string_view key = PQgetvalue(r.get(), i, 0);
        const std::string_view n = PQgetvalue(r.get(), i, 1);
        if (key.size() <= e.device_prefix.size()) continue;
        const std::string_view idx = key.substr(e.device_prefix.size());
        uint32_t device = 0;
        uint64_t rows = 0;
        const auto a = std::from_chars(idx.data(), idx.data() + idx.size(), device);
        if (a.ec != std::errc{} || a.ptr != idx.data() + idx.size()) continue;  // not one of ours
        (void)std::from_chars(n.data(), n.data() + n.size(), rows);
        out[device] = rows;
    }
    return out;
}

pg_verdict judge(const pg_expectation& e, const std::unordered_map<uint32_t, uint64_t>& got) {
    pg_verdict v;
    for (uint32_t d = 0; d < e.readings_acked.size(); ++d) {
        const uint64_t want = e.readings_acked[d];
        const auto it = got.find(d);
        const uint64_t have = it == got.end() ? 0 : it->second;
        v.expected += want;
        v.stored += have;
        if (have < want) {
            v.missing += want - have;
            ++v.devices_short;
        } else if (have > want) {
            v.extra += have - want;
            ++v.devices_over;
        }
    }
    for (const auto& [d, n] : got) {
        if (d >= e.readings_acked.size()) {
            v.stored += n;
            v.extra += n;
            ++v.devices_over;
        }
    }
    return v;
}

}  // namespace

result<pg_verdict> verify_pg(const std::string& url, const pg_expectation& expect, std::chrono::milliseconds timeout,
                             std::chrono::milliseconds settle) {
    std::unique_ptr<PGconn, pg_close> conn(PQconnectdb(url.c_str()));
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        std::fprintf(stderr, "loadgen: verify-pg cannot connect: %s", PQerrorMessage(conn.get()));
        return std::make_error_code(std::errc::connection_refused);
    }
    const auto start = std::chrono::steady_clock::now();
    auto last_change = start;
    uint64_t last_stored = UINT64_MAX;
    while (true) {
        auto got = count_rows(conn.get(), expect);
        if (!got) return got.error();
        pg_verdict v = judge(expect, *got);
        const auto now = std::chrono::steady_clock::now();
        if (v.stored != last_stored) {
            last_stored = v.stored;
            last_change = now;
        }
        v.waited_s = std::chrono::duration<double>(now - start).count();
        if (v.missing == 0 || now - last_change >= settle || now - start >= timeout) return v;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

}  // namespace sluice::loadgen
