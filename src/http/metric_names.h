// SPDX-License-Identifier: Apache-2.0
//
// Names (without the `sluice_` prefix) of the metrics that code reads back as well as
// writes: the parts in app/ add these families to the metrics snapshot and the
// /api/overview digest (http/overview.cc) reads them, both through these constants, so a
// rename cannot split them. Every name is listed in docs/operations.md.
#pragma once

#include <string_view>

namespace sluice::http::metric_names {

inline constexpr std::string_view mqtt_connections = "mqtt_connections";
inline constexpr std::string_view mqtt_sessions = "mqtt_sessions";
inline constexpr std::string_view mqtt_subscriptions = "mqtt_subscriptions";
inline constexpr std::string_view mqtt_messages_received = "mqtt_messages_received_total";
inline constexpr std::string_view mqtt_messages_sent = "mqtt_messages_sent_total";
inline constexpr std::string_view ingest_appended = "ingest_appended_total";
inline constexpr std::string_view ingest_refused = "ingest_refused_total";
inline constexpr std::string_view bus_bytes = "bus_bytes";
inline constexpr std::string_view bus_over_quota = "bus_over_quota";
inline constexpr std::string_view bus_lag_messages = "bus_lag_messages";
inline constexpr std::string_view bus_lag_seconds = "bus_lag_seconds";
inline constexpr std::string_view pipeline_running = "pipeline_running";
inline constexpr std::string_view pipeline_rows = "pipeline_rows_total";
inline constexpr std::string_view pipeline_dead_letters = "pipeline_dead_letters_total";
inline constexpr std::string_view pipeline_database_up = "pipeline_database_up";
inline constexpr std::string_view pipeline_sequence_gaps = "pipeline_sequence_gaps_total";
inline constexpr std::string_view pipeline_sequence_missing = "pipeline_sequence_missing_total";

}  // namespace sluice::http::metric_names
