// SPDX-License-Identifier: Apache-2.0
//
// Interoperability with Eclipse Paho C++ (Debian's libpaho-mqttpp-dev), the client
// library C++ gateways and device software commonly use. Exercises QoS 0/1/2 round trips,
// retained messages, wills (a forked child holding a will dies without DISCONNECT) and
// persistent sessions, for MQTT 3.1.1 or 5.0. Driven by tests/interop/test_paho_cpp.py,
// which owns the broker.
// Usage: paho_interop PORT VERSION(4|5). Exit status 0 only if every check passed.

#include <mqtt/async_client.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
constexpr auto step_timeout = 10s;

struct check_failed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void check(bool ok, const std::string& what) {
    if (!ok) throw check_failed(what);
}

struct context {
    std::string uri;
    int version = MQTTVERSION_5;
    std::string run;
};

// One connected client with message consumption started before connecting (so queued
// messages delivered right after CONNACK are not missed).
class client {
public:
    client(const context& ctx, const std::string& id, bool clean = true, bool persistent = false,
           const mqtt::message* will = nullptr)
        : cli_(ctx.uri, id, mqtt::create_options(ctx.version)), version_(ctx.version) {
        auto builder = mqtt::connect_options_builder();
        builder.mqtt_version(ctx.version).keep_alive_interval(30s).connect_timeout(step_timeout);
        if (ctx.version == MQTTVERSION_5) {
            builder.clean_start(clean);
            if (persistent) {
                builder.properties({{mqtt::property::SESSION_EXPIRY_INTERVAL, 300}});
            }
        } else {
            builder.clean_session(clean);
        }
        if (will != nullptr) builder.will(*will);
        cli_.start_consuming();
        auto tok = cli_.connect(builder.finalize());
        check(tok->wait_for(step_timeout), "connect " + id);
        session_present_ = tok->get_connect_response().is_session_present();
    }
    ~client() {
        try {
            if (cli_.is_connected()) cli_.disconnect()->wait_for(step_timeout);
        } catch (const std::exception&) {
        }
    }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void subscribe(const std::string& topic, int qos) {
        auto tok = cli_.subscribe(topic, qos);
        check(tok->wait_for(step_timeout), "subscribe " + topic);
        if (version_ == MQTTVERSION_5) {
            auto codes = tok->get_subscribe_response().get_reason_codes();
            check(codes.size() == 1 && static_cast<int>(codes[0]) == qos, "granted QoS " + topic);
        }
    }
    void publish(const std::string& topic, const std::string& payload, int qos, bool retain = false) {
        auto tok = cli_.publish(topic, payload.data(), payload.size(), qos, retain);
        check(tok->wait_for(step_timeout), "publish " + topic);
    }
    mqtt::const_message_ptr next(std::chrono::milliseconds timeout = step_timeout) {
        mqtt::const_message_ptr msg;
        cli_.try_consume_message_for(&msg, timeout);
        return msg;
    }
    bool session_present() const { return session_present_; }
    void disconnect() { check(cli_.disconnect()->wait_for(step_timeout), "disconnect"); }

private:
    mqtt::async_client cli_;
    int version_;
    bool session_present_ = false;
};

void qos_levels(const context& ctx) {
    const std::string topic = ctx.run + "/qos";
    client sub(ctx, ctx.run + "-qs");
    sub.subscribe(topic, 2);
    client pub(ctx, ctx.run + "-qp");
    for (int qos = 0; qos <= 2; ++qos)
        pub.publish(topic, "m" + std::to_string(qos), qos);
    for (int qos = 0; qos <= 2; ++qos) {
        auto m = sub.next();
        check(m != nullptr, "qos message " + std::to_string(qos));
        check(m->get_payload_str() == "m" + std::to_string(qos), "qos payload");
        check(m->get_qos() == qos, "qos level");
        check(!m->is_retained(), "qos retain flag");
    }
    check(sub.next(300ms) == nullptr, "no extra message");
}

void retained(const context& ctx) {
    const std::string topic = ctx.run + "/retained";
    client pub(ctx, ctx.run + "-rp");
    pub.publish(topic, "kept", 1, true);
    {
        client sub(ctx, ctx.run + "-rs");
        sub.subscribe(topic, 1);
        auto m = sub.next();
        check(m != nullptr && m->get_payload_str() == "kept" && m->is_retained(), "retained");
    }
    pub.publish(topic, "", 1, true);
    client late(ctx, ctx.run + "-rl");
    late.subscribe(topic, 1);
    check(late.next(500ms) == nullptr, "retained message cleared");
}

void will(const context& ctx) {
    const std::string topic = ctx.run + "/will";
    int to_child[2];
    int to_parent[2];
    check(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");
    // Fork before this process starts any Paho thread.
    const pid_t pid = fork();
    check(pid >= 0, "fork");
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        try {
            auto w = mqtt::message(topic, "gone", 1, false);
            client victim(ctx, ctx.run + "-wv", true, false, &w);
            char c = 'c';
            if (write(to_parent[1], &c, 1) != 1) _exit(3);
            if (read(to_child[0], &c, 1) != 1) _exit(4);
            // Exit with `victim` alive: no destructor, no DISCONNECT; the kernel closes the
            // socket as if the device had lost power.
            _exit(0);
        } catch (const std::exception&) {
            _exit(5);
        }
    }
    close(to_child[0]);
    close(to_parent[1]);
    char c = 0;
    check(read(to_parent[0], &c, 1) == 1, "will client connected");
    client watcher(ctx, ctx.run + "-ww");
    watcher.subscribe(topic, 1);
    {
        auto polite_will = mqtt::message(topic, "never", 1, false);
        client polite(ctx, ctx.run + "-wp", true, false, &polite_will);
        polite.disconnect();
    }
    check(write(to_child[1], &c, 1) == 1, "tell child to die");
    int status = 0;
    check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "will child exit status");
    close(to_child[1]);
    close(to_parent[0]);
    auto m = watcher.next();
    check(m != nullptr && m->get_payload_str() == "gone" && m->get_qos() == 1, "will message");
    check(watcher.next(500ms) == nullptr, "no will on normal disconnect");
}

void persistent_session(const context& ctx) {
    const std::string topic = ctx.run + "/session";
    const std::string id = ctx.run + "-ps";
    {
        client first(ctx, id, ctx.version == MQTTVERSION_5, true);
        first.subscribe(topic, 2);
        first.disconnect();
    }
    {
        client pub(ctx, ctx.run + "-pp");
        for (int i = 0; i < 4; ++i)
            pub.publish(topic, "q" + std::to_string(i), 1 + i % 2);
    }
    client again(ctx, id, false, true);
    check(again.session_present(), "session present");
    std::vector<std::string> q1;
    std::vector<std::string> q2;
    for (int i = 0; i < 4; ++i) {
        auto m = again.next();
        check(m != nullptr, "queued message " + std::to_string(i));
        (m->get_qos() == 1 ? q1 : q2).push_back(m->get_payload_str());
    }
    check(q1 == std::vector<std::string>{"q0", "q2"}, "queued QoS 1 in order");
    check(q2 == std::vector<std::string>{"q1", "q3"}, "queued QoS 2 in order");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: paho_interop PORT 4|5\n";
        return 2;
    }
    context ctx;
    ctx.uri = std::string("tcp://127.0.0.1:") + argv[1];
    ctx.version = std::atoi(argv[2]) == 4 ? MQTTVERSION_3_1_1 : MQTTVERSION_5;
    ctx.run = "cpp" + std::string(argv[2]) + "-" + std::to_string(getpid());
    const std::pair<const char*, void (*)(const context&)> checks[] = {
        {"qos_levels", qos_levels},
        {"retained", retained},
        {"will", will},
        {"persistent_session", persistent_session},
    };
    for (const auto& [name, fn] : checks) {
        try {
            fn(ctx);
        } catch (const std::exception& e) {
            std::cerr << "FAILED " << name << ": " << e.what() << "\n";
            return 1;
        }
        std::cout << "ok " << name << std::endl;
    }
    return 0;
}
