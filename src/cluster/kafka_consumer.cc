// SPDX-License-Identifier: Apache-2.0
#include "cluster/kafka_consumer.h"

#include <librdkafka/rdkafka.h>

#include "base/log.h"
#include "bus/errc.h"

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

// Assigns every partition of `topic`, each at `offset` or, for RD_KAFKA_OFFSET_END, at its
// high watermark now (so nothing produced after this call is missed).
result<void> assign_all(rd_kafka_t* rk, const std::string& topic, uint32_t partitions, int64_t offset,
                        std::vector<int64_t>* ends) {
    if (ends != nullptr) ends->clear();
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions));
    for (uint32_t p = 0; p < partitions; ++p) {
        int64_t at = offset;
        if (offset == RD_KAFKA_OFFSET_END) {
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t e =
                rd_kafka_query_watermark_offsets(rk, topic.c_str(), static_cast<int32_t>(p), &lo, &hi, 10000);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
                SLUICE_ERROR("cluster", "end of %s/%u: %s", topic.c_str(), p, rd_kafka_err2str(e));
                rd_kafka_topic_partition_list_destroy(list);
                return make_error_code(bus::errc::io_error);
            }
            at = hi;
        }
        if (ends != nullptr) ends->push_back(at);
        rd_kafka_topic_partition_list_add(list, topic.c_str(), static_cast<int32_t>(p))->offset = at;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        SLUICE_ERROR("cluster", "cannot assign %s: %s", topic.c_str(), rd_kafka_err2str(e));
        return make_error_code(bus::errc::io_error);
    }
    return ok();
}

uint32_t read_to_end(rd_kafka_t* rk, uint32_t partitions, std::chrono::milliseconds timeout,
                     const std::function<void(std::string key, std::string_view value)>& fn) {
    uint32_t at_end = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (at_end < partitions && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (m == nullptr) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            ++at_end;
        } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key != nullptr) {
            fn(std::string(static_cast<const char*>(m->key), m->key_len),
               std::string_view(static_cast<const char*>(m->payload), m->len));
        }
        rd_kafka_message_destroy(m);
    }
    return at_end;
}

std::optional<relayed_record> poll_relayed(rd_kafka_t* rk, const std::string& topic, const char* what,
                                           const std::function<void(int32_t, int64_t)>& read) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) return std::nullopt;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            SLUICE_DEBUG("cluster", "%s of %s: %s", what, topic.c_str(), rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return std::nullopt;
    }
    if (read) read(m->partition, m->offset);
    relayed_record out;
    out.partition = m->partition;
    out.offset = m->offset;
    auto r = decode_relayed(std::string_view(static_cast<const char*>(m->payload), m->len));
    rd_kafka_message_destroy(m);
    if (!r) {
        SLUICE_WARN("cluster", "ignoring an undecodable record in %s", topic.c_str());
        return std::nullopt;
    }
    out.relayed = std::move(r).value();
    return out;
}

}  // namespace sluice::cluster
