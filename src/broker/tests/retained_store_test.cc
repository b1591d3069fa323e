// SPDX-License-Identifier: Apache-2.0
//
// Tests for the retained-message store: replace/erase semantics, wildcard and '$'
// filters, trie cleanup, a randomized comparison with a brute-force scan over the
// reference matcher, and narrow versus broad filters over ten thousand topics.
#include "broker/retained_store.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mqtt/topic.h"

namespace sluice::broker {
namespace {

using message = std::shared_ptr<const std::string>;

message msg(std::string text) {
    return std::make_shared<const std::string>(std::move(text));
}

std::vector<std::string> topics_matching(const retained_store<message>& store, std::string_view filter) {
    std::vector<std::string> got;
    store.match(filter, [&](std::string_view topic, const message& m) {
        EXPECT_EQ(*m, "payload of " + std::string(topic));  // the topic handed out is the real one
        got.emplace_back(topic);
    });
    std::sort(got.begin(), got.end());
    return got;
}

void put(retained_store<message>& store, const std::string& topic) {
    store.set(topic, msg("payload of " + topic));
}

TEST(retained_store, set_replaces_and_erase_clears) {
    retained_store<message> store;
    EXPECT_EQ(store.size(), 0u);
    store.set("a/b", msg("one"));
    store.set("a/b", msg("two"));
    EXPECT_EQ(store.size(), 1u);
    const message* stored = store.get("a/b");
    ASSERT_NE(stored, nullptr);
    const std::string* text = stored->get();
    ASSERT_NE(text, nullptr);
    EXPECT_EQ(*text, "two");
    EXPECT_EQ(store.get("a"), nullptr);  // interior node, no message
    EXPECT_EQ(store.get("a/b/c"), nullptr);
    EXPECT_FALSE(store.erase("a"));
    EXPECT_FALSE(store.erase("a/b/c"));
    EXPECT_TRUE(store.erase("a/b"));
    EXPECT_FALSE(store.erase("a/b"));
    EXPECT_EQ(store.size(), 0u);
    EXPECT_EQ(store.get("a/b"), nullptr);
    EXPECT_EQ(store.node_count(), 0u);
}

TEST(retained_store, erase_keeps_nodes_still_in_use) {
    retained_store<message> store;
    put(store, "a");
    put(store, "a/b/c");
    put(store, "a/b/d");
    EXPECT_EQ(store.node_count(), 4u);
    EXPECT_TRUE(store.erase("a/b/c"));
    EXPECT_EQ(store.node_count(), 3u);
    EXPECT_TRUE(store.erase("a"));
    EXPECT_EQ(store.node_count(), 3u);  // a/b/d still needs a and b
    EXPECT_EQ(topics_matching(store, "#"), (std::vector<std::string>{"a/b/d"}));
    EXPECT_TRUE(store.erase("a/b/d"));
    EXPECT_EQ(store.node_count(), 0u);
}

TEST(retained_store, wildcard_filters) {
    retained_store<message> store;
    for (const char* t :
         {"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player2",
          "sport/golf", "/finance", "finance", "/", "$SYS/broker/load", "$SYS", "a/$b"}) {
        put(store, t);
    }
    using v = std::vector<std::string>;
    EXPECT_EQ(topics_matching(store, "sport/tennis/player1/#"),
              (v{"sport/tennis/player1", "sport/tennis/player1/ranking"}));
    EXPECT_EQ(topics_matching(store, "sport/#"), (v{"sport", "sport/", "sport/golf", "sport/tennis/player1",
                                                    "sport/tennis/player1/ranking", "sport/tennis/player2"}));
    EXPECT_EQ(topics_matching(store, "sport/tennis/+"), (v{"sport/tennis/player1", "sport/tennis/player2"}));
    EXPECT_EQ(topics_matching(store, "sport/+"), (v{"sport/", "sport/golf"}));
    EXPECT_EQ(topics_matching(store, "+"), (v{"finance", "sport"}));
    EXPECT_EQ(topics_matching(store, "+/+"), (v{"/", "/finance", "a/$b", "sport/", "sport/golf"}));
    EXPECT_EQ(topics_matching(store, "/+"), (v{"/", "/finance"}));
    EXPECT_EQ(topics_matching(store, "+/tennis/#"),
              (v{"sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player2"}));
    EXPECT_EQ(topics_matching(store, "sport/tennis/player1"), (v{"sport/tennis/player1"}));
    EXPECT_EQ(topics_matching(store, "nothing/#"), v{});
    // '$' topics: hidden from leading wildcards, reachable with a literal first level.
    const auto all = topics_matching(store, "#");
    EXPECT_EQ(all.size(), 10u);
    EXPECT_EQ(std::count_if(all.begin(), all.end(), [](const std::string& t) { return t[0] == '$'; }), 0);
    EXPECT_EQ(topics_matching(store, "$SYS/#"), (v{"$SYS", "$SYS/broker/load"}));
    EXPECT_EQ(topics_matching(store, "$SYS/+/load"), (v{"$SYS/broker/load"}));
    EXPECT_EQ(topics_matching(store, "+/broker/load"), v{});
    EXPECT_EQ(topics_matching(store, "a/+"), (v{"a/$b"}));

    std::vector<std::string> every;
    store.for_each([&](std::string_view t, const message&) { every.emplace_back(t); });
    EXPECT_EQ(every.size(), 12u);
}

TEST(retained_store, narrow_and_broad_filters_over_a_large_store) {
    retained_store<message> store;
    for (int site = 0; site < 50; ++site) {
        for (int dev = 0; dev < 200; ++dev) {
            std::string topic = "s";  // built by append: GCC 12 -Wrestrict misfires on "lit" + string
            topic.append(std::to_string(site)).append("/d").append(std::to_string(dev)).append("/t");
            put(store, topic);
        }
    }
    EXPECT_EQ(store.size(), 10000u);
    EXPECT_EQ(topics_matching(store, "s7/+/t").size(), 200u);
    EXPECT_EQ(topics_matching(store, "s7/d5/#"), (std::vector<std::string>{"s7/d5/t"}));
    EXPECT_EQ(topics_matching(store, "+/d5/t").size(), 50u);
    EXPECT_EQ(topics_matching(store, "#").size(), 10000u);
}

TEST(retained_store, deepest_topics_do_not_exhaust_the_stack) {
    const std::string deep(65535, '/');  // 65536 levels
    retained_store<message> store;
    put(store, deep);
    put(store, "/a");
    EXPECT_EQ(topics_matching(store, "#").size(), 2u);
    EXPECT_EQ(topics_matching(store, "/#").size(), 2u);
    EXPECT_EQ(topics_matching(store, deep), (std::vector<std::string>{deep}));
    size_t seen = 0;
    store.for_each([&](std::string_view t, const message&) { seen += t.size(); });
    EXPECT_EQ(seen, deep.size() + 2);
    retained_store<message> other;
    put(other, deep);
    other = std::move(store);
    EXPECT_EQ(other.size(), 2u);
    EXPECT_TRUE(other.erase(deep));
    EXPECT_EQ(other.node_count(), 2u);  // "" and "a"
}  // the rest is destroyed without recursion

TEST(retained_store, move_only_values) {
    retained_store<std::unique_ptr<int>> store;
    store.set("x", std::make_unique<int>(4));
    int sum = 0;
    store.match("+", [&](std::string_view, const std::unique_ptr<int>& p) { sum += *p; });
    EXPECT_EQ(sum, 4);
}

TEST(retained_store, randomized_against_brute_force) {
    std::mt19937 rng(7);
    const char* levels[] = {"a", "b", "", "$x", "c"};
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    auto random_topic = [&] {
        std::string t;
        const size_t depth = 1 + pick(4);
        for (size_t i = 0; i < depth; ++i) {
            if (i) t += '/';
            t += levels[pick(std::size(levels))];
        }
        return t.empty() ? std::string("/") : t;  // "" is not a topic name
    };
    auto random_filter = [&] {
        const char* flevels[] = {"a", "b", "", "$x", "+", "#"};
        std::string f;
        const size_t depth = 1 + pick(4);
        for (size_t i = 0; i < depth; ++i) {
            if (i) f += '/';
            std::string_view l = flevels[pick(std::size(flevels))];
            if (l == "#" && i + 1 != depth) l = "+";
            f += l;
        }
        return f.empty() ? std::string("#") : f;  // "" is not a filter
    };
    retained_store<message> store;
    std::map<std::string, std::string> model;
    size_t non_empty_matches = 0;  // the run must exercise real matches
    for (int step = 0; step < 5000; ++step) {
        const size_t op = pick(4);
        if (op == 0) {
            const auto t = random_topic();
            put(store, t);
            model[t] = "payload of " + t;
        } else if (op == 1) {
            const auto t = random_topic();
            EXPECT_EQ(store.erase(t), model.erase(t) != 0);
        } else {
            const auto f = random_filter();
            std::vector<std::string> expected;
            for (const auto& [t, p] : model) {
                if (mqtt::topic_matches(f, t)) expected.push_back(t);
            }
            EXPECT_EQ(topics_matching(store, f), expected) << f;
            non_empty_matches += !expected.empty();
        }
        ASSERT_EQ(store.size(), model.size());
    }
    EXPECT_GT(non_empty_matches, 500u);
    for (const auto& [t, p] : model)
        EXPECT_TRUE(store.erase(t));
    EXPECT_EQ(store.node_count(), 0u);
}

}  // namespace
}  // namespace sluice::broker
