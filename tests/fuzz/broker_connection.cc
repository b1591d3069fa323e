// SPDX-License-Identifier: Apache-2.0
//
// Arbitrary bytes through a whole broker connection (issue 12): the MQTT codec, the
// protocol state machine, the session, the subscription index and the ACL, on a one-shard
// broker whose loop is this thread. A second client, connected first, subscribes to `#`;
// the ACL denies `forbidden/#` to everyone. Invariants: no crash or sanitizer report, and
// the observer never receives a message under `forbidden/` whatever the fuzzed client
// does (publish, retain, will, subscribe tricks). The input's first byte sets how the rest
// is cut into reads; the fuzzed client gets a valid CONNECT first when its low bit is set,
// so that the state after CONNECT is reached without the fuzzer having to find one.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "auth/authority.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/shard.h"
#include "broker/transport.h"
#include "mqtt/codec.h"

namespace {

using namespace sluice;

class recording_transport final : public broker::transport {
public:
    void send(std::string bytes) override { out += bytes; }
    void send_publish(std::string header, broker::message_ptr msg) override {
        out += header;
        out += msg->payload;
    }
    void close() override { closed = true; }
    void set_reading(bool) override {}
    size_t pending_output_bytes() const override { return 0; }
    void discard_unsent() override {}
    const std::string& peer() const override { return name; }

    std::string out;
    bool closed = false;
    std::string name = "127.0.0.1:1";
};

auth::authority& shared_authority() {
    static auth::authority* a = [] {
        auto dir = std::filesystem::temp_directory_path() / ("sluice-fuzz-acl-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        std::string path = (dir / "acl").string();
        std::ofstream(path) << "topic readwrite #\ntopic deny forbidden/#\npattern readwrite own/%c/#\n";
        auth::authority_options o;
        o.acl_file = path;
        o.allow_anonymous = true;
        auto* made = new auth::authority(o);
        if (!made->load().empty()) std::abort();
        return made;
    }();
    return *a;
}

std::string encoded(const mqtt::packet& p) {
    std::string out;
    mqtt::encode(p, mqtt::version::v5, out);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    std::deque<std::function<void()>> posted;
    broker::broker brk(broker::broker_options{}, 1,
                       [&posted](unsigned, std::function<void()> fn) { posted.push_back(std::move(fn)); });
    brk.set_authority(&shared_authority());
    broker::shard& shard = brk.get_shard(0);
    int64_t now = 1'000'000;
    shard.set_now(now);
    auto run_posted = [&] {
        for (int guard = 0; guard < 1000 && !posted.empty(); ++guard) {
            auto fn = std::move(posted.front());
            posted.pop_front();
            fn();
        }
        shard.flush_outbox();
    };

    recording_transport observer_t;
    broker::connection observer(shard, observer_t);
    mqtt::connect oc;
    oc.client_id = "observer";
    oc.keep_alive = 0;
    mqtt::subscribe os;
    os.packet_id = 1;
    os.entries.push_back(mqtt::subscription{"#", 1, false, false, 0});
    observer.on_data(encoded(oc));
    run_posted();
    observer.on_data(encoded(os));
    run_posted();

    recording_transport fuzzed_t;
    auto fuzzed = std::make_unique<broker::connection>(shard, fuzzed_t);
    std::string input;
    if ((data[0] & 1) != 0) {
        mqtt::connect fc;
        fc.client_id = "fuzzed";
        fc.keep_alive = 0;
        input = encoded(fc);
    }
    input.append(reinterpret_cast<const char*>(data + 1), size - 1);
    size_t step = (data[0] >> 1) + 1U;
    std::string pending;
    for (size_t at = 0; at < input.size() && !fuzzed->closed(); at += step) {
        pending.append(input, at, step);
        size_t used = fuzzed->on_data(pending);
        pending.erase(0, used);
        now += 10;
        shard.set_now(now);
        run_posted();
    }
    fuzzed->on_transport_closed();
    run_posted();
    shard.tick(now + 3'600'000);  // will delays, expiry
    run_posted();

    // The observer's output: every PUBLISH it got must be readable under its own ACL.
    mqtt::stream_decoder decoder{mqtt::version::v5};
    decoder.feed(observer_t.out);
    for (;;) {
        auto p = decoder.next();
        if (!p) std::abort();  // the broker sent something undecodable
        if (!p->has_value()) break;
        if (const auto* pub = std::get_if<mqtt::publish>(&**p); pub && pub->topic.rfind("forbidden/", 0) == 0) {
            std::fprintf(stderr, "observer received %s despite the ACL\n", pub->topic.c_str());
            std::abort();
        }
    }
    observer.on_transport_closed();
    fuzzed.reset();
    run_posted();
    shard.shutdown();
    return 0;
}
