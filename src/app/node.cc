// SPDX-License-Identifier: Apache-2.0
//
// The parts of a running node and their one start/stop order (plan() below): data dir,
// signals, bus, ingest rules, event loops and broker, session-state journal, access
// control, MQTT listeners with their loop threads, pipeline, HTTP. They stop in reverse,
// on SIGTERM/SIGINT as after a failed start.
#include "app/node.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "app/http_access.h"
#include "app/metrics.h"
#include "app/node_env.h"
#include "app/pipeline_service.h"
#include "app/security.h"
#include "app/steps.h"
#include "auth/authority.h"
#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/persist/state_store.h"
#include "broker/session_spool.h"
#include "bus/kafka/kafka.h"
#include "bus/wal/wal.h"
#include "cluster/kafka_relay.h"
#include "http/api.h"
#include "http/server.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "pipeline/runner.h"
#include "pipeline/topic_rules.h"
#include "store/query.h"

namespace sluice::app {
namespace {

void log_recovery(const std::vector<bus::recovery_event>& recovery) {
    for (const auto& ev : recovery) {
        static const char* const k_actions[] = {"torn tail truncated", "empty segment removed", "segment quarantined",
                                                "offsets missing"};
        SLUICE_WARN("app", "WAL recovery: partition %u, %s: %s (%s, header %s) at byte %llu, offsets %llu..%llu",
                    ev.partition, ev.file.c_str(), k_actions[static_cast<int>(ev.what)],
                    bus::wal::to_string(ev.record_damage), bus::wal::to_string(ev.header),
                    static_cast<unsigned long long>(ev.position), static_cast<unsigned long long>(ev.first_offset),
                    static_cast<unsigned long long>(ev.end_offset));
    }
}

class node {
public:
    node(role r, config cfg, std::string web_root)
        : role_(r),
          cfg_(std::move(cfg)),
          web_root_(web_root.empty() ? default_web_root() : std::move(web_root)),
          kafka_(cfg_.bus_backend == "kafka"),
          run_broker_(r != role::pipeline),
          run_pipeline_(r != role::broker && !cfg_.telemetry_db_url.empty()) {}

    int run() {
        steps parts(plan());
        if (int status = parts.start(); status != 0) return status;
        int sig = wait_for_stop_signal();
        // A pipeline that cannot use the database as configured (store.layout) stops us.
        const bool failed = pipe_ && pipe_->failed();
        if (!failed) SLUICE_INFO("app", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        parts.stop();
        SLUICE_INFO("app", "stopped");
        return failed ? 1 : 0;
    }

private:
    // The one order: each part starts after those it uses and stops before them. HTTP
    // stops first (its handlers read every part); the MQTT side stops accepting and closes
    // clients while the loops still run, then the loops end; then the broker detaches the
    // session journal before it closes; the bus stops last (delivering or failing what is
    // in flight), and the port files go once nothing listens.
    std::vector<step> plan() {
        std::vector<step> list;
        list.push_back(
            {"data dir", [this] { return prepare_data_dir(); }, [this] { remove_port_files(cfg_.data_dir, true); }});
        list.push_back({"signals", [this] { return block_signals(); }, {}});
        list.push_back({"bus", [this] { return open_bus(); }, [this] { log_bus_->stop(); }});
        list.push_back({"ingest rules", [this] { return build_rules(); }, {}});
        if (run_broker_) {
            list.push_back({"broker", [this] { return create_broker(); }, {}});
            list.push_back(
                {"session state", [this] { return open_session_state(); }, [this] { close_session_state(); }});
            if (kafka_)
                list.push_back({"MQTT across nodes", [this] { return start_relay(); }, [this] { stop_relay(); }});
            list.push_back(
                {"access control", [this] { return start_access_control(); }, [this] { stop_access_control(); }});
            list.push_back(
                {"MQTT listeners and event loops", [this] { return start_mqtt(); }, [this] { stop_mqtt(); }});
        }
        list.push_back({"pipeline", [this] { return start_pipeline(); }, [this] { stop_pipeline(); }});
        list.push_back({"HTTP", [this] { return start_http(); }, [this] { web_.stop(); }});
        list.push_back({"port files", [this] { return announce(); }, {}});
        return list;
    }

    int prepare_data_dir() {
        std::error_code ec;
        std::filesystem::create_directories(cfg_.data_dir, ec);
        if (ec) {
            SLUICE_ERROR("app", "cannot create data dir %s: %s", cfg_.data_dir.c_str(), ec.message().c_str());
            return 1;
        }
        remove_port_files(cfg_.data_dir, false);  // stale ones, from a process that did not stop
        return 0;
    }

    // Signals go to the main thread only (wait_for_stop_signal); every thread started later
    // inherits the mask.
    int block_signals() {
        sigemptyset(&signals_);
        sigaddset(&signals_, SIGINT);
        sigaddset(&signals_, SIGTERM);
        sigaddset(&signals_, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
        signal(SIGPIPE, SIG_IGN);
        return 0;
    }

    // The embedded WAL, or Kafka.
    int open_bus() {
        if (kafka_) {
            cfg_.kafka.client_id = std::string("sluice-") + role_name(role_);
            auto k = bus::open_kafka(cfg_.kafka);
            if (!k) {
                SLUICE_ERROR("app", "cannot open the Kafka bus (%s, topic %s): %s", cfg_.kafka.brokers.c_str(),
                             cfg_.kafka.topic.c_str(), k.error().message().c_str());
                return 1;
            }
            log_bus_ = std::move(*k);
            return 0;
        }
        cfg_.wal.dir = cfg_.data_dir + "/wal";
        std::vector<bus::recovery_event> recovery;
        auto wal = bus::open_wal(cfg_.wal, bus::default_fs(), &recovery);
        if (!wal) {
            SLUICE_ERROR("app", "cannot open the write-ahead log in %s: %s", cfg_.wal.dir.c_str(),
                         wal.error().message().c_str());
            return 1;
        }
        log_recovery(recovery);
        log_bus_ = std::move(*wal);
        return 0;
    }

    int build_rules() {
        for (const auto& rule : cfg_.ingest_rules) {
            std::string reason;
            auto format = pipeline::parse_payload_format(rule.format).value_or(pipeline::payload_format::auto_detect);
            if (!rules_.add(rule.pattern, format, reason)) {
                SLUICE_ERROR("app", "ingest rule \"%s\": %s", rule.pattern.c_str(), reason.c_str());
                return 2;
            }
        }
        return 0;
    }

    // Event loops (not running yet) and the broker whose shards they serve.
    int create_broker() {
        threads_ = cfg_.threads != 0 ? cfg_.threads : std::max(1u, std::thread::hardware_concurrency());
        for (unsigned i = 0; i < threads_; ++i) {
            loops_.push_back(std::make_unique<net::event_loop>(i));
            loop_ptrs_.push_back(loops_.back().get());
        }
        broker::ingest_hook ingest;
        ingest.log = log_bus_.get();
        ingest.matches = [this](std::string_view topic) { return rules_.could_match(topic); };
        brk_ = std::make_unique<broker::broker>(
            cfg_.mqtt, threads_,
            [this](unsigned shard, std::function<void()> fn) { loop_ptrs_[shard]->post(std::move(fn)); },
            std::move(ingest));
        return 0;
    }

    // Persistent sessions and retained messages (their own journal, not the telemetry WAL);
    // what persistent sessions queue, in their spool files beside it.
    int open_session_state() {
        auto spool = broker::spool_directory::open(cfg_.data_dir + "/spool");
        if (!spool) {
            SLUICE_ERROR("app", "cannot open the session spool directory %s/spool: %s", cfg_.data_dir.c_str(),
                         spool.error().message().c_str());
            return 1;
        }
        spool_ = std::move(spool).value();
        broker::persist::options state_opts;
        state_opts.before_sync = [spool = spool_.get()] { return spool->sync_written(); };
        auto state = broker::persist::state_store::open(cfg_.data_dir + "/state", std::move(state_opts));
        if (!state) {
            SLUICE_ERROR("app", "cannot open the session state in %s/state: %s", cfg_.data_dir.c_str(),
                         state.error().message().c_str());
            return 1;
        }
        state_store_ = std::move(state).value();
        auto [sessions_restored, retained_restored] = brk_->restore_from(*state_store_, spool_.get());
        if (sessions_restored || retained_restored) {
            SLUICE_INFO("app", "restored %zu persistent sessions and %zu retained messages", sessions_restored,
                        retained_restored);
        }
        return 0;
    }

    void close_session_state() {
        brk_->detach_resend_store();  // appends still completing must not reach a closed store
        if (auto closed = state_store_->close(); !closed)
            SLUICE_ERROR("app", "closing the session state: %s", closed.error().message().c_str());
    }

    // MQTT across the broker nodes, through Kafka (docs/cluster.md): before the listeners, so
    // that every message a client publishes reaches the other nodes.
    // This node's id in the cluster, kept in DATA_DIR/cluster-node-id so that the node knows
    // its own sessions in the sessions topic after a restart. 0 (logged) when it cannot be
    // read or written.
    uint64_t cluster_node_id() {
        const std::string path = cfg_.data_dir + "/cluster-node-id";
        if (FILE* f = std::fopen(path.c_str(), "r")) {
            char text[64] = {};
            const bool read = std::fgets(text, sizeof text, f) != nullptr;
            std::fclose(f);
            char* end = nullptr;
            const unsigned long long id = read ? std::strtoull(text, &end, 16) : 0;
            if (id != 0 && end != text) return id;
            SLUICE_ERROR("app", "%s does not hold a node id (16 hex digits); remove it to get a new one", path.c_str());
            return 0;
        }
        std::random_device rd;
        uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(unix_ms());
        if (id == 0) id = 1;
        FILE* f = std::fopen(path.c_str(), "w");
        if (f == nullptr || std::fprintf(f, "%016llx\n", static_cast<unsigned long long>(id)) < 0 ||
            std::fclose(f) != 0) {
            SLUICE_ERROR("app", "cannot write %s", path.c_str());
            return 0;
        }
        return id;
    }

    int start_relay() {
        if (!cfg_.kafka_relay) {
            SLUICE_INFO("app",
                        "MQTT across nodes is off (kafka.relay = false): subscribers see this node's messages only");
            return 0;
        }
        cluster::kafka_relay_options o;
        o.kafka = cfg_.kafka;
        o.kafka.client_id = std::string("sluice-") + role_name(role_);
        o.messages_topic = cfg_.kafka_mqtt_topic.empty() ? cfg_.kafka.topic + "-mqtt" : cfg_.kafka_mqtt_topic;
        o.retained_topic =
            cfg_.kafka_retained_topic.empty() ? cfg_.kafka.topic + "-retained" : cfg_.kafka_retained_topic;
        o.sessions_topic =
            cfg_.kafka_sessions_topic.empty() ? cfg_.kafka.topic + "-sessions" : cfg_.kafka_sessions_topic;
        o.shared_groups_across_nodes = cfg_.kafka_shared_across_nodes;
        o.node_id = cluster_node_id();
        if (o.node_id == 0) return 1;
        auto r = cluster::kafka_relay::start(*brk_, o);
        if (!r) {
            SLUICE_ERROR("app",
                         "MQTT across nodes needs the Kafka topics %s, %s and %s (docs/cluster.md says how to "
                         "create them; kafka.relay = false runs without): %s",
                         o.messages_topic.c_str(), o.retained_topic.c_str(), o.sessions_topic.c_str(),
                         r.error().message().c_str());
            return 1;
        }
        relay_ = std::move(r).value();
        brk_->set_relay(relay_.get());
        return 0;
    }

    void stop_relay() {
        if (relay_) relay_->stop();
    }

    // Before the listeners, so that no client is ever served without it.
    int start_access_control() {
        std::string err;
        authority_ = make_authority(cfg_.auth, cfg_.bind_address, err);
        if (!err.empty()) {
            SLUICE_ERROR("app", "access control: %s", err.c_str());
            return 1;
        }
        brk_->set_authority(authority_.get());
        if (!authority_) {
            SLUICE_WARN("app",
                        "anonymous access on %s: every client may connect and do everything (loopback quick "
                        "start; see docs/security.md)",
                        cfg_.bind_address.c_str());
        }
        return 0;
    }

    void stop_access_control() {
        if (authority_) authority_->stop();
    }

    // The listeners, then the loop threads: tcp_server::start() sets up the loops, which
    // must not run yet, and tcp_server::stop() needs them running.
    int start_mqtt() {
        server_ = std::make_unique<net::tcp_server>(*brk_, loop_ptrs_);
        net::listener_options plain;
        plain.bind_address = cfg_.bind_address;
        plain.port = cfg_.mqtt_port;
        auto port = server_->listen(plain);
        if (!port) {
            SLUICE_ERROR("app", "cannot listen on %s:%u: %s", cfg_.bind_address.c_str(), cfg_.mqtt_port,
                         port.error().message().c_str());
            return 1;
        }
        mqtt_port_ = *port;
        if (std::string err = open_extra_listeners(*server_, cfg_.listeners, cfg_.bind_address, cfg_.data_dir, tls_);
            !err.empty()) {
            SLUICE_ERROR("app", "%s", err.c_str());
            return 1;
        }
        server_->start();
        for (unsigned i = 0; i < threads_; ++i)
            workers_.emplace_back([this, i] { run_loop(i); });
        return 0;
    }

    void run_loop(unsigned i) {
        char name[16];
        std::snprintf(name, sizeof name, "sluice-loop-%u", i);
        pthread_setname_np(pthread_self(), name);
        if (!cfg_.cpu_affinity.empty()) {
            const int cpu = cfg_.cpu_affinity[i % cfg_.cpu_affinity.size()];
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(static_cast<size_t>(cpu), &set);
            if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
                SLUICE_WARN("app", "cannot pin loop %u to CPU %d", i, cpu);
        }
        loops_[i]->run();
    }

    // Stop accepting and close the clients (MQTT 5 ones get DISCONNECT 0x8B), then the loops.
    void stop_mqtt() {
        server_->stop();
        for (auto& l : loops_)
            l->stop();
        for (auto& t : workers_)
            t.join();
    }

    // The pipeline into PostgreSQL (waits for the database in the background).
    int start_pipeline() {
        if (!run_pipeline_) {
            if (role_ == role::serve) {
                SLUICE_WARN("app", "no database configured (--db): ingest data is kept in the %s only",
                            kafka_ ? "Kafka topic" : "WAL");
            }
            return 0;
        }
        store::store_options so;
        so.telemetry_url = cfg_.telemetry_db_url;
        so.app_url = cfg_.app_db_url.empty() ? cfg_.telemetry_db_url : cfg_.app_db_url;
        store::parse_layout(cfg_.store_layout, so.layout);  // validated when read
        so.retention = std::chrono::hours(24 * static_cast<int64_t>(cfg_.store_retention_days));
        pipeline::runner_options ro;
        ro.auto_register_devices = cfg_.register_unknown_devices;
        ro.anomalies.zscore_threshold = cfg_.zscore_threshold;
        ro.anomalies.window = cfg_.zscore_window;
        ro.anomalies.min_samples = cfg_.zscore_min_samples;
        ro.anomalies.future_tolerance_ms = cfg_.future_tolerance_ms;
        ro.max_new_metrics_per_device = cfg_.max_new_metrics_per_device;
        ro.new_metrics_interval = std::chrono::seconds(cfg_.new_metrics_interval_s);
        ro.consumer = offsets_consumer();
        pipe_ = std::make_unique<pipeline_service>(*log_bus_, rules_, so, ro, group_name(),
                                                   kafka_ ? cfg_.kafka.topic : std::string());
        pipe_->start();
        return 0;
    }

    // The pipeline's name in sluice_offsets. Offsets in the database belong to the topic
    // (not the group): renaming the group repeats nothing, and WAL offsets are never
    // mistaken for Kafka's.
    std::string offsets_consumer() const {
        return kafka_ ? "kafka:" + cfg_.kafka.topic : pipeline::runner_options{}.consumer;
    }
    std::string group_name() const { return kafka_ ? cfg_.kafka_group : offsets_consumer(); }

    // GET /api/cluster: the group as the bus describes it. With the WAL there is no group
    // beyond this process, whose pipeline (once running) owns every partition.
    result<http::cluster_view> describe_cluster() {
        http::cluster_view v;
        v.bus = kafka_ ? "kafka" : "wal";
        if (kafka_) v.topic = cfg_.kafka.topic;
        v.group = group_name();
        v.consumer = offsets_consumer();
        auto d = log_bus_->describe_group(v.group);
        if (!d) return d.error();
        v.group_state = std::move(*d);
        if (!kafka_ && pipe_ && pipe_->running()) {
            bus::bus::group_member self;
            char host[256] = {};
            gethostname(host, sizeof host - 1);
            self.host = host;
            self.member_id = self.host + ":" + std::to_string(http_port_);
            self.client_id = std::string("sluice-") + role_name(role_);
            for (uint32_t p = 0; p < log_bus_->partitions(); ++p)
                self.partitions.push_back(p);
            v.group_state.source = "local";
            v.group_state.members.push_back(std::move(self));
        }
        return v;
    }

    // Leaves the consumer group; runners stop after their current batch.
    void stop_pipeline() {
        if (pipe_) pipe_->stop();
    }

    // Health, metrics, the API and the dashboard.
    int start_http() {
        sources_.brk = brk_.get();
        sources_.log = log_bus_.get();
        if (pipe_) sources_.extra.push_back([this](http::metrics_snapshot& w) { pipe_->write_metrics(w); });
        if (authority_)
            sources_.extra.push_back([this](http::metrics_snapshot& w) { write_auth_metrics(*authority_, w); });
        if (tls_) sources_.extra.push_back([this](http::metrics_snapshot& w) { write_tls_metrics(*tls_, w); });
        if (relay_) {
            sources_.extra.push_back([this](http::metrics_snapshot& w) {
                const auto s = relay_->get_stats();
                const char* help = "MQTT messages relayed between the broker nodes through Kafka (docs/cluster.md)";
                w.counter("cluster_relay_messages_total", help, static_cast<double>(s.forwarded),
                          {{"direction", "out"}});
                w.counter("cluster_relay_messages_total", help, static_cast<double>(s.received), {{"direction", "in"}});
                w.counter("cluster_relay_failures_total",
                          "Messages of this node's clients Kafka did not take (their publishers got no success ack)",
                          static_cast<double>(s.forward_failures));
                w.gauge("cluster_relay_retained_loaded", "Retained messages read from the retained topic at start",
                        static_cast<double>(s.retained_loaded));
                w.counter("cluster_shared_messages_total",
                          "Messages of shared subscriptions ($share) this node took from their Kafka consumer groups",
                          static_cast<double>(s.shared_routed));
                w.gauge("cluster_shared_groups", "Shared subscription groups with members on this node",
                        static_cast<double>(s.shared_groups));
                w.gauge("cluster_sessions_known", "Persistent sessions in the sessions topic (every node's)",
                        static_cast<double>(s.sessions_known));
                w.gauge("cluster_sessions_held", "Persistent sessions this node holds in the sessions topic",
                        static_cast<double>(s.sessions_held));
                w.gauge("cluster_shared_partitions",
                        "Partitions of the messages topic this node holds for its shared groups, summed",
                        static_cast<double>(s.shared_partitions));
            });
        }
        if (server_) {
            sources_.extra.push_back(
                [this](http::metrics_snapshot& w) { write_connection_limit_metrics(*server_, w); });
        }
        access_ = std::make_unique<http_access>(
            http_access_options{cfg_.auth.api_token, cfg_.auth.http_login, cfg_.listeners.http_tls}, authority_.get());
        access_->install(web_);
        if (access_->enabled()) {
            sources_.extra.push_back([this](http::metrics_snapshot& w) { access_->write_metrics(w); });
        } else if (!anonymous_allowed(auth_settings{}, cfg_.bind_address)) {
            SLUICE_WARN("app",
                        "HTTP API and metrics are open to anyone who reaches %s:%u: set auth.api_token or "
                        "auth.http_login (docs/security.md)",
                        cfg_.bind_address.c_str(), cfg_.http_port);
        }
        if (cfg_.listeners.http_tls) {
            std::string err;
            https_ = http_tls_config(cfg_.listeners, err);
            if (!https_) {
                SLUICE_ERROR("app", "%s", err.c_str());
                return 1;
            }
            web_.set_tls(https_);
        }
        web_.route("GET", "/health", [](const http::request&) {
            return http::response{200, "application/json", "{\"status\":\"ok\"}\n", {}};
        });
        web_.route("GET", "/metrics", [this](const http::request&) {
            return http::response{
                200, "text/plain; version=0.0.4; charset=utf-8", collect_metrics(sources_).prometheus_text(), {}};
        });
        http::api_config api;
        if (!cfg_.telemetry_db_url.empty()) api.query = store::open_postgres_query({cfg_.telemetry_db_url});
        api.metrics = [this] { return collect_metrics(sources_); };
        api.cluster = [this] { return describe_cluster(); };
        api.web_root = web_root_;
        http::register_api(web_, std::move(api));
        auto port = web_.start(cfg_.bind_address, cfg_.http_port);
        if (!port) {
            SLUICE_ERROR("app", "cannot listen for HTTP on %s:%u: %s", cfg_.bind_address.c_str(), cfg_.http_port,
                         port.error().message().c_str());
            return 1;
        }
        http_port_ = *port;
        return 0;
    }

    // Everything accepts: tell the tools (stderr lines, DATA_DIR/http.port and mqtt.port).
    int announce() {
        std::fprintf(stderr, "%s listening on %s:%u\n", https_ ? "https" : "http", cfg_.bind_address.c_str(),
                     http_port_);
        write_file_atomically(cfg_.data_dir + "/http.port", std::to_string(http_port_));
        if (!run_broker_) {
            SLUICE_INFO("app", "sluice pipeline: consumer group %s on Kafka topic %s, HTTP on %s:%u",
                        cfg_.kafka_group.c_str(), cfg_.kafka.topic.c_str(), cfg_.bind_address.c_str(), http_port_);
            return 0;
        }
        std::fprintf(stderr, "mqtt listening on %s:%u\n", cfg_.bind_address.c_str(), mqtt_port_);
        if (!write_file_atomically(cfg_.data_dir + "/mqtt.port", std::to_string(mqtt_port_)))
            SLUICE_WARN("app", "cannot write %s/mqtt.port", cfg_.data_dir.c_str());
        SLUICE_INFO("app", "sluice %s: MQTT on %s:%u with %u event loops, %s bus, data in %s", role_name(role_),
                    cfg_.bind_address.c_str(), mqtt_port_, threads_, kafka_ ? "Kafka" : "WAL", cfg_.data_dir.c_str());
        return 0;
    }

    // Returns SIGTERM or SIGINT; each SIGHUP before reloads without dropping connections
    // (on error the old rules and certificates stay).
    int wait_for_stop_signal() {
        int sig = 0;
        for (;;) {
            sigwait(&signals_, &sig);
            if (sig != SIGHUP) return sig;
            reload();
        }
    }

    void reload() {
        if (authority_) {
            log_reload(authority_->reload(), "password and ACL files reloaded",
                       "reload failed, keeping the previous rules");
        }
        if (https_) log_reload(https_->reload(), nullptr, "HTTPS reload failed, keeping the previous certificate");
        if (tls_) {
            log_reload(tls_->reload(), "TLS certificate reloaded (for new connections)",
                       "TLS reload failed, keeping the previous certificate");
        }
    }

    // `done` is logged on success unless null; `failed` with the error otherwise.
    static void log_reload(const std::string& err, const char* done, const char* failed) {
        if (!err.empty()) {
            SLUICE_ERROR("app", "SIGHUP: %s: %s", failed, err.c_str());
        } else if (done != nullptr) {
            SLUICE_INFO("app", "SIGHUP: %s", done);
        }
    }

    const role role_;
    config cfg_;
    const std::string web_root_;
    const bool kafka_;
    const bool run_broker_;
    const bool run_pipeline_;
    sigset_t signals_{};
    unsigned threads_ = 0;  // event loops; none in `sluice pipeline`
    // Destroyed in reverse, after every part has stopped.
    std::unique_ptr<bus::bus> log_bus_;
    std::vector<std::unique_ptr<net::event_loop>> loops_;
    std::vector<net::event_loop*> loop_ptrs_;
    pipeline::rule_set rules_;
    std::unique_ptr<auth::authority> authority_;
    std::unique_ptr<broker::broker> brk_;
    std::unique_ptr<cluster::kafka_relay> relay_;     // set as brk_'s relay; stopped after the loops
    std::unique_ptr<broker::spool_directory> spool_;  // outlives the state store, whose writer syncs it
    std::unique_ptr<broker::persist::state_store> state_store_;
    std::unique_ptr<net::tcp_server> server_;
    std::shared_ptr<net::tls_config> tls_;
    uint16_t mqtt_port_ = 0;
    std::vector<std::thread> workers_;
    std::unique_ptr<pipeline_service> pipe_;
    http::server web_;
    metric_sources sources_;
    std::unique_ptr<http_access> access_;
    std::shared_ptr<net::tls_config> https_;
    uint16_t http_port_ = 0;
};

}  // namespace

int run_node(role r, config cfg, const std::string& web_root) {
    log::level lvl = log::level::info;
    log::parse_level(cfg.log_level.c_str(), lvl);  // checked with the command line
    log::set_level(lvl);
    raise_open_files_limit();
    return node(r, std::move(cfg), web_root).run();
}

}  // namespace sluice::app
