// SPDX-License-Identifier: Apache-2.0
//
// The `sluice` command. `sluice serve` wires the parts in start-up order (data dir,
// bus, broker, listeners, event loops, pipeline, HTTP) and tears them down in reverse on
// SIGTERM or SIGINT. `sluice broker` and `sluice pipeline` are the two halves of serve for
// a cluster on Kafka (docs/cluster.md). `sluice wal dump DIR` runs the offline WAL reader.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/config.h"
#include "app/http_access.h"
#include "app/metrics.h"
#include "app/pipeline_service.h"
#include "app/security.h"
#include "auth/authority.h"
#include "base/errno_text.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/persist/state_store.h"
#include "bus/kafka/kafka.h"
#include "bus/wal/wal.h"
#include "http/api.h"
#include "http/server.h"
#include "mqtt/topic.h"
#include "net/event_loop.h"
#include "net/tcp_server.h"
#include "pipeline/topic_rules.h"
#include "store/query.h"

namespace sluice::app {
namespace {

constexpr const char* k_usage = R"(usage:
  sluice serve [options]        run the broker and pipeline
  sluice broker [options]       MQTT only: produce ingest to Kafka (--bus kafka)
  sluice pipeline [options]     consume Kafka in a consumer group, write to PostgreSQL (--bus kafka)
  sluice wal dump DIR [args]    print a WAL directory (see sluice-wal-dump --help)
  sluice passwd [-c|-D] [-b] FILE USER [PASSWORD]
                                manage a password file (mosquitto_passwd's format and verbs)
  sluice --version

options (each overrides the config file; broker and pipeline take those that apply):
  --config FILE          TOML configuration (see config/sluice.toml)
  --mqtt-port N          MQTT TCP port (default 1883; 0 = pick one, written to DATA_DIR/mqtt.port)
  --bind ADDR            address to listen on (default 0.0.0.0)
  --http-port N          HTTP port for metrics, API and dashboard (default 8080; 0 = pick one)
  --data-dir DIR         where the WAL and state live (default var/data)
  --threads N            event loops (default: one per core)
  --cpu-affinity LIST    pin event-loop threads to these CPUs, e.g. 0,2-3
  --db URL               PostgreSQL URL for both telemetry and application data
  --telemetry-db URL     PostgreSQL URL for telemetry only
  --app-db URL           PostgreSQL URL for application data only
  --store-layout L       auto (TimescaleDB when it can load, else native partitions), native, timescale
  --bus wal|kafka        the bus between broker and pipeline (default wal)
  --kafka-brokers LIST   Kafka bootstrap servers HOST:PORT,...
  --kafka-topic NAME     Kafka topic of the ingest records (default sluice-telemetry)
  --kafka-group NAME     consumer group of the pipeline workers (default sluice-pipeline)
  --log-level LEVEL      debug, info, warn, error
  --web-root DIR         dashboard files (default: <exe dir>/../../web, else ./web)

access control (docs/security.md; SIGHUP reloads the files):
  --password-file FILE   users and $7$ password hashes (mosquitto_passwd / sluice passwd)
  --acl-file FILE        mosquitto acl_file: topic/user/pattern lines
  --allow-anonymous B    true|false; default true only with --bind 127.0.0.1 and no password file
  --client-id-pattern P  client id a user must use: %u = username, * = anything (e.g. %u-*)
  --api-token TOKEN      HTTP /api/* and /metrics need "Authorization: Bearer TOKEN" (/health never)
  --http-login           password-file users may log in to the dashboard and API (form, or Basic)

more listeners (each port written to DATA_DIR/NAME.port; SIGHUP reloads the certificate):
  --mqtts-port N         MQTT over TLS (8883 is usual)
  --ws-port N            MQTT over WebSocket, subprotocol "mqtt" (any path)
  --wss-port N           MQTT over WebSocket over TLS
  --tls-cert FILE        PEM certificate chain of the TLS listeners
  --tls-key FILE         its PEM private key
  --tls-ca FILE          CA for client certificates; a verified certificate's CN is the username
  --require-certificate  refuse TLS clients without a certificate signed by --tls-ca
  --tls-ciphers LIST     TLS 1.2 ciphers (OpenSSL syntax); --tls-ciphersuites for TLS 1.3
  --tls-min-version V    1.2 (default) or 1.3
  --http-tls             the HTTP port (API, dashboard, metrics) speaks HTTPS with --tls-cert
)";

bool parse_port(const char* text, uint16_t& out) {
    char* end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (*end != '\0' || v < 0 || v > 65535) return false;
    out = static_cast<uint16_t>(v);
    return true;
}

// Writes `text` to `path` atomically (temp file + rename), so readers never see half.
bool write_file_atomically(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        if (!f) return false;
        f << text << '\n';
        if (!f.flush()) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

void raise_open_files_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

// The dashboard's files: --web-root, else the repository's web/ next to a build tree
// (<repo>/build*/bin/sluice), else ./web.
std::string default_web_root() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto candidate = exe.parent_path() / ".." / ".." / "web";
        if (std::filesystem::exists(candidate / "index.html", ec)) {
            return std::filesystem::weakly_canonical(candidate, ec).string();
        }
    }
    return "web";
}

enum class role { serve, broker, pipeline };

// A flag given without its value (thrown by the parser, answered with exit status 2).
struct missing_value {
    std::string flag;
};

int serve(role node, int argc, char** argv) {
    const char* role_name = node == role::serve ? "serve" : node == role::broker ? "broker" : "pipeline";
    config cfg;
    std::string web_root;
    // First pass: the config file, so that flags override it whatever their order.
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            std::string err = load_config_file(argv[i + 1], cfg);
            if (!err.empty()) {
                std::fprintf(stderr, "sluice: %s\n", err.c_str());
                return 2;
            }
        }
    }
    for (int i = 0; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) throw missing_value{arg};
            return argv[++i];
        };
        bool mqtt_only = arg == "--mqtt-port" || arg == "--threads" || arg == "--cpu-affinity";
        if (node == role::pipeline && mqtt_only) {
            std::fprintf(stderr, "sluice pipeline: %s does not apply (no MQTT listener)\n", arg.c_str());
            return 2;
        }
        if (int r = parse_auth_flag(argc, argv, i, cfg.auth); r != 0) {
            if (r < 0) return 2;
        } else if (int l = parse_listener_flag(argc, argv, i, cfg.listeners); l != 0) {
            if (l < 0) return 2;
            bool mqtt_listener = arg == "--mqtts-port" || arg == "--ws-port" || arg == "--wss-port" ||
                                 arg == "--tls-ca" || arg == "--require-certificate";
            if (node == role::pipeline && mqtt_listener) {
                std::fprintf(stderr, "sluice pipeline: %s does not apply (no MQTT listener)\n", arg.c_str());
                return 2;
            }
        } else if (arg == "--config") {
            ++i;
        } else if (arg == "--bus") {
            cfg.bus_backend = value();
            if (cfg.bus_backend != "wal" && cfg.bus_backend != "kafka") {
                std::fprintf(stderr, "sluice: --bus: wal or kafka\n");
                return 2;
            }
        } else if (arg == "--kafka-brokers") {
            cfg.kafka.brokers = value();
        } else if (arg == "--kafka-topic") {
            cfg.kafka.topic = value();
        } else if (arg == "--kafka-group") {
            cfg.kafka_group = value();
        } else if (arg == "--mqtt-port") {
            if (!parse_port(value(), cfg.mqtt_port)) {
                std::fprintf(stderr, "sluice: --mqtt-port: expected 0..65535\n");
                return 2;
            }
        } else if (arg == "--http-port") {
            if (!parse_port(value(), cfg.http_port)) {
                std::fprintf(stderr, "sluice: --http-port: expected 0..65535\n");
                return 2;
            }
        } else if (arg == "--bind") {
            cfg.bind_address = value();
        } else if (arg == "--data-dir") {
            cfg.data_dir = value();
        } else if (arg == "--threads") {
            char* end = nullptr;
            const char* text = value();
            long n = std::strtol(text, &end, 10);
            if (end == text || *end != '\0' || n < 1 || n > 1024) {
                std::fprintf(stderr, "sluice: --threads: expected 1..1024\n");
                return 2;
            }
            cfg.threads = static_cast<unsigned>(n);
        } else if (arg == "--cpu-affinity") {
            if (!parse_cpu_list(value(), cfg.cpu_affinity)) {
                std::fprintf(stderr, "sluice: --cpu-affinity: expected a list like 0,2-3\n");
                return 2;
            }
        } else if (arg == "--db") {
            cfg.telemetry_db_url = cfg.app_db_url = value();
        } else if (arg == "--telemetry-db") {
            cfg.telemetry_db_url = value();
        } else if (arg == "--app-db") {
            cfg.app_db_url = value();
        } else if (arg == "--store-layout") {
            cfg.store_layout = value();
            store::layout_choice unused;
            if (!store::parse_layout(cfg.store_layout, unused)) {
                std::fprintf(stderr, "sluice: --store-layout: expected auto, native or timescale\n");
                return 2;
            }
        } else if (arg == "--log-level") {
            cfg.log_level = value();
        } else if (arg == "--web-root") {
            web_root = value();
        } else if (arg == "-h" || arg == "--help") {
            std::fputs(k_usage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "sluice: unknown option %s\n%s", arg.c_str(), k_usage);
            return 2;
        }
    }
    log::level lvl;
    if (!log::parse_level(cfg.log_level.c_str(), lvl)) {
        std::fprintf(stderr, "sluice: unknown log level %s\n", cfg.log_level.c_str());
        return 2;
    }
    log::set_level(lvl);
    raise_open_files_limit();
    const bool kafka = cfg.bus_backend == "kafka";
    if (node != role::serve && !kafka) {
        std::fprintf(stderr, "sluice %s: needs --bus kafka (with the WAL, run sluice serve)\n", role_name);
        return 2;
    }
    if (kafka && cfg.kafka.brokers.empty()) {
        std::fprintf(stderr, "sluice %s: --bus kafka needs --kafka-brokers\n", role_name);
        return 2;
    }
    if (node == role::pipeline && cfg.telemetry_db_url.empty()) {
        std::fprintf(stderr, "sluice pipeline: needs --db\n");
        return 2;
    }
    const bool run_broker = node != role::pipeline;
    const bool run_pipeline = node != role::broker && !cfg.telemetry_db_url.empty();

    std::error_code ec;
    std::filesystem::create_directories(cfg.data_dir, ec);
    if (ec) {
        SLUICE_ERROR("app", "cannot create data dir %s: %s", cfg.data_dir.c_str(), ec.message().c_str());
        return 1;
    }
    for (const char* name : {"mqtt", "mqtts", "ws", "wss"})
        std::filesystem::remove(cfg.data_dir + "/" + name + ".port", ec);

    // Signals go to the main thread only (sigwait below); loop threads inherit the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    // 1. The bus: the embedded WAL, or Kafka.
    std::unique_ptr<bus::bus> log_bus;
    if (kafka) {
        cfg.kafka.client_id = std::string("sluice-") + role_name;
        auto k = bus::open_kafka(cfg.kafka);
        if (!k) {
            SLUICE_ERROR("app", "cannot open the Kafka bus (%s, topic %s): %s", cfg.kafka.brokers.c_str(),
                         cfg.kafka.topic.c_str(), k.error().message().c_str());
            return 1;
        }
        log_bus = std::move(*k);
    } else {
        cfg.wal.dir = cfg.data_dir + "/wal";
        std::vector<bus::recovery_event> recovery;
        auto wal = bus::open_wal(cfg.wal, bus::default_fs(), &recovery);
        if (!wal) {
            SLUICE_ERROR("app", "cannot open the write-ahead log in %s: %s", cfg.wal.dir.c_str(),
                         wal.error().message().c_str());
            return 1;
        }
        for (const auto& ev : recovery) {
            static const char* const k_actions[] = {"torn tail truncated", "empty segment removed",
                                                    "segment quarantined", "offsets missing"};
            SLUICE_WARN("app", "WAL recovery: partition %u, %s: %s (%s, header %s) at byte %llu, offsets %llu..%llu",
                        ev.partition, ev.file.c_str(), k_actions[static_cast<int>(ev.what)],
                        bus::wal::to_string(ev.record_damage), bus::wal::to_string(ev.header),
                        static_cast<unsigned long long>(ev.position), static_cast<unsigned long long>(ev.first_offset),
                        static_cast<unsigned long long>(ev.end_offset));
        }
        log_bus = std::move(*wal);
    }

    // 2. Event loops and the broker (not in `sluice pipeline`).
    unsigned threads = cfg.threads != 0 ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
    if (!run_broker) threads = 0;
    std::vector<std::unique_ptr<net::event_loop>> loops;
    std::vector<net::event_loop*> loop_ptrs;
    for (unsigned i = 0; i < threads; ++i) {
        loops.push_back(std::make_unique<net::event_loop>(i));
        loop_ptrs.push_back(loops.back().get());
    }
    pipeline::rule_set rules;
    for (const auto& rule : cfg.ingest_rules) {
        std::string reason;
        auto format = pipeline::parse_payload_format(rule.format).value_or(pipeline::payload_format::auto_detect);
        auto added = rules.add(rule.pattern, format, reason);
        if (!added) {
            SLUICE_ERROR("app", "ingest rule \"%s\": %s", rule.pattern.c_str(), reason.c_str());
            return 2;
        }
    }
    std::unique_ptr<auth::authority> authority;
    std::unique_ptr<broker::broker> brk;
    std::unique_ptr<broker::persist::state_store> state_store;
    std::unique_ptr<net::tcp_server> server;
    std::shared_ptr<net::tls_config> tls;
    uint16_t mqtt_port = 0;
    if (run_broker) {
        broker::ingest_hook ingest;
        ingest.log = log_bus.get();
        ingest.matches = [&rules](std::string_view topic) { return rules.could_match(topic); };
        brk = std::make_unique<broker::broker>(
            cfg.mqtt, threads,
            [&loop_ptrs](unsigned shard, std::function<void()> fn) { loop_ptrs[shard]->post(std::move(fn)); },
            std::move(ingest));

        // Persistent sessions and retained messages (their own journal, not the telemetry WAL).
        auto state = broker::persist::state_store::open(cfg.data_dir + "/state");
        if (!state) {
            SLUICE_ERROR("app", "cannot open the session state in %s/state: %s", cfg.data_dir.c_str(),
                         state.error().message().c_str());
            return 1;
        }
        state_store = std::move(state).value();
        auto [sessions_restored, retained_restored] = brk->restore_from(*state_store);
        if (sessions_restored || retained_restored) {
            SLUICE_INFO("app", "restored %zu persistent sessions and %zu retained messages", sessions_restored,
                        retained_restored);
        }

        // Access control: before the listeners, so no client is ever served without it.
        std::string auth_err;
        authority = make_authority(cfg.auth, cfg.bind_address, auth_err);
        if (!auth_err.empty()) {
            SLUICE_ERROR("app", "access control: %s", auth_err.c_str());
            return 1;
        }
        brk->set_authority(authority.get());
        if (!authority) {
            SLUICE_WARN("app",
                        "anonymous access on %s: every client may connect and do everything (loopback quick "
                        "start; see docs/security.md)",
                        cfg.bind_address.c_str());
        }

        // 3. Listeners.
        server = std::make_unique<net::tcp_server>(*brk, loop_ptrs);
        net::listener_options plain;
        plain.bind_address = cfg.bind_address;
        plain.port = cfg.mqtt_port;
        auto port = server->listen(plain);
        if (!port) {
            SLUICE_ERROR("app", "cannot listen on %s:%u: %s", cfg.bind_address.c_str(), cfg.mqtt_port,
                         port.error().message().c_str());
            return 1;
        }
        mqtt_port = *port;
        if (std::string err = open_extra_listeners(*server, cfg.listeners, cfg.bind_address, cfg.data_dir, tls);
            !err.empty()) {
            SLUICE_ERROR("app", "%s", err.c_str());
            return 1;
        }
        server->start();
    }

    // 4. Loop threads.
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < threads; ++i) {
        workers.emplace_back([&, i] {
            char name[16];
            std::snprintf(name, sizeof name, "sluice-loop-%u", i);
            pthread_setname_np(pthread_self(), name);
            if (!cfg.cpu_affinity.empty()) {
                cpu_set_t set;
                CPU_ZERO(&set);
                CPU_SET(static_cast<size_t>(cfg.cpu_affinity[i % cfg.cpu_affinity.size()]), &set);
                if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
                    SLUICE_WARN("app", "cannot pin loop %u to CPU %d", i,
                                cfg.cpu_affinity[i % cfg.cpu_affinity.size()]);
                }
            }
            loops[i]->run();
        });
    }

    // 5. The pipeline into PostgreSQL (waits for the database in the background).
    std::unique_ptr<pipeline_service> pipe;
    if (run_pipeline) {
        store::store_options so;
        so.telemetry_url = cfg.telemetry_db_url;
        so.app_url = cfg.app_db_url.empty() ? cfg.telemetry_db_url : cfg.app_db_url;
        store::parse_layout(cfg.store_layout, so.layout);  // validated when read
        so.retention = std::chrono::hours(24 * static_cast<int64_t>(cfg.store_retention_days));
        pipeline::runner_options ro;
        ro.auto_register_devices = cfg.register_unknown_devices;
        ro.anomalies.zscore_threshold = cfg.zscore_threshold;
        ro.anomalies.window = cfg.zscore_window;
        ro.anomalies.min_samples = cfg.zscore_min_samples;
        ro.anomalies.future_tolerance_ms = cfg.future_tolerance_ms;
        ro.max_new_metrics_per_device = cfg.max_new_metrics_per_device;
        ro.new_metrics_interval = std::chrono::seconds(cfg.new_metrics_interval_s);
        // Offsets in the database belong to the topic (not the group): renaming the group
        // repeats nothing, and WAL offsets are never mistaken for Kafka's.
        if (kafka) ro.consumer = "kafka:" + cfg.kafka.topic;
        pipe = std::make_unique<pipeline_service>(*log_bus, rules, so, ro, kafka ? cfg.kafka_group : ro.consumer,
                                                  kafka ? cfg.kafka.topic : std::string());
        pipe->start();
    } else if (node == role::serve) {
        SLUICE_WARN("app", "no database configured (--db): ingest data is kept in the %s only",
                    kafka ? "Kafka topic" : "WAL");
    }

    auto stop_all = [&] {
        if (server) server->stop();
        for (auto& l : loops)
            l->stop();
        for (auto& t : workers)
            t.join();
        if (authority) authority->stop();
        if (brk) brk->detach_resend_store();  // appends still completing must not reach a closed store
        if (state_store) {
            if (auto closed = state_store->close(); !closed) {
                SLUICE_ERROR("app", "closing the session state: %s", closed.error().message().c_str());
            }
        }
        if (pipe) pipe->stop();
        log_bus->stop();
    };

    // 6. HTTP: health and metrics.
    http::server web;
    metric_sources sources;
    sources.brk = brk.get();
    sources.log = log_bus.get();
    if (pipe) sources.extra.push_back([&pipe](http::metrics_snapshot& w) { pipe->write_metrics(w); });
    if (authority)
        sources.extra.push_back([&authority](http::metrics_snapshot& w) { write_auth_metrics(*authority, w); });
    if (tls) sources.extra.push_back([&tls](http::metrics_snapshot& w) { write_tls_metrics(*tls, w); });
    if (server) {
        sources.extra.push_back([&server](http::metrics_snapshot& w) { write_connection_limit_metrics(*server, w); });
    }
    http_access access(http_access_options{cfg.auth.api_token, cfg.auth.http_login, cfg.listeners.http_tls},
                       authority.get());
    if (cfg.auth.http_login && (authority == nullptr || cfg.auth.password_file.empty())) {
        SLUICE_ERROR("app", "--http-login needs --password-file (the users who may log in)");
        stop_all();
        return 2;
    }
    access.install(web);
    if (access.enabled()) {
        sources.extra.push_back([&access](http::metrics_snapshot& w) { access.write_metrics(w); });
    } else if (!anonymous_allowed(auth_settings{}, cfg.bind_address)) {
        SLUICE_WARN("app",
                    "HTTP API and metrics are open to anyone who reaches %s:%u: set auth.api_token or "
                    "auth.http_login (docs/security.md)",
                    cfg.bind_address.c_str(), cfg.http_port);
    }
    std::shared_ptr<net::tls_config> https;
    if (cfg.listeners.http_tls) {
        std::string err;
        https = http_tls_config(cfg.listeners, err);
        if (!https) {
            SLUICE_ERROR("app", "%s", err.c_str());
            stop_all();
            return 1;
        }
        web.set_tls(https);
    }
    web.route("GET", "/health", [](const http::request&) {
        return http::response{200, "application/json", "{\"status\":\"ok\"}\n", {}};
    });
    web.route("GET", "/metrics", [&sources](const http::request&) {
        return http::response{
            200, "text/plain; version=0.0.4; charset=utf-8", collect_metrics(sources).prometheus_text(), {}};
    });
    http::api_config api;
    if (!cfg.telemetry_db_url.empty()) api.query = store::open_postgres_query({cfg.telemetry_db_url});
    api.metrics = [&sources] { return collect_metrics(sources); };
    api.web_root = web_root.empty() ? default_web_root() : web_root;
    http::register_api(web, std::move(api));
    auto http_port = web.start(cfg.bind_address, cfg.http_port);
    if (!http_port) {
        SLUICE_ERROR("app", "cannot listen for HTTP on %s:%u: %s", cfg.bind_address.c_str(), cfg.http_port,
                     http_port.error().message().c_str());
        stop_all();
        return 1;
    }
    std::fprintf(stderr, "%s listening on %s:%u\n", https ? "https" : "http", cfg.bind_address.c_str(), *http_port);
    write_file_atomically(cfg.data_dir + "/http.port", std::to_string(*http_port));

    if (run_broker) {
        std::fprintf(stderr, "mqtt listening on %s:%u\n", cfg.bind_address.c_str(), mqtt_port);
        if (!write_file_atomically(cfg.data_dir + "/mqtt.port", std::to_string(mqtt_port))) {
            SLUICE_WARN("app", "cannot write %s/mqtt.port", cfg.data_dir.c_str());
        }
        SLUICE_INFO("app", "sluice %s: MQTT on %s:%u with %u event loops, %s bus, data in %s", role_name,
                    cfg.bind_address.c_str(), mqtt_port, threads, kafka ? "Kafka" : "WAL", cfg.data_dir.c_str());
    } else {
        SLUICE_INFO("app", "sluice pipeline: consumer group %s on Kafka topic %s, HTTP on %s:%u",
                    cfg.kafka_group.c_str(), cfg.kafka.topic.c_str(), cfg.bind_address.c_str(), *http_port);
    }

    int sig = 0;
    for (;;) {
        sigwait(&signals, &sig);
        if (sig != SIGHUP) break;
        // Reload without dropping connections; on error the old rules stay.
        if (authority) {
            std::string err = authority->reload();
            if (err.empty()) {
                SLUICE_INFO("app", "SIGHUP: password and ACL files reloaded");
            } else {
                SLUICE_ERROR("app", "SIGHUP: reload failed, keeping the previous rules: %s", err.c_str());
            }
        }
        if (https) {
            std::string err = https->reload();
            if (!err.empty())
                SLUICE_ERROR("app", "SIGHUP: HTTPS reload failed, keeping the previous certificate: %s", err.c_str());
        }
        if (tls) {
            std::string err = tls->reload();
            if (err.empty()) {
                SLUICE_INFO("app", "SIGHUP: TLS certificate reloaded (for new connections)");
            } else {
                SLUICE_ERROR("app", "SIGHUP: TLS reload failed, keeping the previous certificate: %s", err.c_str());
            }
        }
    }
    // A pipeline that cannot use the database as configured (store.layout) stops us.
    const bool failed = pipe && pipe->failed();
    if (!failed) SLUICE_INFO("app", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");

    // Reverse order: HTTP, stop accepting and close clients, stop loops, the pipeline
    // (leaving the consumer group), then the bus (delivering or failing what is in flight).
    web.stop();
    stop_all();
    for (const char* name : {"mqtt", "mqtts", "ws", "wss", "http"})
        std::filesystem::remove(cfg.data_dir + "/" + name + ".port", ec);
    SLUICE_INFO("app", "stopped");
    return failed ? 1 : 0;
}

int wal_dump(int argc, char** argv) {
    std::string self = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "sluice-wal-dump";
    std::vector<char*> args;
    args.push_back(const_cast<char*>(self.c_str()));
    for (int i = 0; i < argc; ++i)
        args.push_back(argv[i]);
    args.push_back(nullptr);
    execv(self.c_str(), args.data());
    std::fprintf(stderr, "sluice: cannot run %s: %s\n", self.c_str(), sluice::errno_text(errno).c_str());
    return 1;
}

}  // namespace
}  // namespace sluice::app

int main(int argc, char** argv) try {
    using namespace sluice::app;
    if (argc < 2) {
        std::fputs(k_usage, stderr);
        return 2;
    }
    std::string cmd = argv[1];
    if (cmd == "serve") return serve(role::serve, argc - 2, argv + 2);
    if (cmd == "broker") return serve(role::broker, argc - 2, argv + 2);
    if (cmd == "pipeline") return serve(role::pipeline, argc - 2, argv + 2);
    if (cmd == "passwd") return passwd_command(argc - 2, argv + 2);
    if (cmd == "wal" && argc >= 3 && std::strcmp(argv[2], "dump") == 0) return wal_dump(argc - 3, argv + 3);
    if (cmd == "--version" || cmd == "version") {
        std::printf("sluice 0.1.0\n");
        return 0;
    }
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        std::fputs(k_usage, stdout);
        return 0;
    }
    std::fprintf(stderr, "sluice: unknown command %s\n%s", cmd.c_str(), k_usage);
    return 2;
} catch (const sluice::app::missing_value& e) {
    std::fprintf(stderr, "sluice: %s needs a value\n", e.flag.c_str());
    return 2;
} catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: %s\n", e.what());
    return 1;
}
