// SPDX-License-Identifier: Apache-2.0
#include "app/metrics.h"

#include <string>

#include "broker/broker.h"
#include "bus/bus.h"
#include "http/metric_names.h"
#include "http/metrics_snapshot.h"

namespace sluice::app {

http::metrics_snapshot collect_metrics(const metric_sources& sources) {
    namespace m = http::metric_names;
    http::metrics_snapshot w;
    if (sources.brk != nullptr) {
        auto t = sources.brk->get_totals();
        auto d = [](uint64_t v) { return static_cast<double>(v); };
        w.gauge(m::mqtt_connections, "Open MQTT connections.", d(t.connections_current));
        w.counter("mqtt_connections_total", "MQTT connections accepted since start.", d(t.connections_total));
        w.gauge(m::mqtt_sessions, "Sessions held (online and offline).", d(t.sessions_current));
        w.gauge(m::mqtt_subscriptions, "Subscriptions held.", d(t.subscriptions));
        w.gauge("mqtt_retained_messages", "Retained messages held.", d(t.retained_messages));
        w.counter(m::mqtt_messages_received, "Application messages received from clients.", d(t.messages_received));
        w.counter(m::mqtt_messages_sent, "Application messages sent to clients.", d(t.messages_sent));
        w.counter("mqtt_bytes_received_total", "MQTT bytes received.", d(t.bytes_received));
        const char* help_dropped = "Messages not delivered to a subscriber, by reason.";
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_qos0_slow_subscriber),
                  {{"reason", "qos0_slow_subscriber"}});
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_qos0_offline), {{"reason", "qos0_offline"}});
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_queue_full), {{"reason", "queue_full"}});
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_subscriber_queue),
                  {{"reason", "subscriber_queue"}});
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_global_quota), {{"reason", "global_quota"}});
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_spool_error), {{"reason", "spool_error"}});
        w.gauge("mqtt_queued_bytes",
                "Bytes of QoS 1/2 messages queued for all sessions (bounded by mqtt.max_queued_bytes_total).",
                d(t.queued_bytes));
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_too_large), {{"reason", "too_large"}});
        w.counter("mqtt_slow_subscriber_disconnects_total",
                  "Online subscribers disconnected (0x97) for passing their queue bound.",
                  d(t.slow_subscriber_disconnects));
        w.counter("mqtt_partial_packet_timeouts_total",
                  "Connections closed because a packet was not complete within mqtt.partial_packet_timeout_ms.",
                  d(t.partial_packet_timeouts));
        w.counter("mqtt_input_budget_closes_total",
                  "Connections closed because unfinished packets passed mqtt.max_partial_input_bytes.",
                  d(t.input_budget_closes));
        w.counter("mqtt_topic_limit_refusals_total",
                  "Topic filters refused (0x8F) and PUBLISHes closed (0x90) past mqtt.max_topic_length/_levels.",
                  d(t.topic_limit_refusals));
        w.counter("mqtt_messages_dropped_total", help_dropped, d(t.dropped_expired), {{"reason", "expired"}});
        w.counter("mqtt_publish_rate_limited_total",
                  "PUBLISHes held (the client's socket not read) by mqtt.max_publish_rate; none is dropped.",
                  d(t.publish_rate_limited));
        w.counter("mqtt_malformed_packets_total", "Connections closed for a malformed packet.", d(t.malformed_packets));
        w.counter("mqtt_protocol_errors_total", "Connections closed for a protocol error.", d(t.protocol_errors));
        w.counter("mqtt_keep_alive_timeouts_total", "Connections closed by keep-alive.", d(t.keep_alive_timeouts));
        w.counter("mqtt_session_takeovers_total", "Connections taken over by the same client id.", d(t.takeovers));
        w.counter("mqtt_sessions_expired_total", "Sessions ended by expiry.", d(t.sessions_expired));
        w.counter("cluster_sessions_resumed_total",
                  "Persistent sessions another broker node held, resumed here (docs/cluster.md).",
                  d(t.sessions_resumed_from_cluster));
        w.counter("cluster_sessions_handed_over_total", "Sessions of this node resumed by another broker node.",
                  d(t.sessions_claimed_elsewhere));
        w.counter("cluster_session_messages_replayed_total",
                  "Messages replayed from Kafka to sessions resumed here from another node.",
                  d(t.messages_replayed_from_cluster));
        w.counter("mqtt_wills_published_total", "Will messages published.", d(t.wills_published));
        w.counter(m::ingest_appended, "Ingest messages made durable in the bus.", d(t.ingest_appended));
        w.counter("ingest_failed_total", "Ingest appends that failed (not acknowledged).", d(t.ingest_failed));
        w.counter(m::ingest_refused, "QoS 1/2 ingest messages refused because the bus was over quota.",
                  d(t.ingest_quota_refused));
        w.counter("ingest_paused_total", "Ingest publishes held with the client's reading paused at the bus quota.",
                  d(t.ingest_paused));
        w.counter("ingest_resends_acknowledged_total",
                  "DUP=1 resends of messages already in the log, acknowledged without logging them again "
                  "(persistent sessions, mqtt.resend_window).",
                  d(t.resends_acknowledged));
    }
    if (sources.log != nullptr) {
        for (uint32_t p = 0; p < sources.log->partitions(); ++p) {
            auto s = sources.log->get_stats(p);
            http::metrics_snapshot::labels l{{"partition", std::to_string(p)}};
            w.gauge("bus_end_offset", "Next offset to be assigned (all below are durable).",
                    static_cast<double>(s.durable_end), l);
            w.gauge("bus_oldest_offset", "Oldest offset still on disk.", static_cast<double>(s.oldest_offset), l);
            w.gauge(m::bus_bytes, "Bytes of log segments on disk.", static_cast<double>(s.bytes_on_disk), l);
            w.counter("bus_fsyncs_total", "fdatasync calls on log segments.", static_cast<double>(s.fsyncs), l);
            w.counter("bus_appends_total", "Records appended.", static_cast<double>(s.appends), l);
            w.gauge("bus_newest_receive_time_seconds", "Receive time of the newest durable record.",
                    static_cast<double>(s.newest_receive_time_ms) / 1000.0, l);
            w.gauge("bus_quarantined_segments", "Segments quarantined as corrupt since start.",
                    static_cast<double>(s.quarantined_segments), l);
        }
        w.gauge(m::bus_over_quota, "1 while the log is at its size quota (ingest back-pressure).",
                sources.log->over_quota() ? 1 : 0);
    }
    for (const auto& extra : sources.extra)
        extra(w);
    return w;
}

}  // namespace sluice::app
