// SPDX-License-Identifier: Apache-2.0
#include "http/prometheus.h"

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

TEST(prometheus, one_header_per_family_and_escaped_labels) {
    prometheus_writer w;
    w.counter("messages_total", "Messages.", 3, {{"dir", "in"}});
    w.counter("messages_total", "Messages.", 4.5, {{"dir", "o\"ut"}});
    w.gauge("lag_seconds", "Lag.", 0);
    EXPECT_EQ(w.text(),
              "# HELP sluice_messages_total Messages.\n"
              "# TYPE sluice_messages_total counter\n"
              "sluice_messages_total{dir=\"in\"} 3\n"
              "sluice_messages_total{dir=\"o\\\"ut\"} 4.5\n"
              "# HELP sluice_lag_seconds Lag.\n"
              "# TYPE sluice_lag_seconds gauge\n"
              "sluice_lag_seconds 0\n");
}

}  // namespace
}  // namespace sluice::http
