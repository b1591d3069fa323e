// SPDX-License-Identifier: Apache-2.0
//
// sluice-kafka-mock: librdkafka's own mock Kafka cluster (rdkafka_mock.h) in a process of
// its own, so that several sluice processes and a test share one cluster. It creates the
// topic and the three that MQTT across nodes uses next to it (NAME-mqtt with the same
// partitions, NAME-retained and NAME-sessions with one), as an operator would
// (docs/cluster.md). Prints the
// bootstrap servers on its first line and runs until SIGTERM/SIGINT. Fault injection on
// standard input, one command a line, each answered "ok" or "error: ..." on stdout:
//
//   down BROKER_ID                 the broker stops answering (connections closed)
//   up BROKER_ID                   it answers again
//   leader TOPIC PARTITION ID      moves the partition's leadership
//   rtt BROKER_ID MS               adds round-trip time to the broker's answers
//   errors API_KEY ERROR COUNT     the next COUNT requests of API_KEY fail with ERROR
//   topic NAME PARTITIONS          creates a topic
//
// Broker ids are 1..N. Standard input reaching its end changes nothing.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace {

constexpr const char* k_usage =
    "usage: sluice-kafka-mock [--brokers N] [--partitions N] [--topic NAME]\n"
    "  prints the bootstrap servers, then reads fault commands on stdin (see tools/kafka_mock/main.cc)\n";

std::string run(rd_kafka_mock_cluster_t* mc, const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cmd == "down" || cmd == "up") {
        int id = 0;
        if (!(in >> id)) return "error: " + cmd + " BROKER_ID";
        err = cmd == "down" ? rd_kafka_mock_broker_set_down(mc, id) : rd_kafka_mock_broker_set_up(mc, id);
    } else if (cmd == "leader") {
        std::string topic;
        int partition = 0, id = 0;
        if (!(in >> topic >> partition >> id)) return "error: leader TOPIC PARTITION ID";
        err = rd_kafka_mock_partition_set_leader(mc, topic.c_str(), partition, id);
    } else if (cmd == "rtt") {
        int id = 0, ms = 0;
        if (!(in >> id >> ms)) return "error: rtt BROKER_ID MS";
        err = rd_kafka_mock_broker_set_rtt(mc, id, ms);
    } else if (cmd == "errors") {
        int api = 0, code = 0, count = 0;
        if (!(in >> api >> code >> count) || count < 1) return "error: errors API_KEY ERROR COUNT";
        rd_kafka_resp_err_t codes[1024];
        if (count > 1024) count = 1024;
        for (int i = 0; i < count; ++i)
            codes[i] = static_cast<rd_kafka_resp_err_t>(code);
        rd_kafka_mock_push_request_errors_array(mc, static_cast<int16_t>(api), static_cast<size_t>(count), codes);
    } else if (cmd == "topic") {
        std::string topic;
        int partitions = 0;
        if (!(in >> topic >> partitions) || partitions < 1) return "error: topic NAME PARTITIONS";
        err = rd_kafka_mock_topic_create(mc, topic.c_str(), partitions, 1);
    } else if (cmd.empty()) {
        return "";
    } else {
        return "error: unknown command " + cmd;
    }
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : std::string("error: ") + rd_kafka_err2str(err);
}

// A positive count from the command line, or -1 when `s` is not one.
int count_arg(const char* s) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 1'000'000) return -1;
    return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
    int brokers = 3, partitions = 6;
    std::string topic = "sluice-telemetry";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--brokers" && i + 1 < argc) {
            brokers = count_arg(argv[++i]);
        } else if (a == "--partitions" && i + 1 < argc) {
            partitions = count_arg(argv[++i]);
        } else if (a == "--topic" && i + 1 < argc) {
            topic = argv[++i];
        } else {
            std::fputs(k_usage, a == "-h" || a == "--help" ? stdout : stderr);
            return a == "-h" || a == "--help" ? 0 : 2;
        }
    }
    if (brokers < 1 || partitions < 1) {
        std::fputs(k_usage, stderr);
        return 2;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) {
        std::fprintf(stderr, "sluice-kafka-mock: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == nullptr) {
        std::fprintf(stderr, "sluice-kafka-mock: cannot start the mock cluster\n");
        return 1;
    }
    int replicas = brokers < 3 ? brokers : 3;
    for (const auto& [name, count] : {std::pair{topic, partitions}, std::pair{topic + "-mqtt", partitions},
                                      std::pair{topic + "-retained", 1}, std::pair{topic + "-sessions", 1}}) {
        if (rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name.c_str(), count, replicas); e) {
            std::fprintf(stderr, "sluice-kafka-mock: topic %s: %s\n", name.c_str(), rd_kafka_err2str(e));
            return 1;
        }
    }
    std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    std::fflush(stdout);

    // Commands on a thread of their own; the main thread waits for the signal.
    std::thread([mc] {
        std::string line;
        while (std::getline(std::cin, line)) {
            std::string answer = run(mc, line);
            if (answer.empty()) continue;
            std::printf("%s\n", answer.c_str());
            std::fflush(stdout);
        }
    }).detach();
    int sig = 0;
    sigwait(&signals, &sig);
    // Exit without tearing the cluster down: the detached reader may still hold it.
    std::_Exit(0);
}
