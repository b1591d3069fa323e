// SPDX-License-Identifier: Apache-2.0
#include "app/config.h"

#include <cstdlib>
#include <limits>
#include <sstream>

#include <toml++/toml.h>

#include "app/auth_config.h"
#include "app/listener_config.h"

namespace sluice::app {
namespace {

// Reads an integer key into `out` if present, checking its range.
template <typename T>
bool read_int(const toml::table& t, std::string_view key, T& out, std::string& err, std::string_view section) {
    auto node = t[key];
    if (!node) return true;
    auto v = node.value<int64_t>();
    if (!v || *v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        static_cast<uint64_t>(*v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        err = std::string(section) + "." + std::string(key) + ": expected an integer in range";
        return false;
    }
    out = static_cast<T>(*v);
    return true;
}

bool read_bool(const toml::table& t, std::string_view key, bool& out, std::string& err, std::string_view section) {
    auto node = t[key];
    if (!node) return true;
    auto v = node.value<bool>();
    if (!v) {
        err = std::string(section) + "." + std::string(key) + ": expected true or false";
        return false;
    }
    out = *v;
    return true;
}

bool read_string(const toml::table& t, std::string_view key, std::string& out, std::string& err,
                 std::string_view section) {
    auto node = t[key];
    if (!node) return true;
    auto v = node.value<std::string>();
    if (!v) {
        err = std::string(section) + "." + std::string(key) + ": expected a string";
        return false;
    }
    out = *v;
    return true;
}

}  // namespace

bool parse_cpu_list(const std::string& text, std::vector<int>& out) {
    out.clear();
    std::stringstream ss(text);
    std::string part;
    while (std::getline(ss, part, ',')) {
        if (part.empty()) return false;
        char* end = nullptr;
        long a = std::strtol(part.c_str(), &end, 10);
        long b = a;
        if (*end == '-') b = std::strtol(end + 1, &end, 10);
        if (*end != '\0' || a < 0 || b < a || b > 4095) return false;
        for (long c = a; c <= b; ++c)
            out.push_back(static_cast<int>(c));
    }
    return !out.empty();
}

std::string load_config_file(const std::string& path, config& cfg) {
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        std::ostringstream msg;
        msg << path << ":" << e.source().begin.line << ": " << e.description();
        return msg.str();
    }
    std::string err;
    auto fail = [&] { return path + ": " + err; };

    if (auto* s = root["server"].as_table()) {
        if (!read_string(*s, "bind", cfg.bind_address, err, "server") ||
            !read_int(*s, "mqtt_port", cfg.mqtt_port, err, "server") ||
            !read_int(*s, "http_port", cfg.http_port, err, "server") ||
            !read_int(*s, "threads", cfg.threads, err, "server") ||
            !read_string(*s, "data_dir", cfg.data_dir, err, "server") ||
            !read_string(*s, "log_level", cfg.log_level, err, "server"))
            return fail();
        std::string cpus;
        if (!read_string(*s, "cpu_affinity", cpus, err, "server")) return fail();
        if (!cpus.empty() && !parse_cpu_list(cpus, cfg.cpu_affinity)) {
            err = "server.cpu_affinity: expected a list like \"0,2-3\"";
            return fail();
        }
    }
    if (auto* m = root["mqtt"].as_table()) {
        auto& o = cfg.mqtt;
        if (!read_int(*m, "max_packet_size", o.max_packet_size, err, "mqtt") ||
            !read_int(*m, "receive_maximum", o.receive_maximum, err, "mqtt") ||
            !read_int(*m, "max_inflight_messages", o.max_inflight_messages, err, "mqtt") ||
            !read_int(*m, "max_queued_messages", o.max_queued_messages, err, "mqtt") ||
            !read_int(*m, "max_queued_bytes", o.max_queued_bytes, err, "mqtt") ||
            !read_int(*m, "max_queued_bytes_total", o.max_queued_bytes_total, err, "mqtt") ||
            !read_int(*m, "max_pending_output_bytes", o.max_pending_output_bytes, err, "mqtt") ||
            !read_int(*m, "subscriber_queue_messages", o.subscriber_queue_messages, err, "mqtt") ||
            !read_int(*m, "subscriber_queue_bytes", o.subscriber_queue_bytes, err, "mqtt") ||
            !read_int(*m, "partial_packet_timeout_ms", o.partial_packet_timeout_ms, err, "mqtt") ||
            !read_int(*m, "max_partial_input_bytes", o.max_partial_input_bytes, err, "mqtt") ||
            !read_int(*m, "max_connections", o.max_connections, err, "mqtt") ||
            !read_int(*m, "max_publish_rate", o.max_publish_rate, err, "mqtt") ||
            !read_int(*m, "max_connections_per_address", o.max_connections_per_address, err, "mqtt") ||
            !read_int(*m, "max_connection_rate_per_address", o.max_connection_rate_per_address, err, "mqtt") ||
            !read_int(*m, "max_topic_length", o.max_topic_length, err, "mqtt") ||
            !read_int(*m, "max_topic_levels", o.max_topic_levels, err, "mqtt") ||
            !read_int(*m, "topic_alias_maximum", o.topic_alias_maximum, err, "mqtt") ||
            !read_int(*m, "resend_window", o.resend_window, err, "mqtt") ||
            !read_int(*m, "max_keep_alive", o.max_keep_alive, err, "mqtt") ||
            !read_int(*m, "max_session_expiry", o.max_session_expiry, err, "mqtt") ||
            !read_int(*m, "v3_session_expiry", o.v3_session_expiry, err, "mqtt") ||
            !read_int(*m, "maximum_qos", o.maximum_qos, err, "mqtt") ||
            !read_bool(*m, "retain_available", o.retain_available, err, "mqtt") ||
            !read_bool(*m, "wildcard_subscription_available", o.wildcard_subscription_available, err, "mqtt") ||
            !read_bool(*m, "shared_subscription_available", o.shared_subscription_available, err, "mqtt") ||
            !read_bool(*m, "subscription_identifiers_available", o.subscription_identifiers_available, err, "mqtt") ||
            !read_bool(*m, "allow_zero_length_client_id", o.allow_zero_length_client_id, err, "mqtt"))
            return fail();
        std::string clean_overflow = "drop";
        if (!read_string(*m, "clean_subscriber_overflow", clean_overflow, err, "mqtt")) return fail();
        if (clean_overflow == "drop") {
            o.clean_subscriber_overflow = broker::broker_options::clean_overflow_policy::drop;
        } else if (clean_overflow == "disconnect") {
            o.clean_subscriber_overflow = broker::broker_options::clean_overflow_policy::disconnect;
        } else {
            err = "mqtt.clean_subscriber_overflow: \"drop\" or \"disconnect\"";
            return fail();
        }
        if (o.maximum_qos > 2) {
            err = "mqtt.maximum_qos: 0, 1 or 2";
            return fail();
        }
        if (o.receive_maximum == 0 || o.max_inflight_messages == 0) {
            err = "mqtt.receive_maximum and mqtt.max_inflight_messages must be at least 1";
            return fail();
        }
    }
    if (auto* w = root["wal"].as_table()) {
        auto& o = cfg.wal;
        std::string mode;
        int64_t delay_us = o.group_commit_max_delay.count();
        int64_t retention_s = o.retention.count();
        if (!read_int(*w, "partitions", o.partitions, err, "wal") ||
            !read_int(*w, "segment_bytes", o.segment_bytes, err, "wal") ||
            !read_int(*w, "quota_bytes", o.quota_bytes, err, "wal") ||
            !read_int(*w, "group_commit_max_delay_us", delay_us, err, "wal") ||
            !read_int(*w, "group_commit_max_bytes", o.group_commit_max_bytes, err, "wal") ||
            !read_int(*w, "retention_seconds", retention_s, err, "wal") ||
            !read_string(*w, "durability", mode, err, "wal"))
            return fail();
        o.group_commit_max_delay = std::chrono::microseconds(delay_us);
        o.retention = std::chrono::seconds(retention_s);
        if (!mode.empty()) {
            if (mode == "fsync") {
                o.mode = bus::durability::fsync;
            } else if (mode == "batch-async") {
                o.mode = bus::durability::batch_async;
            } else if (mode == "none") {
                o.mode = bus::durability::none;
            } else {
                err = "wal.durability: one of \"fsync\", \"batch-async\", \"none\"";
                return fail();
            }
        }
        if (o.partitions == 0) {
            err = "wal.partitions: at least 1";
            return fail();
        }
    }
    if (auto* b = root["bus"].as_table()) {
        if (!read_string(*b, "backend", cfg.bus_backend, err, "bus")) return fail();
        if (cfg.bus_backend != "wal" && cfg.bus_backend != "kafka") {
            err = "bus.backend: \"wal\" or \"kafka\"";
            return fail();
        }
    }
    if (auto* k = root["kafka"].as_table()) {
        auto& o = cfg.kafka;
        int64_t delivery_ms = o.delivery_timeout.count();
        int64_t metadata_ms = o.metadata_timeout.count();
        if (!read_string(*k, "brokers", o.brokers, err, "kafka") || !read_string(*k, "topic", o.topic, err, "kafka") ||
            !read_string(*k, "client_id", o.client_id, err, "kafka") ||
            !read_string(*k, "group", cfg.kafka_group, err, "kafka") ||
            !read_bool(*k, "relay", cfg.kafka_relay, err, "kafka") ||
            !read_string(*k, "mqtt_topic", cfg.kafka_mqtt_topic, err, "kafka") ||
            !read_string(*k, "retained_topic", cfg.kafka_retained_topic, err, "kafka") ||
            !read_string(*k, "sessions_topic", cfg.kafka_sessions_topic, err, "kafka") ||
            !read_bool(*k, "shared_across_nodes", cfg.kafka_shared_across_nodes, err, "kafka") ||
            !read_int(*k, "max_in_flight", o.max_in_flight, err, "kafka") ||
            !read_int(*k, "max_in_flight_bytes", o.max_in_flight_bytes, err, "kafka") ||
            !read_int(*k, "delivery_timeout_ms", delivery_ms, err, "kafka") ||
            !read_int(*k, "metadata_timeout_ms", metadata_ms, err, "kafka"))
            return fail();
        o.delivery_timeout = std::chrono::milliseconds(delivery_ms);
        o.metadata_timeout = std::chrono::milliseconds(metadata_ms);
        if (o.topic.empty() || cfg.kafka_group.empty() || o.max_in_flight == 0 || delivery_ms < 1) {
            err = "kafka: topic and group must not be empty, max_in_flight and delivery_timeout_ms at least 1";
            return fail();
        }
        if (auto* props = (*k)["properties"].as_table()) {
            for (auto& [key, value] : *props) {
                if (value.is_boolean()) {
                    o.properties[std::string(key.str())] = *value.value<bool>() ? "true" : "false";
                } else if (auto v = value.value<std::string>()) {
                    o.properties[std::string(key.str())] = *v;
                } else if (value.is_integer()) {
                    o.properties[std::string(key.str())] = std::to_string(*value.value<int64_t>());
                } else {
                    err = "kafka.properties." + std::string(key.str()) + ": expected a string, integer or boolean";
                    return fail();
                }
            }
        }
    }
    if (auto* i = root["ingest"].as_table()) {
        std::string policy;
        if (!read_string(*i, "over_quota", policy, err, "ingest")) return fail();
        if (policy == "pause") {
            cfg.mqtt.ingest_over_quota = broker::broker_options::over_quota_policy::pause;
        } else if (policy == "refuse") {
            cfg.mqtt.ingest_over_quota = broker::broker_options::over_quota_policy::refuse;
        } else if (!policy.empty()) {
            err = "ingest.over_quota: \"pause\" or \"refuse\"";
            return fail();
        }
        // The ingest byte budget (issue 11, broker/ingest_budget.h).
        if (!read_int(*i, "max_inflight_bytes", cfg.mqtt.ingest_max_inflight_bytes, err, "ingest") ||
            !read_int(*i, "max_inflight_bytes_per_connection", cfg.mqtt.ingest_max_inflight_bytes_per_connection, err,
                      "ingest")) {
            return fail();
        }
        if (auto* rules = (*i)["rules"].as_array()) {
            cfg.ingest_rules.clear();
            for (auto& r : *rules) {
                config::ingest_rule rule;
                if (auto v = r.value<std::string>()) {
                    rule.pattern = *v;
                } else if (auto* t = r.as_table()) {
                    auto pattern = (*t)["pattern"].value<std::string>();
                    if (!pattern) {
                        err = "ingest.rules: a table needs pattern = \"...\"";
                        return fail();
                    }
                    rule.pattern = *pattern;
                    rule.format = (*t)["format"].value<std::string>().value_or("auto");
                } else {
                    err = "ingest.rules: expected strings or {pattern = ..., format = ...} tables";
                    return fail();
                }
                if (rule.format != "auto" && rule.format != "json" && rule.format != "binary") {
                    err = "ingest.rules: format must be \"auto\", \"json\" or \"binary\"";
                    return fail();
                }
                cfg.ingest_rules.push_back(std::move(rule));
            }
        }
        std::string unknown;
        if (!read_string(*i, "unknown_devices", unknown, err, "ingest")) return fail();
        if (unknown == "register") {
            cfg.register_unknown_devices = true;
        } else if (unknown == "reject") {
            cfg.register_unknown_devices = false;
        } else if (!unknown.empty()) {
            err = "ingest.unknown_devices: \"register\" or \"reject\"";
            return fail();
        }
    }
    if (auto* p = root["pipeline"].as_table()) {
        if (auto v = (*p)["zscore_threshold"].value<double>()) cfg.zscore_threshold = *v;
        if (!read_int(*p, "zscore_window", cfg.zscore_window, err, "pipeline") ||
            !read_int(*p, "zscore_min_samples", cfg.zscore_min_samples, err, "pipeline") ||
            !read_int(*p, "future_tolerance_ms", cfg.future_tolerance_ms, err, "pipeline") ||
            !read_int(*p, "max_new_metrics_per_device", cfg.max_new_metrics_per_device, err, "pipeline") ||
            !read_int(*p, "new_metrics_interval_s", cfg.new_metrics_interval_s, err, "pipeline"))
            return fail();
        if (cfg.new_metrics_interval_s == 0) {
            err = "pipeline.new_metrics_interval_s must be positive";
            return fail();
        }
        if (cfg.zscore_threshold <= 0 || cfg.zscore_window == 0) {
            err = "pipeline.zscore_threshold and pipeline.zscore_window must be positive";
            return fail();
        }
    }
    if (std::string auth_err = load_auth_section(root, cfg.auth); !auth_err.empty()) {
        err = auth_err;
        return fail();
    }
    if (std::string listener_err = load_listener_section(root, cfg.listeners); !listener_err.empty()) {
        err = listener_err;
        return fail();
    }
    if (auto* st = root["store"].as_table()) {
        if (!read_string(*st, "layout", cfg.store_layout, err, "store") ||
            !read_int(*st, "retention_days", cfg.store_retention_days, err, "store"))
            return fail();
        if (cfg.store_layout != "auto" && cfg.store_layout != "native" && cfg.store_layout != "timescale") {
            err = "store.layout must be \"auto\", \"native\" or \"timescale\"";
            return fail();
        }
    }
    if (auto* d = root["database"].as_table()) {
        std::string url;
        if (!read_string(*d, "url", url, err, "database")) return fail();
        if (!url.empty()) cfg.telemetry_db_url = cfg.app_db_url = url;
        if (!read_string(*d, "telemetry_url", cfg.telemetry_db_url, err, "database") ||
            !read_string(*d, "app_url", cfg.app_db_url, err, "database"))
            return fail();
    }
    return {};
}

}  // namespace sluice::app
