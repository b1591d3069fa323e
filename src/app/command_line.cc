// SPDX-License-Identifier: Apache-2.0
//
// The flag table of `sluice` (see command_line.h). Config files before flags relies on
// CLI11 running option callbacks in declaration order after the whole line is read:
// --config is declared first, so every file is loaded before any flag's value lands.
#include "app/command_line.h"

#include <cstdlib>

#include "base/cli.h"
#include "base/log.h"

namespace sluice::app {
namespace {

// A base-10 integer in [lo, hi], rewritten in canonical form: CLI11's own conversion also
// takes octal and hex ("010" would be 8), which our flags never did.
CLI::Validator decimal(long lo, long hi) {
    const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
    return CLI::Validator(
        [lo, hi, range](std::string& in) -> std::string {
            char* end = nullptr;
            const long v = std::strtol(in.c_str(), &end, 10);
            if (in.empty() || *end != '\0' || v < lo || v > hi) return "expected " + range;
            in = std::to_string(v);
            return {};
        },
        range);
}

const CLI::Validator port = decimal(0, 65535);

const CLI::Validator cpu_list(
    [](std::string& in) -> std::string {
        std::vector<int> cpus;
        return parse_cpu_list(in, cpus) ? std::string{} : "expected a list like 0,2-3";
    },
    "LIST");

// The flags of serve, broker and pipeline. Options that need an MQTT listener go to
// `mqtt_only` too: `sluice pipeline` refuses them after parsing, as it always has.
void declare_node_flags(CLI::App& app, invocation& inv, std::vector<CLI::Option*>& mqtt_only) {
    config& cfg = inv.cfg;
    // First, so that its callback (the files) runs before every other flag's.
    app.add_option_function<std::vector<std::string>>(
           "--config",
           [&cfg](const std::vector<std::string>& files) {
               for (const auto& file : files) {
                   if (std::string err = load_config_file(file, cfg); !err.empty())
                       throw CLI::ValidationError("--config", err);
               }
           },
           "TOML configuration (see config/sluice.toml); the flags override it")
        ->type_name("FILE")
        ->allow_extra_args(false)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

    mqtt_only.push_back(
        app.add_option("--mqtt-port", cfg.mqtt_port, "MQTT TCP port (0 = pick one, written to DATA_DIR/mqtt.port)")
            ->transform(port));
    app.add_option("--bind", cfg.bind_address, "Address to listen on");
    app.add_option("--http-port", cfg.http_port, "HTTP port for metrics, API and dashboard (0 = pick one)")
        ->transform(port);
    app.add_option("--data-dir", cfg.data_dir, "Where the WAL and state live");
    mqtt_only.push_back(app.add_option("--threads", cfg.threads, "Event loops")
                            ->transform(decimal(1, 1024))
                            ->default_str("one per core"));
    mqtt_only.push_back(app.add_option_function<std::string>(
                               "--cpu-affinity",
                               [&cfg](const std::string& list) { parse_cpu_list(list, cfg.cpu_affinity); },
                               "Pin event-loop threads to these CPUs, e.g. 0,2-3")
                            ->check(cpu_list));
    // --db before the specific URLs, so that they win whatever the order (as in [database]).
    app.add_option_function<std::string>(
        "--db", [&cfg](const std::string& url) { cfg.telemetry_db_url = cfg.app_db_url = url; },
        "PostgreSQL URL for both telemetry and application data");
    app.add_option("--telemetry-db", cfg.telemetry_db_url, "PostgreSQL URL for telemetry only");
    app.add_option("--app-db", cfg.app_db_url, "PostgreSQL URL for application data only");
    app.add_option("--store-layout", cfg.store_layout,
                   "auto (TimescaleDB when it can load, else native partitions), native, timescale")
        ->check(CLI::IsMember({"auto", "native", "timescale"}));
    app.add_option("--bus", cfg.bus_backend, "The bus between broker and pipeline: wal or kafka")
        ->check(CLI::IsMember({"wal", "kafka"}));
    app.add_option("--kafka-brokers", cfg.kafka.brokers, "Kafka bootstrap servers HOST:PORT,...");
    app.add_option("--kafka-topic", cfg.kafka.topic, "Kafka topic of the ingest records");
    app.add_option("--kafka-group", cfg.kafka_group, "Consumer group of the pipeline workers");
    app.add_option("--log-level", cfg.log_level, "debug, info, warn, error");
    app.add_option("--web-root", inv.web_root, "Dashboard files")->default_str("<exe dir>/../../web, else ./web");

    const char* access = "Access control (docs/security.md; SIGHUP reloads the files)";
    auth_settings& auth = cfg.auth;
    app.add_option("--password-file", auth.password_file,
                   "Users and $7$ password hashes (mosquitto_passwd / sluice passwd)")
        ->group(access);
    app.add_option("--acl-file", auth.acl_file, "mosquitto acl_file: topic/user/pattern lines")->group(access);
    app.add_option_function<std::string>(
           "--allow-anonymous", [&auth](const std::string& b) { auth.allow_anonymous = b == "true"; },
           "true|false; default true only with --bind 127.0.0.1 and no password file")
        ->check(CLI::IsMember({"true", "false"}))
        ->group(access);
    app.add_option("--client-id-pattern", auth.client_id_pattern,
                   "Client id a user must use: %u = username, * = anything (e.g. %u-*)")
        ->group(access);
    app.add_option("--api-token", auth.api_token,
                   "HTTP /api/* and /metrics need \"Authorization: Bearer TOKEN\" (/health never)")
        ->group(access);
    app.add_flag("--http-login", auth.http_login,
                 "Password-file users may log in to the dashboard and API (form, or Basic)")
        ->group(access);

    const char* more = "More listeners (each port written to DATA_DIR/NAME.port; SIGHUP reloads the certificate)";
    listener_settings& ls = cfg.listeners;
    auto listener_port = [&](const char* flag, std::optional<uint16_t>& dst, const char* help) {
        mqtt_only.push_back(app.add_option_function<uint16_t>(
                                   flag, [&dst](uint16_t p) { dst = p; }, help)
                                ->transform(port)
                                ->group(more));
    };
    listener_port("--mqtts-port", ls.mqtts_port, "MQTT over TLS (8883 is usual)");
    listener_port("--ws-port", ls.ws_port, "MQTT over WebSocket, subprotocol \"mqtt\" (any path)");
    listener_port("--wss-port", ls.wss_port, "MQTT over WebSocket over TLS");
    app.add_option("--tls-cert", ls.tls.cert_file, "PEM certificate chain of the TLS listeners")->group(more);
    app.add_option("--tls-key", ls.tls.key_file, "Its PEM private key")->group(more);
    mqtt_only.push_back(app.add_option("--tls-ca", ls.tls.ca_file,
                                       "CA for client certificates; a verified certificate's CN is the "
                                       "username")
                            ->group(more));
    mqtt_only.push_back(app.add_flag("--require-certificate", ls.tls.require_certificate,
                                     "Refuse TLS clients without a certificate signed by --tls-ca")
                            ->group(more));
    app.add_option("--tls-ciphers", ls.tls.ciphers, "TLS 1.2 ciphers (OpenSSL syntax)")->group(more);
    app.add_option("--tls-ciphersuites", ls.tls.ciphersuites, "TLS 1.3 cipher suites")->group(more);
    app.add_option("--tls-min-version", ls.tls.min_version, "1.2 or 1.3")->group(more);
    app.add_flag("--http-tls", ls.http_tls, "The HTTP port (API, dashboard, metrics) speaks HTTPS with --tls-cert")
        ->group(more);
}

void declare_passwd(CLI::App& app, passwd_request& r) {
    auto* create = app.add_flag("-c", r.create, "Create FILE (overwriting it if it exists)");
    auto* remove = app.add_flag("-D", r.remove, "Delete USER from FILE");
    auto* batch = app.add_flag("-b", r.batch, "Take the password from the command line (else it is asked for, twice)");
    app.add_option("FILE", r.file, "The password file")->required();
    app.add_option("USER", r.user, "The user to add, change or delete")->required();
    auto* password = app.add_option("PASSWORD", r.password, "With -b: the password");
    create->excludes(remove);
    remove->excludes(batch);
    batch->needs(password);
    password->needs(batch);
    app.footer(
        "The file is in mosquitto's format ($7$ PBKDF2-SHA512), readable by mosquitto and by\n"
        "`sluice serve --password-file FILE`.\n");
}

// Checks that need the file and the flags together (either may set these). Returns the
// message of the first problem, or "".
std::string check_node(const invocation& inv) {
    const config& cfg = inv.cfg;
    const std::string name = std::string("sluice ") + role_name(inv.node);
    log::level unused;
    if (!log::parse_level(cfg.log_level.c_str(), unused)) return "sluice: unknown log level " + cfg.log_level;
    const bool kafka = cfg.bus_backend == "kafka";
    if (inv.node != role::serve && !kafka) return name + ": needs --bus kafka (with the WAL, run sluice serve)";
    if (kafka && cfg.kafka.brokers.empty()) return name + ": --bus kafka needs --kafka-brokers";
    if (inv.node == role::pipeline && cfg.telemetry_db_url.empty()) return name + ": needs --db";
    // The users who may log in come from the password file, which only the broker side reads.
    if (cfg.auth.http_login && (inv.node == role::pipeline || cfg.auth.password_file.empty()))
        return "sluice: --http-login needs --password-file (the users who may log in)";
    return {};
}

}  // namespace

command_line parse_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    CLI::App app("Sluice: MQTT broker and telemetry pipeline into PostgreSQL (docs/operations.md).", "sluice");
    cli::configure(app);
    app.require_subcommand(0, 1);  // none is refused below, so that an unknown one is named
    invocation inv;

    struct node_command {
        role node;
        const char* help;
        CLI::App* app = nullptr;
        std::vector<CLI::Option*> mqtt_only;
    };
    node_command nodes[] = {
        {role::serve, "Run the broker and pipeline", nullptr, {}},
        {role::broker, "MQTT only: produce ingest to Kafka (--bus kafka; docs/cluster.md)", nullptr, {}},
        {role::pipeline, "Consume Kafka in a consumer group, write to PostgreSQL (--bus kafka)", nullptr, {}},
    };
    for (auto& n : nodes) {
        n.app = app.add_subcommand(role_name(n.node), n.help);
        n.app->footer("Each flag overrides the config file.\n");
        declare_node_flags(*n.app, inv, n.mqtt_only);
    }
    for (auto* opt : nodes[2].mqtt_only)
        opt->group("");  // no MQTT listener: hidden from `sluice pipeline --help`, refused below

    auto* wal = app.add_subcommand("wal", "dump DIR [args]: the offline WAL reader")->require_subcommand(1);
    auto* dump =
        wal->add_subcommand("dump", "DIR [args]: print a WAL directory (see sluice-wal-dump --help)")->prefix_command();
    dump->set_help_flag();  // --help goes to sluice-wal-dump with the rest
    dump->allow_extras();

    auto* passwd = app.add_subcommand(
        "passwd", "[-c|-D] [-b] FILE USER [PASSWORD]: manage a password file (mosquitto_passwd's format and verbs)");
    declare_passwd(*passwd, inv.passwd);

    auto* status_cmd = app.add_subcommand(
        "status", "The cluster's nodes, partitions, owners and lag, from a running node (GET /api/cluster)");
    status_cmd->add_option("--http", inv.status.url, "The node's HTTP address")->capture_default_str();
    status_cmd->add_option("--token", inv.status.token, "Its API token (--api-token), if it has one");

    // `sluice version` and `sluice help`: spellings sluice has always accepted.
    std::vector<std::string> line = args;
    if (line.size() == 1 && (line[0] == "version" || line[0] == "help")) line[0] = "--" + line[0];

    command_line result;
    if (const auto status = cli::parse(app, line, out, err)) {
        result.exit_status = *status;
        return result;
    }
    if (app.get_subcommands().empty()) {
        err << "sluice: a command is required: serve, broker, pipeline, status, passwd or wal dump\n"
            << "Run 'sluice --help' for the options.\n";
        result.exit_status = cli::exit_usage;
        return result;
    }
    if (passwd->parsed()) {
        inv.what = command::passwd;
    } else if (status_cmd->parsed()) {
        inv.what = command::status;
    } else if (dump->parsed()) {
        inv.what = command::wal_dump;
        inv.wal_dump_args = dump->remaining();
    } else {
        for (const auto& n : nodes) {
            if (!n.app->parsed()) continue;
            inv.node = n.node;
            if (n.node != role::pipeline) continue;
            for (const auto* opt : n.mqtt_only) {
                if (opt->count() == 0) continue;
                err << "sluice pipeline: --" << opt->get_lnames().front() << " does not apply (no MQTT listener)\n";
                result.exit_status = cli::exit_usage;
                return result;
            }
        }
        if (std::string problem = check_node(inv); !problem.empty()) {
            err << problem << "\n";
            result.exit_status = cli::exit_usage;
            return result;
        }
    }
    result.run = std::move(inv);
    return result;
}

}  // namespace sluice::app
