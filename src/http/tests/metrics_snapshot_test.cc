// SPDX-License-Identifier: Apache-2.0
#include "http/metrics_snapshot.h"

#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

TEST(prometheus, one_header_per_family_and_escaped_labels) {
    metrics_snapshot w;
    w.counter("messages_total", "Messages.", 3, {{"dir", "in"}});
    w.counter("messages_total", "Messages.", 4.5, {{"dir", "o\"ut"}});
    w.gauge("lag_seconds", "Lag.", 0);
    EXPECT_EQ(w.prometheus_text(),
              "# HELP sluice_messages_total Messages.\n"
              "# TYPE sluice_messages_total counter\n"
              "sluice_messages_total{dir=\"in\"} 3\n"
              "sluice_messages_total{dir=\"o\\\"ut\"} 4.5\n"
              "# HELP sluice_lag_seconds Lag.\n"
              "# TYPE sluice_lag_seconds gauge\n"
              "sluice_lag_seconds 0\n");
}

// /metrics keeps the order samples were added in, also when a family's samples are not
// adjacent (mqtt_messages_dropped_total is written that way), with one header per family.
TEST(prometheus, samples_keep_their_order_and_values) {
    metrics_snapshot w;
    w.counter("dropped_total", "Dropped.", 1, {{"reason", "a"}});
    w.gauge("queued_bytes", "Queued.", 1e15);
    w.counter("dropped_total", "Ignored: the first help wins.", 2, {{"reason", "b\n"}});
    w.gauge("nan", "N.", std::numeric_limits<double>::quiet_NaN());
    EXPECT_EQ(w.prometheus_text(),
              "# HELP sluice_dropped_total Dropped.\n"
              "# TYPE sluice_dropped_total counter\n"
              "sluice_dropped_total{reason=\"a\"} 1\n"
              "# HELP sluice_queued_bytes Queued.\n"
              "# TYPE sluice_queued_bytes gauge\n"
              "sluice_queued_bytes 1e+15\n"
              "sluice_dropped_total{reason=\"b\\n\"} 2\n"
              "# HELP sluice_nan N.\n"
              "# TYPE sluice_nan gauge\n"
              "sluice_nan NaN\n");
    EXPECT_EQ(w.values("dropped_total"), (std::vector<double>{1, 2}));
    EXPECT_EQ(w.values("queued_bytes"), (std::vector<double>{1e15}));
    EXPECT_TRUE(w.values("absent").empty());
}

}  // namespace
}  // namespace sluice::http
