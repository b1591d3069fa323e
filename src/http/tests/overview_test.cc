// SPDX-License-Identifier: Apache-2.0
//
// The /api/overview digest of a metrics snapshot: aggregation over partitions, null for
// an absent family, and that it reads the families the app writes (http/metric_names.h).
#include "http/overview.h"

#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "http/metric_names.h"

namespace sluice::http {
namespace {

namespace m = metric_names;

TEST(api_overview, aggregates_partitions) {
    metrics_snapshot w;
    w.gauge(m::mqtt_connections, "c", 12);
    w.gauge(m::mqtt_sessions, "s", 15);
    w.counter(m::mqtt_messages_received, "r", 1000);
    w.counter(m::mqtt_messages_sent, "s", 250);
    for (int p = 0; p < 3; ++p) {
        metrics_snapshot::labels l{{"partition", std::to_string(p)}};
        w.gauge(m::bus_bytes, "b", 1000.0 * (p + 1), l);
        w.gauge(m::bus_lag_messages, "l", 10.0 * p, l);
        w.gauge(m::bus_lag_seconds, "l", p == 1 ? 4.25 : 0.5, l);
        w.counter(m::pipeline_rows, "r", 300, l);
        w.counter(m::pipeline_dead_letters, "d", p, l);
        w.gauge(m::pipeline_database_up, "u", p == 2 ? 0 : 1, l);
        w.counter(m::pipeline_sequence_gaps, "g", 1, l);
        w.counter(m::pipeline_sequence_missing, "m", 5, l);
    }
    w.gauge(m::bus_over_quota, "q", 0);
    w.gauge(m::pipeline_running, "r", 1);
    std::string json = overview_json(w, 1732212345123);
    EXPECT_EQ(json,
              "{\"time_ms\":1732212345123,\"connections\":12,\"sessions\":15,\"subscriptions\":null,"
              "\"messages_in\":1000,\"messages_out\":250,\"ingest_appended\":null,\"ingest_refused\":null,"
              "\"rows\":900,\"dead_letters\":3,\"lag_messages\":30,\"lag_seconds\":4.25,\"database_up\":false,"
              "\"pipeline_running\":true,\"sequence_gaps\":3,\"sequence_missing\":15,\"bus_bytes\":6000,"
              "\"wal_over_quota\":false}");
}

TEST(api_overview, no_pipeline_means_nulls_and_quota_is_any) {
    metrics_snapshot w;
    w.gauge(m::bus_over_quota, "q", 0, {{"partition", "0"}});
    w.gauge(m::bus_over_quota, "q", 1, {{"partition", "1"}});
    w.gauge(m::mqtt_connections, "c", 0);
    std::string json = overview_json(w, 5);
    EXPECT_NE(json.find("\"connections\":0"), std::string::npos);
    EXPECT_NE(json.find("\"rows\":null"), std::string::npos);
    EXPECT_NE(json.find("\"database_up\":null"), std::string::npos);
    EXPECT_NE(json.find("\"lag_seconds\":null"), std::string::npos);
    EXPECT_NE(json.find("\"wal_over_quota\":true"), std::string::npos);
    EXPECT_EQ(overview_json(metrics_snapshot{}, 0).substr(0, 30), "{\"time_ms\":0,\"connections\":nul");
}

TEST(api_overview, non_finite_values_are_null_and_other_families_ignored) {
    metrics_snapshot w;
    w.gauge(m::bus_lag_seconds, "l", std::numeric_limits<double>::quiet_NaN(), {{"partition", "0"}});
    w.gauge("mqtt_connections_total", "not the gauge", 7);
    std::string json = overview_json(w, 1);
    EXPECT_NE(json.find("\"lag_seconds\":null"), std::string::npos) << json;
    EXPECT_NE(json.find("\"connections\":null"), std::string::npos) << json;
}

}  // namespace
}  // namespace sluice::http
