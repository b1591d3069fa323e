// SPDX-License-Identifier: Apache-2.0
//
// Model-based fuzzer for the broker's subscription index and retained store (in the
// manner of Redpanda's storage opfuzz): the input is a program of subscribe /
// unsubscribe / remove_session / match / retain / erase / retained-match operations on
// strings drawn from a tiny alphabet, applied both to the real structures and to
// brute-force models built on mqtt::topic_matches(). Any disagreement, sanitizer report or
// broken invariant (node count after everything is removed) aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "broker/retained_store.h"
#include "broker/topic_index.h"
#include "mqtt/topic.h"

namespace {

using namespace sluice::broker;
namespace mqtt = sluice::mqtt;

#define FUZZ_CHECK(cond)                                                                              \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            std::fprintf(stderr, "broker_index fuzz: check failed: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                                             \
        }                                                                                             \
    } while (0)

class reader {
public:
    reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool done() const { return pos_ >= size_; }
    uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    // A short string over an alphabet rich in the characters that matter to MQTT topics.
    std::string text() {
        static constexpr char alphabet[] = {'a', 'b', '/', '/', '+', '#', '$', 'c', '\0', '/', 'a', '+'};
        const size_t len = byte() % 9;
        std::string s;
        for (size_t i = 0; i < len; ++i)
            s.push_back(alphabet[byte() % sizeof(alphabet)]);
        return s;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

struct model {
    std::map<std::pair<std::string, session_key>, sub_options> plain;
    std::map<std::pair<std::string, std::string>, std::set<session_key>> groups;  // (group, filter)
    std::map<std::string, int> retained;

    size_t subscription_count() const {
        size_t n = plain.size();
        for (const auto& [key, members] : groups)
            n += members.size();
        return n;
    }
};

bool available(session_key s) {
    return s % 3 != 1;
}

void check_match(topic_index& idx, const model& m, const std::string& topic, session_key publisher) {
    std::vector<delivery> out;
    idx.match(topic, publisher, out, available);

    std::map<session_key, std::tuple<uint8_t, bool, std::vector<uint32_t>>> expected;
    for (const auto& [key, o] : m.plain) {
        if (!mqtt::topic_matches(key.first, topic) || (o.no_local && key.second == publisher)) continue;
        auto [it, fresh] = expected.try_emplace(key.second, o.qos, o.retain_as_published, std::vector<uint32_t>{});
        auto& [qos, rap, ids] = it->second;
        if (!fresh) {
            qos = std::max(qos, o.qos);
            rap = rap || o.retain_as_published;
        }
        if (o.subscription_id != 0) ids.push_back(o.subscription_id);
    }
    size_t expected_shared = 0;
    std::set<session_key> eligible;
    bool all_groups_have_available = true;
    for (const auto& [key, members] : m.groups) {
        if (members.empty() || !mqtt::topic_matches(key.second, topic)) continue;
        ++expected_shared;
        eligible.insert(members.begin(), members.end());
        if (std::none_of(members.begin(), members.end(), available)) all_groups_have_available = false;
    }

    size_t plain = 0;
    size_t shared = 0;
    session_key last = 0;
    for (const auto& d : out) {
        if (d.shared) {
            ++shared;
            FUZZ_CHECK(eligible.count(d.session) == 1);
            if (all_groups_have_available) FUZZ_CHECK(available(d.session));
            continue;
        }
        FUZZ_CHECK(shared == 0);  // plain deliveries come first
        FUZZ_CHECK(plain == 0 || d.session > last);
        last = d.session;
        ++plain;
        auto it = expected.find(d.session);
        FUZZ_CHECK(it != expected.end());
        FUZZ_CHECK(d.qos == std::get<0>(it->second));
        FUZZ_CHECK(d.retain_as_published == std::get<1>(it->second));
        std::vector<uint32_t> got(d.subscription_ids.begin(), d.subscription_ids.end());
        auto want = std::get<2>(it->second);
        std::sort(got.begin(), got.end());
        std::sort(want.begin(), want.end());
        FUZZ_CHECK(got == want);
    }
    FUZZ_CHECK(plain == expected.size());
    FUZZ_CHECK(shared == expected_shared);
}

void check_retained(const retained_store<int>& store, const model& m, const std::string& filter) {
    std::vector<std::string> got;
    store.match(filter, [&](std::string_view topic, const int& value) {
        auto it = m.retained.find(std::string(topic));
        FUZZ_CHECK(it != m.retained.end());
        FUZZ_CHECK(it->second == value);
        got.emplace_back(topic);
    });
    std::sort(got.begin(), got.end());
    FUZZ_CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());
    std::vector<std::string> want;
    for (const auto& [topic, value] : m.retained) {
        if (mqtt::topic_matches(filter, topic)) want.push_back(topic);
    }
    FUZZ_CHECK(got == want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    reader in(data, size);
    topic_index idx;
    retained_store<int> store;
    model m;
    int ops = 0;
    while (!in.done() && ops++ < 256) {
        const uint8_t op = in.byte() % 8;
        const session_key s = in.byte() % 6;
        switch (op) {
            case 0:
            case 1: {  // subscribe, possibly shared
                std::string filter = in.text();
                const uint8_t flags = in.byte();
                sub_options o{.qos = static_cast<uint8_t>(flags % 3),
                              .no_local = (flags & 0x08) != 0,
                              .retain_as_published = (flags & 0x10) != 0,
                              .subscription_id = static_cast<uint32_t>((flags >> 5) % 4)};
                if (op == 1) filter = "$share/" + std::string((flags & 0x04) ? "g" : "h") + "/" + filter;
                if (!mqtt::valid_topic_filter(filter)) {
                    FUZZ_CHECK(!idx.unsubscribe(filter, s));
                    break;
                }
                const auto shared = mqtt::parse_shared(filter);
                bool existed = false;
                if (shared) {
                    auto& members = m.groups[{std::string(shared->group), std::string(shared->filter)}];
                    o.no_local = false;  // a Protocol Error on shared subscriptions (MQTT 5.0 §3.8.3.1)
                    existed = !members.insert(s).second;
                } else {
                    const auto key = std::make_pair(filter, s);
                    existed = m.plain.count(key) != 0;
                    m.plain[key] = o;
                }
                FUZZ_CHECK(idx.subscribe(filter, s, o) == existed);
                break;
            }
            case 2: {  // unsubscribe
                std::string filter = in.text();
                if (in.byte() & 1) filter = "$share/g/" + filter;
                const bool valid = mqtt::valid_topic_filter(filter);
                const auto shared = valid ? mqtt::parse_shared(filter) : std::nullopt;
                bool existed = false;
                if (shared) {
                    auto it = m.groups.find({std::string(shared->group), std::string(shared->filter)});
                    existed = it != m.groups.end() && it->second.erase(s) != 0;
                } else if (valid) {
                    existed = m.plain.erase({filter, s}) != 0;
                }
                FUZZ_CHECK(idx.unsubscribe(filter, s) == existed);
                break;
            }
            case 3: {  // session ends
                idx.remove_session(s);
                for (auto it = m.plain.begin(); it != m.plain.end();) {
                    it = it->first.second == s ? m.plain.erase(it) : std::next(it);
                }
                for (auto& [key, members] : m.groups)
                    members.erase(s);
                break;
            }
            case 4: {  // PUBLISH
                const std::string topic = in.text();
                if (mqtt::valid_topic_name(topic)) check_match(idx, m, topic, s);
                break;
            }
            case 5: {  // retained PUBLISH
                const std::string topic = in.text();
                if (!mqtt::valid_topic_name(topic)) break;
                store.set(topic, static_cast<int>(s));
                m.retained[topic] = static_cast<int>(s);
                break;
            }
            case 6: {  // retained PUBLISH with an empty payload
                const std::string topic = in.text();
                if (!mqtt::valid_topic_name(topic)) break;
                FUZZ_CHECK(store.erase(topic) == (m.retained.erase(topic) != 0));
                break;
            }
            default: {  // SUBSCRIBE: which retained messages are sent
                const std::string filter = in.text();
                if (mqtt::valid_topic_filter(filter)) check_retained(store, m, filter);
                break;
            }
        }
        FUZZ_CHECK(idx.subscription_count() == m.subscription_count());
        FUZZ_CHECK(store.size() == m.retained.size());
    }
    for (session_key s = 0; s < 6; ++s)
        idx.remove_session(s);
    FUZZ_CHECK(idx.subscription_count() == 0);
    FUZZ_CHECK(idx.session_count() == 0);
    FUZZ_CHECK(idx.node_count() == 0);
    for (const auto& [topic, value] : m.retained)
        FUZZ_CHECK(store.erase(topic));
    FUZZ_CHECK(store.node_count() == 0);
    return 0;
}
