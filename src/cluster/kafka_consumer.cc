// SPDX-License-Identifier: Apache-2.0
#include "cluster/kafka_consumer.h"

#include <librdkafka/rdkafka.h>

#include "base/log.h"

namespace sluice::cluster {

rd_kafka_t* make_consumer(const kafka_relay_options& o, std::map<std::string, std::string> settings,
                          void (*prepare)(rd_kafka_conf_t*, void*), void* opaque) {
    settings.emplace("bootstrap.servers", o.kafka.brokers);
    // Producer-only settings would make a consumer refuse to start; group settings are ours.
    static const char* const skip[] = {"acks",
                                       "enable.idempotence",
                                       "linger.ms",
                                       "message.timeout.ms",
                                       "batch.num.messages",
                                       "session.timeout.ms",
                                       "heartbeat.interval.ms",
                                       "group.id",
                                       "partition.assignment.strategy",
                                       "enable.auto.commit",
                                       "enable.auto.offset.store",
                                       "auto.offset.reset"};
    for (const auto& [k, v] : o.kafka.properties) {
        bool skipped = false;
        for (const char* s : skip)
            skipped = skipped || k == s;
        if (!skipped) settings.emplace(k, v);
    }
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (const auto& [k, v] : settings) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
            SLUICE_ERROR("cluster", "kafka setting %s: %s", k.c_str(), err);
            rd_kafka_conf_destroy(conf);
            return nullptr;
        }
    }
    if (prepare != nullptr) prepare(conf, opaque);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) {
        SLUICE_ERROR("cluster", "cannot create a consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        return nullptr;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

}  // namespace sluice::cluster
