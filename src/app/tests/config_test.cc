// SPDX-License-Identifier: Apache-2.0
#include "app/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace sluice::app {
namespace {

std::string write_temp(const std::string& text) {
    char path[] = "/tmp/sluice-config-test-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << text;
    return path;
}

TEST(config, kafka_bus_settings_and_pass_through_properties) {
    config cfg;
    std::string path = write_temp(
        "[bus]\nbackend = \"kafka\"\n[kafka]\nbrokers = \"k1:9092,k2:9092\"\ntopic = \"tele\"\ngroup = \"g1\"\n"
        "max_in_flight = 1000\ndelivery_timeout_ms = 5000\n"
        "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"PLAIN\"\n"
        "\"socket.keepalive.enable\" = true\n\"reconnect.backoff.ms\" = 50\n");
    ASSERT_EQ(load_config_file(path, cfg), "");
    std::remove(path.c_str());
    EXPECT_EQ(cfg.bus_backend, "kafka");
    EXPECT_EQ(cfg.kafka.brokers, "k1:9092,k2:9092");
    EXPECT_EQ(cfg.kafka.topic, "tele");
    EXPECT_EQ(cfg.kafka_group, "g1");
    EXPECT_EQ(cfg.kafka.max_in_flight, 1000u);
    EXPECT_EQ(cfg.kafka.delivery_timeout.count(), 5000);
    EXPECT_EQ(cfg.kafka.properties.at("security.protocol"), "SASL_SSL");
    EXPECT_EQ(cfg.kafka.properties.at("sasl.mechanism"), "PLAIN");
    EXPECT_EQ(cfg.kafka.properties.at("socket.keepalive.enable"), "true");
    EXPECT_EQ(cfg.kafka.properties.at("reconnect.backoff.ms"), "50");

    config bad;
    path = write_temp("[bus]\nbackend = \"zookeeper\"\n");
    EXPECT_NE(load_config_file(path, bad).find("bus.backend"), std::string::npos);
    std::remove(path.c_str());
    path = write_temp("[kafka.properties]\n\"x\" = [1]\n");
    EXPECT_NE(load_config_file(path, bad).find("kafka.properties.x"), std::string::npos);
    std::remove(path.c_str());
}

// The shipped config documents every key with its default: loading it must change nothing.
TEST(config, shipped_file_matches_the_built_in_defaults) {
    config defaults;
    config loaded;
    std::string err = load_config_file("config/sluice.toml", loaded);
    ASSERT_EQ(err, "");
    EXPECT_EQ(loaded.bind_address, defaults.bind_address);
    EXPECT_EQ(loaded.mqtt_port, defaults.mqtt_port);
    EXPECT_EQ(loaded.http_port, defaults.http_port);
    EXPECT_EQ(loaded.threads, defaults.threads);
    EXPECT_EQ(loaded.data_dir, defaults.data_dir);
    EXPECT_EQ(loaded.bus_backend, defaults.bus_backend);
    EXPECT_EQ(loaded.kafka.brokers, defaults.kafka.brokers);
    EXPECT_EQ(loaded.kafka.topic, defaults.kafka.topic);
    EXPECT_EQ(loaded.kafka_group, defaults.kafka_group);
    EXPECT_EQ(loaded.kafka.max_in_flight, defaults.kafka.max_in_flight);
    EXPECT_EQ(loaded.kafka.max_in_flight_bytes, defaults.kafka.max_in_flight_bytes);
    EXPECT_EQ(loaded.kafka.delivery_timeout, defaults.kafka.delivery_timeout);
    EXPECT_EQ(loaded.kafka.properties, defaults.kafka.properties);
    EXPECT_EQ(loaded.mqtt.max_packet_size, defaults.mqtt.max_packet_size);
    EXPECT_EQ(loaded.mqtt.receive_maximum, defaults.mqtt.receive_maximum);
    EXPECT_EQ(loaded.mqtt.max_inflight_messages, defaults.mqtt.max_inflight_messages);
    EXPECT_EQ(loaded.mqtt.max_queued_messages, defaults.mqtt.max_queued_messages);
    EXPECT_EQ(loaded.mqtt.max_queued_bytes, defaults.mqtt.max_queued_bytes);
    EXPECT_EQ(loaded.mqtt.max_pending_output_bytes, defaults.mqtt.max_pending_output_bytes);
    EXPECT_EQ(loaded.mqtt.subscriber_queue_messages, defaults.mqtt.subscriber_queue_messages);
    EXPECT_EQ(loaded.mqtt.subscriber_queue_bytes, defaults.mqtt.subscriber_queue_bytes);
    EXPECT_EQ(loaded.mqtt.clean_subscriber_overflow, defaults.mqtt.clean_subscriber_overflow);
    EXPECT_EQ(loaded.mqtt.partial_packet_timeout_ms, defaults.mqtt.partial_packet_timeout_ms);
    EXPECT_EQ(loaded.mqtt.max_partial_input_bytes, defaults.mqtt.max_partial_input_bytes);
    EXPECT_EQ(loaded.mqtt.max_topic_length, defaults.mqtt.max_topic_length);
    EXPECT_EQ(loaded.mqtt.max_topic_levels, defaults.mqtt.max_topic_levels);
    EXPECT_EQ(loaded.mqtt.topic_alias_maximum, defaults.mqtt.topic_alias_maximum);
    EXPECT_EQ(loaded.mqtt.resend_window, defaults.mqtt.resend_window);
    EXPECT_EQ(loaded.mqtt.max_session_expiry, defaults.mqtt.max_session_expiry);
    EXPECT_EQ(loaded.mqtt.v3_session_expiry, defaults.mqtt.v3_session_expiry);
    EXPECT_EQ(loaded.mqtt.max_queued_bytes_total, defaults.mqtt.max_queued_bytes_total);
    EXPECT_EQ(loaded.mqtt.ingest_over_quota, defaults.mqtt.ingest_over_quota);
    EXPECT_EQ(loaded.mqtt.ingest_max_inflight_bytes, defaults.mqtt.ingest_max_inflight_bytes);
    EXPECT_EQ(loaded.mqtt.ingest_max_inflight_bytes_per_connection,
              defaults.mqtt.ingest_max_inflight_bytes_per_connection);
    EXPECT_EQ(loaded.wal.mode, defaults.wal.mode);
    EXPECT_EQ(loaded.wal.group_commit_max_delay, defaults.wal.group_commit_max_delay);
    EXPECT_EQ(loaded.wal.group_commit_max_bytes, defaults.wal.group_commit_max_bytes);
    EXPECT_EQ(loaded.wal.segment_bytes, defaults.wal.segment_bytes);
    EXPECT_EQ(loaded.wal.quota_bytes, defaults.wal.quota_bytes);
    EXPECT_EQ(loaded.wal.partitions, defaults.wal.partitions);
    ASSERT_EQ(loaded.ingest_rules.size(), 1u);
    EXPECT_EQ(loaded.ingest_rules[0].pattern, "devices/{device}/telemetry");
    EXPECT_EQ(loaded.ingest_rules[0].format, "auto");
    EXPECT_EQ(loaded.register_unknown_devices, defaults.register_unknown_devices);
    EXPECT_EQ(loaded.zscore_threshold, defaults.zscore_threshold);
    EXPECT_EQ(loaded.zscore_window, defaults.zscore_window);
    EXPECT_EQ(loaded.future_tolerance_ms, defaults.future_tolerance_ms);
    EXPECT_EQ(loaded.max_new_metrics_per_device, defaults.max_new_metrics_per_device);
    EXPECT_EQ(loaded.new_metrics_interval_s, defaults.new_metrics_interval_s);
    EXPECT_EQ(loaded.telemetry_db_url, "");
    EXPECT_EQ(loaded.auth.password_file, defaults.auth.password_file);
    EXPECT_EQ(loaded.auth.acl_file, defaults.auth.acl_file);
    EXPECT_EQ(loaded.auth.allow_anonymous, defaults.auth.allow_anonymous);
    EXPECT_EQ(loaded.auth.client_id_pattern, defaults.auth.client_id_pattern);
    EXPECT_EQ(loaded.auth.max_failures_per_minute, defaults.auth.max_failures_per_minute);
    EXPECT_EQ(loaded.auth.api_token, defaults.auth.api_token);
    EXPECT_EQ(loaded.store_layout, defaults.store_layout);
    EXPECT_EQ(loaded.store_layout, "auto");
    EXPECT_EQ(loaded.store_retention_days, defaults.store_retention_days);
}

// Issue 12: the [auth] section, its errors, and the anonymous-access default.
TEST(config, auth_section_and_anonymous_default) {
    config c;
    auto path = write_temp(
        "[auth]\npassword_file = \"/etc/p\"\nacl_file = \"/etc/a\"\nallow_anonymous = true\n"
        "client_id_pattern = \"%u-*\"\nmax_failures_per_minute = 3\n");
    ASSERT_EQ(load_config_file(path, c), "");
    EXPECT_EQ(c.auth.password_file, "/etc/p");
    EXPECT_EQ(c.auth.acl_file, "/etc/a");
    EXPECT_EQ(c.auth.allow_anonymous, std::optional<bool>(true));
    EXPECT_EQ(c.auth.client_id_pattern, "%u-*");
    EXPECT_EQ(c.auth.max_failures_per_minute, 3u);
    config bad;
    EXPECT_NE(load_config_file(write_temp("[auth]\nallow_anonymous = \"yes\"\n"), bad), "");
    EXPECT_NE(load_config_file(write_temp("[auth]\nmax_failures_per_minute = -1\n"), bad), "");

    auth_settings s;
    EXPECT_TRUE(anonymous_allowed(s, "127.0.0.1"));
    EXPECT_TRUE(anonymous_allowed(s, "::1"));
    EXPECT_FALSE(anonymous_allowed(s, "0.0.0.0"));
    EXPECT_FALSE(anonymous_allowed(s, "192.168.1.10"));
    s.password_file = "p";
    EXPECT_FALSE(anonymous_allowed(s, "127.0.0.1"));
    s.allow_anonymous = true;
    EXPECT_TRUE(anonymous_allowed(s, "0.0.0.0"));
}

TEST(config, values_and_rule_tables) {
    auto path = write_temp(R"(
[server]
mqtt_port = 0
cpu_affinity = "0,2-3"
[mqtt]
maximum_qos = 1
clean_subscriber_overflow = "disconnect"
[wal]
durability = "batch-async"
group_commit_max_delay_us = 250
[ingest]
rules = ["a/{device}", {pattern = "f/{site}/{device}/raw", format = "binary"}]
unknown_devices = "reject"
over_quota = "refuse"
max_inflight_bytes = 1048576
max_inflight_bytes_per_connection = 65536
[pipeline]
max_new_metrics_per_device = 50
new_metrics_interval_s = 5
[database]
url = "postgresql://x/y"
app_url = "postgresql://x/app"
[store]
layout = "timescale"
retention_days = 90
)");
    config c;
    ASSERT_EQ(load_config_file(path, c), "");
    EXPECT_EQ(c.mqtt_port, 0);
    EXPECT_EQ(c.cpu_affinity, (std::vector<int>{0, 2, 3}));
    EXPECT_EQ(c.mqtt.maximum_qos, 1);
    EXPECT_EQ(c.mqtt.clean_subscriber_overflow, broker::broker_options::clean_overflow_policy::disconnect);
    EXPECT_EQ(c.wal.mode, bus::durability::batch_async);
    EXPECT_EQ(c.wal.group_commit_max_delay.count(), 250);
    ASSERT_EQ(c.ingest_rules.size(), 2u);
    EXPECT_EQ(c.ingest_rules[1].pattern, "f/{site}/{device}/raw");
    EXPECT_EQ(c.ingest_rules[1].format, "binary");
    EXPECT_FALSE(c.register_unknown_devices);
    EXPECT_EQ(c.mqtt.ingest_over_quota, broker::broker_options::over_quota_policy::refuse);
    EXPECT_EQ(c.mqtt.ingest_max_inflight_bytes, 1048576u);
    EXPECT_EQ(c.mqtt.ingest_max_inflight_bytes_per_connection, 65536u);
    EXPECT_EQ(c.max_new_metrics_per_device, 50u);
    EXPECT_EQ(c.new_metrics_interval_s, 5u);
    EXPECT_EQ(c.telemetry_db_url, "postgresql://x/y");
    EXPECT_EQ(c.app_db_url, "postgresql://x/app");
    EXPECT_EQ(c.store_layout, "timescale");
    EXPECT_EQ(c.store_retention_days, 90);
    std::remove(path.c_str());
}

TEST(config, errors_name_the_key) {
    struct bad {
        const char* text;
        const char* expect;
    } cases[] = {
        {"[server]\nmqtt_port = 70000\n", "server.mqtt_port"},
        {"[mqtt]\nmaximum_qos = 3\n", "mqtt.maximum_qos"},
        {"[mqtt]\nclean_subscriber_overflow = \"block\"\n", "mqtt.clean_subscriber_overflow"},
        {"[wal]\ndurability = \"sometimes\"\n", "wal.durability"},
        {"[ingest]\nrules = [{pattern = \"a/{device}\", format = \"xml\"}]\n", "ingest.rules"},
        {"[ingest]\nunknown_devices = \"maybe\"\n", "ingest.unknown_devices"},
        {"[server]\ncpu_affinity = \"3-1\"\n", "server.cpu_affinity"},
        {"[store]\nlayout = \"columnar\"\n", "store.layout"},
        {"[store]\nretention_days = -1\n", "store.retention_days"},
        {"[server\n", ":1"},
    };
    for (const auto& b : cases) {
        auto path = write_temp(b.text);
        config c;
        std::string err = load_config_file(path, c);
        EXPECT_NE(err.find(b.expect), std::string::npos) << b.text << " -> " << err;
        std::remove(path.c_str());
    }
}

}  // namespace
}  // namespace sluice::app
