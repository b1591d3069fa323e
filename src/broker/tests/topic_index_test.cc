// SPDX-License-Identifier: Apache-2.0
//
// Tests for the subscription index: the MQTT 5.0 §4.7 matching examples, the '$' rule,
// shared-subscription selection (§4.8.2), delivery merging, no_local, trie cleanup,
// a randomized comparison against the reference matcher, and the no-allocation claim.
#include "broker/topic_index.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <new>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "mqtt/topic.h"

// Counts heap allocations so the steady-state match() can be shown not to allocate.
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// GCC cannot see that every allocation below pairs malloc with free.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace sluice::broker {
namespace {

std::vector<uint32_t> ids_of(const delivery& d) {
    std::vector<uint32_t> ids(d.subscription_ids.begin(), d.subscription_ids.end());
    std::sort(ids.begin(), ids.end());
    return ids;
}

// "$share/{group}/{filter}".
std::string shared_filter(std::string_view group, std::string_view filter) {
    std::string out = "$share/";
    out.append(group).append("/").append(filter);
    return out;
}

std::vector<delivery> match_all(topic_index& idx, std::string_view topic, session_key publisher = no_session) {
    std::vector<delivery> out;
    idx.match(topic, publisher, out);
    return out;
}

// --- Matching table -----------------------------------------------------------------

struct match_case {
    const char* filter;
    const char* topic;
    bool matches;
};

// MQTT 5.0 §4.7.1.2, §4.7.1.3, §4.7.2 and §4.7.3 examples, plus edge cases.
const match_case k_cases[] = {
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    {"#", "a", true},
    {"sport/tennis/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+", "/finance", false},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/golf", false},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport/tennis/player2", false},
    {"sport/+/player1", "sport//player1", true},
    {"+/+/+", "a/b/c", true},
    {"+/+/+", "a/b", false},
    {"+/+/+", "a/b/c/d", false},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b/", true},
    {"a/b/+", "a/b/", true},
    {"/", "/", true},
    {"+/+", "/", true},
    {"+", "/", false},
    // Case sensitivity and spaces (§4.7.3).
    {"ACCOUNTS", "Accounts", false},
    {"Accounts", "Accounts", true},
    {"Accounts payable", "Accounts payable", true},
    {"/finance", "finance", false},
    // '$' topics (§4.7.2).
    {"#", "$SYS/monitor/Clients", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"+", "$SYS", false},
    {"#", "$", false},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"a/#", "a/$b", true},
    {"a/+", "a/$b", true},
    {"+/$b", "a/$b", true},
    {"$share", "$share", true},
};

TEST(topic_matching, reference_matcher_agrees_with_the_spec_table) {
    for (const auto& c : k_cases) {
        EXPECT_EQ(mqtt::topic_matches(c.filter, c.topic), c.matches) << c.filter << " vs " << c.topic;
    }
}

TEST(topic_matching, index_agrees_with_the_spec_table) {
    for (const auto& c : k_cases) {
        topic_index idx;
        EXPECT_FALSE(idx.subscribe(c.filter, 7, {}));
        const auto out = match_all(idx, c.topic);
        EXPECT_EQ(out.size(), c.matches ? 1u : 0u) << c.filter << " vs " << c.topic;
        if (!out.empty()) {
            EXPECT_EQ(out[0].session, 7u);
        }
    }
}

TEST(topic_matching, whole_table_in_one_index) {
    // Every filter subscribed by its own session; each topic must reach exactly the
    // sessions of the filters that match it.
    topic_index idx;
    std::vector<std::string> filters;
    for (const auto& c : k_cases) {
        if (std::find(filters.begin(), filters.end(), c.filter) == filters.end()) filters.emplace_back(c.filter);
    }
    for (size_t i = 0; i < filters.size(); ++i)
        EXPECT_FALSE(idx.subscribe(filters[i], i, {}));
    for (const auto& c : k_cases) {
        std::vector<session_key> expected;
        for (size_t i = 0; i < filters.size(); ++i) {
            if (mqtt::topic_matches(filters[i], c.topic)) expected.push_back(i);
        }
        std::vector<session_key> got;
        for (const auto& d : match_all(idx, c.topic))
            got.push_back(d.session);
        EXPECT_EQ(got, expected) << c.topic;  // non-shared deliveries are ordered by session
    }
}

// --- Subscribe / deliveries -----------------------------------------------------------

TEST(topic_index, subscribe_reports_existing_and_replaces_options) {
    topic_index idx;
    EXPECT_FALSE(idx.subscribe("a/b", 1, {.qos = 0, .subscription_id = 5}));
    EXPECT_TRUE(idx.subscribe("a/b", 1, {.qos = 2, .subscription_id = 9}));
    EXPECT_EQ(idx.subscription_count(), 1u);
    const auto out = match_all(idx, "a/b");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].qos, 2);
    EXPECT_EQ(ids_of(out[0]), (std::vector<uint32_t>{9}));
    // Same filter, another session: new.
    EXPECT_FALSE(idx.subscribe("a/b", 2, {}));
    // Shared and plain subscriptions to the same filter are distinct.
    EXPECT_FALSE(idx.subscribe("$share/g/a/b", 1, {}));
    EXPECT_TRUE(idx.subscribe("$share/g/a/b", 1, {.qos = 1}));
    EXPECT_FALSE(idx.subscribe("$share/h/a/b", 1, {}));
    EXPECT_EQ(idx.subscription_count(), 4u);
    EXPECT_EQ(idx.session_count(), 2u);
}

TEST(topic_index, overlapping_subscriptions_merge_into_one_delivery) {
    topic_index idx;
    (void)idx.subscribe("a/b/c", 1, {.qos = 0, .subscription_id = 1});
    (void)idx.subscribe("a/+/c", 1, {.qos = 2, .subscription_id = 2});
    (void)idx.subscribe("a/#", 1, {.qos = 1, .retain_as_published = true});  // no id
    (void)idx.subscribe("#", 1, {.qos = 0, .subscription_id = 4});
    (void)idx.subscribe("a/b/+", 2, {.qos = 1, .subscription_id = 7});
    (void)idx.subscribe("x/#", 3, {.qos = 2});

    const auto out = match_all(idx, "a/b/c");
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].session, 1u);
    EXPECT_EQ(out[0].qos, 2);
    EXPECT_TRUE(out[0].retain_as_published);
    EXPECT_FALSE(out[0].shared);
    EXPECT_EQ(ids_of(out[0]), (std::vector<uint32_t>{1, 2, 4}));
    EXPECT_EQ(out[1].session, 2u);
    EXPECT_EQ(out[1].qos, 1);
    EXPECT_FALSE(out[1].retain_as_published);
    EXPECT_EQ(ids_of(out[1]), (std::vector<uint32_t>{7}));
}

TEST(topic_index, many_subscription_ids_spill_out_of_line) {
    topic_index idx;
    const char* filters[] = {"#", "a/#", "a/b/#", "a/b/c/#", "a/b/c", "+/b/c", "a/+/c", "a/b/+", "+/+/+"};
    uint32_t id = 1;
    for (const char* f : filters)
        (void)idx.subscribe(f, 3, {.subscription_id = id++});
    const auto out = match_all(idx, "a/b/c");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].subscription_ids.size(), 9u);
    EXPECT_EQ(ids_of(out[0]), (std::vector<uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
    auto copy = out[0].subscription_ids;  // copies stay independent
    copy.push_back(10);
    EXPECT_EQ(copy.size(), 10u);
    EXPECT_EQ(copy[9], 10u);
    EXPECT_EQ(out[0].subscription_ids.size(), 9u);
}

TEST(topic_index, no_local_skips_only_the_publishers_own_subscriptions) {
    topic_index idx;
    (void)idx.subscribe("chat/#", 1, {.qos = 1, .no_local = true, .subscription_id = 11});
    (void)idx.subscribe("chat/room", 1, {.qos = 0, .subscription_id = 12});
    (void)idx.subscribe("chat/#", 2, {.qos = 1, .no_local = true});

    auto out = match_all(idx, "chat/room", 1);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].session, 1u);
    EXPECT_EQ(out[0].qos, 0);  // only the local-allowed subscription counts
    EXPECT_EQ(ids_of(out[0]), (std::vector<uint32_t>{12}));
    EXPECT_EQ(out[1].session, 2u);

    out = match_all(idx, "chat/other", 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].session, 2u);

    out = match_all(idx, "chat/other", 3);
    ASSERT_EQ(out.size(), 2u);
}

TEST(topic_index, output_vector_is_cleared_first) {
    topic_index idx;
    (void)idx.subscribe("a", 1, {});
    std::vector<delivery> out(3);
    idx.match("b", no_session, out);
    EXPECT_TRUE(out.empty());
    idx.match("a", no_session, out);
    EXPECT_EQ(out.size(), 1u);
}

// --- Shared subscriptions -----------------------------------------------------------

std::vector<session_key> shared_receivers(topic_index& idx, std::string_view topic, int rounds,
                                          const std::set<session_key>& online) {
    std::vector<session_key> got;
    std::vector<delivery> out;
    for (int i = 0; i < rounds; ++i) {
        idx.match(topic, no_session, out, [&](session_key s) { return online.count(s) != 0; });
        for (const auto& d : out) {
            if (d.shared) got.push_back(d.session);
        }
    }
    return got;
}

TEST(shared_subscriptions, round_robin_over_members) {
    topic_index idx;
    for (session_key s : {10, 20, 30})
        (void)idx.subscribe("$share/workers/jobs/+", s, {.qos = 1});
    const auto got = shared_receivers(idx, "jobs/build", 6, {10, 20, 30});
    EXPECT_EQ(got, (std::vector<session_key>{10, 20, 30, 10, 20, 30}));
}

TEST(shared_subscriptions, prefers_available_members) {
    topic_index idx;
    for (session_key s : {10, 20, 30})
        (void)idx.subscribe("$share/workers/jobs/#", s, {});
    EXPECT_EQ(shared_receivers(idx, "jobs/x", 4, {20}), (std::vector<session_key>{20, 20, 20, 20}));
    EXPECT_EQ(shared_receivers(idx, "jobs/x", 4, {10, 30}), (std::vector<session_key>{30, 10, 30, 10}));
    // Nobody online: still exactly one member per message, rotating.
    const auto got = shared_receivers(idx, "jobs/x", 6, {});
    ASSERT_EQ(got.size(), 6u);
    EXPECT_EQ(std::set<session_key>(got.begin(), got.end()), (std::set<session_key>{10, 20, 30}));
}

// In a cluster (docs/cluster.md) a message is routed once without the groups, and once
// per group with only that group's members.
TEST(shared_subscriptions, scope_leaves_out_the_groups_or_keeps_only_one) {
    topic_index idx;
    (void)idx.subscribe("jobs/#", 1, {.qos = 1});
    for (session_key s : {10, 20})
        (void)idx.subscribe("$share/workers/jobs/#", s, {.qos = 1});
    (void)idx.subscribe("$share/audit/jobs/#", 30, {});
    (void)idx.subscribe("$share/workers/jobs/+", 40, {});  // same group name, another filter
    auto all = [](session_key) { return true; };
    std::vector<delivery> out;
    idx.match("jobs/x", no_session, out, all, {shared_scope::kind::no_group, {}, {}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].session, 1u);
    EXPECT_FALSE(out[0].shared);
    std::vector<session_key> got;
    for (int i = 0; i < 4; ++i) {
        idx.match("jobs/x", no_session, out, all, {shared_scope::kind::one_group, "workers", "jobs/#"});
        ASSERT_EQ(out.size(), 1u);
        EXPECT_TRUE(out[0].shared);
        got.push_back(out[0].session);
    }
    EXPECT_EQ(got, (std::vector<session_key>{10, 20, 10, 20}));
    idx.match("jobs/x", no_session, out, all, {shared_scope::kind::one_group, "audit", "jobs/#"});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].session, 30u);
    idx.match("jobs/x", no_session, out, all, {shared_scope::kind::one_group, "nobody", "jobs/#"});
    EXPECT_TRUE(out.empty());
    idx.match("jobs/x", no_session, out, all, {shared_scope::kind::one_group, "workers", "other/#"});
    EXPECT_TRUE(out.empty());
    idx.match("jobs/x", no_session, out, all);  // the default: every group, as on one node
    EXPECT_EQ(out.size(), 4u);
}

TEST(shared_subscriptions, one_delivery_per_matching_group_and_filter) {
    topic_index idx;
    (void)idx.subscribe("$share/g1/s/+", 1, {.qos = 1, .subscription_id = 3});
    (void)idx.subscribe("$share/g1/s/+", 2, {.qos = 1});
    (void)idx.subscribe("$share/g2/s/+", 3, {.qos = 2});
    (void)idx.subscribe("$share/g1/s/#", 4, {});  // same group name, another filter: another subscription
    (void)idx.subscribe("s/+", 1, {.qos = 0, .subscription_id = 8});  // plain, same session as a member
    (void)idx.subscribe("$share/g3/other", 5, {});

    std::vector<delivery> out;
    idx.match("s/t", no_session, out);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_FALSE(out[0].shared);
    EXPECT_EQ(out[0].session, 1u);
    EXPECT_EQ(ids_of(out[0]), (std::vector<uint32_t>{8}));
    std::multiset<session_key> shared;
    for (size_t i = 1; i < out.size(); ++i) {
        EXPECT_TRUE(out[i].shared);
        shared.insert(out[i].session);
        if (out[i].session == 1) {
            EXPECT_EQ(ids_of(out[i]), (std::vector<uint32_t>{3}));
            EXPECT_EQ(out[i].qos, 1);
        }
        if (out[i].session == 3) {
            EXPECT_EQ(out[i].qos, 2);
        }
    }
    EXPECT_EQ(shared.count(3), 1u);
    EXPECT_EQ(shared.count(4), 1u);
    EXPECT_EQ(shared.count(1) + shared.count(2), 1u);
}

TEST(shared_subscriptions, membership_changes_keep_rotation_valid) {
    topic_index idx;
    for (session_key s = 1; s <= 4; ++s)
        (void)idx.subscribe("$share/g/t", s, {});
    (void)shared_receivers(idx, "t", 3, {1, 2, 3, 4});
    EXPECT_TRUE(idx.unsubscribe("$share/g/t", 4));
    EXPECT_TRUE(idx.unsubscribe("$share/g/t", 2));
    const auto got = shared_receivers(idx, "t", 4, {1, 2, 3, 4});
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(std::count(got.begin(), got.end(), 1u), 2);
    EXPECT_EQ(std::count(got.begin(), got.end(), 3u), 2);
    idx.remove_session(1);
    idx.remove_session(3);
    EXPECT_TRUE(shared_receivers(idx, "t", 2, {}).empty());
    EXPECT_EQ(idx.node_count(), 0u);
}

TEST(shared_subscriptions, dollar_rule_applies_to_the_inner_filter) {
    topic_index idx;
    (void)idx.subscribe("$share/g/#", 1, {});
    (void)idx.subscribe("$share/g/$SYS/#", 2, {});
    auto out = match_all(idx, "$SYS/x");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].session, 2u);
    out = match_all(idx, "plain");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].session, 1u);
}

// --- Removal and cleanup ------------------------------------------------------------

TEST(topic_index, unsubscribe_frees_trie_nodes) {
    topic_index idx;
    EXPECT_FALSE(idx.unsubscribe("a/b", 1));    // nothing there
    EXPECT_FALSE(idx.unsubscribe("a/#/b", 1));  // invalid never exists
    (void)idx.subscribe("a/b/c/d", 1, {});
    (void)idx.subscribe("a/b/+/#", 1, {});
    (void)idx.subscribe("a/b", 2, {});
    (void)idx.subscribe("$share/g/a/b/c/d", 3, {});
    EXPECT_EQ(idx.node_count(), 6u);                       // a, b, c, d, +, #
    EXPECT_FALSE(idx.unsubscribe("a/b/c/d", 2));           // another session's
    EXPECT_FALSE(idx.unsubscribe("$share/h/a/b/c/d", 3));  // another group
    EXPECT_TRUE(idx.unsubscribe("a/b/c/d", 1));
    EXPECT_FALSE(idx.unsubscribe("a/b/c/d", 1));
    EXPECT_EQ(idx.node_count(), 6u);  // the shared group still needs a/b/c/d
    EXPECT_TRUE(idx.unsubscribe("$share/g/a/b/c/d", 3));
    EXPECT_EQ(idx.node_count(), 4u);  // a, b, +, #
    EXPECT_TRUE(idx.unsubscribe("a/b/+/#", 1));
    EXPECT_EQ(idx.node_count(), 2u);
    EXPECT_TRUE(idx.unsubscribe("a/b", 2));
    EXPECT_EQ(idx.node_count(), 0u);
    EXPECT_EQ(idx.subscription_count(), 0u);
    EXPECT_EQ(idx.session_count(), 0u);
    EXPECT_TRUE(match_all(idx, "a/b/c/d").empty());
}

TEST(topic_index, remove_session_drops_everything_it_owned) {
    topic_index idx;
    const char* filters[] = {"a/b", "a/+", "#", "+/+/x", "$share/g/a/b", "$share/h/#", "/", "$SYS/#"};
    for (const char* f : filters) {
        (void)idx.subscribe(f, 1, {});
        (void)idx.subscribe(f, 2, {});
    }
    EXPECT_EQ(idx.subscription_count(), 16u);
    idx.remove_session(1);
    EXPECT_EQ(idx.subscription_count(), 8u);
    EXPECT_EQ(idx.session_count(), 1u);
    for (const auto& d : match_all(idx, "a/b"))
        EXPECT_EQ(d.session, 2u);
    EXPECT_EQ(match_all(idx, "a/b").size(), 3u);  // plain, $share/g, $share/h
    idx.remove_session(1);                        // idempotent
    idx.remove_session(2);
    EXPECT_EQ(idx.subscription_count(), 0u);
    EXPECT_EQ(idx.session_count(), 0u);
    EXPECT_EQ(idx.node_count(), 0u);
}

TEST(topic_index, move_keeps_the_subscriptions) {
    topic_index a;
    (void)a.subscribe("x/+", 1, {});
    topic_index b = std::move(a);
    EXPECT_EQ(match_all(b, "x/y").size(), 1u);
    EXPECT_TRUE(b.unsubscribe("x/+", 1));
    EXPECT_EQ(b.node_count(), 0u);
}

// --- Scale --------------------------------------------------------------------------

TEST(topic_index, hundred_thousand_subscriptions) {
    topic_index idx;
    constexpr session_key sessions = 25000;
    for (session_key s = 0; s < sessions; ++s) {
        const std::string dev = "site/" + std::to_string(s % 10) + "/dev" + std::to_string(s);
        (void)idx.subscribe(dev + "/cmd", s, {.qos = 1});
        (void)idx.subscribe(dev + "/+/set", s, {.qos = 1});
        (void)idx.subscribe("site/" + std::to_string(s % 10) + "/+/broadcast", s, {});
        (void)idx.subscribe("$share/ingest/site/+/dev" + std::to_string(s % 100) + "/#", s, {});
    }
    EXPECT_EQ(idx.subscription_count(), 100000u);
    std::vector<delivery> out;
    idx.match("site/3/dev3/cmd", no_session, out);
    ASSERT_EQ(out.size(), 2u);  // the device itself + one ingest member
    EXPECT_EQ(out[0].session, 3u);
    EXPECT_TRUE(out[1].shared);
    idx.match("site/7/anything/broadcast", no_session, out);
    EXPECT_EQ(out.size(), sessions / 10);
    for (session_key s = 0; s < sessions; ++s)
        idx.remove_session(s);
    EXPECT_EQ(idx.subscription_count(), 0u);
    EXPECT_EQ(idx.node_count(), 0u);
}

TEST(topic_index, deepest_topics_do_not_exhaust_the_stack) {
    // A 65535-byte topic of slashes has 65536 levels: matching, pruning and destroying
    // such a trie must not recurse per level (a peer could crash the loop otherwise).
    const std::string deep(65535, '/');
    std::string wild;
    for (int i = 0; i < 32767; ++i)
        wild += "+/";
    wild += '#';
    std::vector<delivery> out;
    {
        topic_index idx;
        (void)idx.subscribe(deep, 1, {});
        (void)idx.subscribe(wild, 2, {});
        (void)idx.subscribe("$share/g/" + std::string(65535 - 9, '/'), 3, {});
        idx.match(deep, no_session, out);
        ASSERT_EQ(out.size(), 2u);
        EXPECT_EQ(out[0].session, 1u);
        EXPECT_EQ(out[1].session, 2u);
        EXPECT_EQ(idx.node_count(), 65536u + 32768u);
        EXPECT_TRUE(idx.unsubscribe(deep, 1));
        EXPECT_EQ(idx.node_count(), 32768u + 65536u - 9u);  // the shared filter keeps its path
    }                                                       // destroyed with subscriptions still in place
    topic_index a;
    (void)a.subscribe(deep, 1, {});
    topic_index b;
    (void)b.subscribe(deep, 2, {});
    b = std::move(a);  // the old trie of b is freed iteratively too
    b.match(deep, no_session, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].session, 1u);
}

// --- No allocation in the steady state ------------------------------------------------

TEST(topic_index, steady_state_match_does_not_allocate) {
    topic_index idx;
    for (session_key s = 0; s < 200; ++s) {
        (void)idx.subscribe("f/" + std::to_string(s) + "/#", s, {.subscription_id = static_cast<uint32_t>(s + 1)});
        (void)idx.subscribe("f/+/x", s, {.qos = 2, .subscription_id = 1000});
        (void)idx.subscribe("$share/g/f/#", s, {});
    }
    std::vector<delivery> out;
    const std::string topics[] = {"f/7/x", "f/150/x/y", "f/none", "g"};
    for (const auto& t : topics)
        idx.match(t, no_session, out);  // warm the scratch buffers
    out.reserve(512);
    const long before = g_allocations.load();
    for (int round = 0; round < 100; ++round) {
        for (const auto& t : topics)
            idx.match(t, 3, out, [](session_key s) { return s % 2 == 0; });
    }
    EXPECT_EQ(g_allocations.load() - before, 0);
    idx.match("f/7/x", no_session, out);
    EXPECT_EQ(out.size(), 201u);  // 200 via f/+/x (+ f/7/# merged) + one shared
}

// --- Randomized comparison with the reference matcher ------------------------------

TEST(topic_index, randomized_against_reference) {
    std::mt19937 rng(20240601);
    const char* levels[] = {"a", "b", "c", "", "$x", "+", "#"};
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    auto random_filter = [&] {
        std::string f;
        const size_t depth = 1 + pick(4);
        for (size_t i = 0; i < depth; ++i) {
            if (i) f += '/';
            const char* l = levels[pick(std::size(levels))];
            if (std::string_view(l) == "#" && i + 1 != depth) l = "+";
            f += l;
        }
        return f.empty() ? std::string("#") : f;  // "" is not a filter
    };
    auto random_topic = [&] {
        std::string t;
        const size_t depth = 1 + pick(5);
        for (size_t i = 0; i < depth; ++i) {
            if (i) t += '/';
            t += levels[pick(5)];  // no wildcards in names
        }
        return t.empty() ? std::string("/") : t;  // "" is not a topic name
    };

    // Reference model: (filter, session) -> options, plain subscriptions only here;
    // shared ones are checked for membership and one-per-group.
    std::map<std::pair<std::string, session_key>, sub_options> model;
    std::map<std::pair<std::string, std::string>, std::set<session_key>> groups;  // (group, filter) -> members
    topic_index idx;
    std::vector<delivery> out;
    size_t matches_with_plain = 0, matches_with_shared = 0;  // the run must exercise both
    for (int step = 0; step < 20000; ++step) {
        const size_t op = pick(10);
        const session_key s = pick(8);
        if (op < 4) {
            const std::string f = random_filter();
            sub_options o{.qos = static_cast<uint8_t>(pick(3)),
                          .no_local = pick(4) == 0,
                          .retain_as_published = pick(2) == 0,
                          .subscription_id = static_cast<uint32_t>(pick(4))};
            if (pick(5) == 0) {
                const std::string g = pick(2) ? "g1" : "g2";
                o.no_local = false;
                const bool existed = groups[{g, f}].count(s) != 0;
                EXPECT_EQ(idx.subscribe(shared_filter(g, f), s, o), existed);
                groups[{g, f}].insert(s);
            } else {
                const bool existed = model.count({f, s}) != 0;
                EXPECT_EQ(idx.subscribe(f, s, o), existed);
                model[{f, s}] = o;
            }
        } else if (op < 6) {
            const std::string f = random_filter();
            if (pick(4) == 0) {
                const std::string g = pick(2) ? "g1" : "g2";
                const bool existed = groups[std::make_pair(g, f)].erase(s) != 0;
                EXPECT_EQ(idx.unsubscribe(shared_filter(g, f), s), existed);
            } else {
                EXPECT_EQ(idx.unsubscribe(f, s), model.erase({f, s}) != 0);
            }
        } else if (op == 6) {
            idx.remove_session(s);
            for (auto it = model.begin(); it != model.end();)
                it = it->first.second == s ? model.erase(it) : std::next(it);
            for (auto& [key, members] : groups)
                members.erase(s);
        } else {
            const std::string t = random_topic();
            const session_key publisher = pick(10);
            idx.match(t, publisher, out, [](session_key k) { return k % 3 != 0; });

            std::map<session_key, std::tuple<uint8_t, bool, std::vector<uint32_t>>> expected;
            for (const auto& [key, o] : model) {
                if (!mqtt::topic_matches(key.first, t) || (o.no_local && key.second == publisher)) continue;
                auto [it, fresh] =
                    expected.try_emplace(key.second, o.qos, o.retain_as_published, std::vector<uint32_t>{});
                auto& [qos, rap, ids] = it->second;
                if (!fresh) {
                    qos = std::max(qos, o.qos);
                    rap = rap || o.retain_as_published;
                }
                if (o.subscription_id) ids.push_back(o.subscription_id);
            }
            auto available = [](session_key k) { return k % 3 != 0; };
            size_t expected_shared = 0;
            std::set<session_key> eligible;  // members of matching groups
            bool every_group_has_an_available_member = true;
            for (const auto& [key, members] : groups) {
                if (members.empty() || !mqtt::topic_matches(key.second, t)) continue;
                ++expected_shared;
                eligible.insert(members.begin(), members.end());
                if (std::none_of(members.begin(), members.end(), available))
                    every_group_has_an_available_member = false;
            }
            size_t plain = 0, shared = 0;
            for (const auto& d : out) {
                if (d.shared) {
                    ++shared;
                    EXPECT_EQ(eligible.count(d.session), 1u) << t;
                    if (every_group_has_an_available_member) {
                        EXPECT_TRUE(available(d.session)) << t;
                    }
                    continue;
                }
                ++plain;
                auto it = expected.find(d.session);
                ASSERT_NE(it, expected.end()) << t << " delivered to " << d.session;
                auto ids = std::get<2>(it->second);
                std::sort(ids.begin(), ids.end());
                EXPECT_EQ(d.qos, std::get<0>(it->second)) << t;
                EXPECT_EQ(d.retain_as_published, std::get<1>(it->second)) << t;
                EXPECT_EQ(ids_of(d), ids) << t;
            }
            EXPECT_EQ(plain, expected.size()) << t;
            EXPECT_EQ(shared, expected_shared) << t;
            matches_with_plain += plain != 0;
            matches_with_shared += shared != 0;
        }
        size_t total = model.size();
        for (const auto& [key, members] : groups)
            total += members.size();
        ASSERT_EQ(idx.subscription_count(), total);
    }
    EXPECT_GT(matches_with_plain, 1000u);
    EXPECT_GT(matches_with_shared, 300u);
    for (session_key s = 0; s < 8; ++s)
        idx.remove_session(s);
    EXPECT_EQ(idx.node_count(), 0u);
}

}  // namespace
}  // namespace sluice::broker
