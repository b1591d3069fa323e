// SPDX-License-Identifier: Apache-2.0
//
// The subscription index: given the topic of a PUBLISH, which sessions receive it, at
// which QoS, with which subscription identifiers, and which member of each shared
// subscription group takes it. It sits on the hot path of every PUBLISH, so it is a
// trie of topic levels (hashed literal children, '+' and '#' children kept apart) that
// is walked with string_views into the topic: matching copies nothing and, once its
// scratch buffers have grown, allocates nothing. Matching rules are MQTT 5.0 §4.7
// (wildcards, '$'-topics) and §4.8.2 (shared subscriptions).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "base/assert.h"

namespace sluice::broker {

using session_key = uint64_t;  // opaque to the index
// A publisher key that no session uses (messages injected by the broker itself).
inline constexpr session_key no_session = ~session_key{0};

// The rules for topic names and filters, shared subscriptions and matching are
// mqtt/topic.h's: the index keeps its own trie walk, not its own rules, and its tests and
// fuzzer compare it with mqtt::topic_matches.

struct sub_options {
    uint8_t qos = 0;
    bool no_local = false;
    bool retain_as_published = false;
    uint8_t retain_handling = 0;
    uint32_t subscription_id = 0;  // 0 = none
    // Set by the broker when the subscribing session is persistent: a QoS 1/2 message
    // delivered to it must reach the durable state store before the publisher's ack.
    bool durable = false;
};

// The subscription identifiers of one delivery. The first four live inline, so the
// usual case (zero or one identifier) costs match() no allocation.
class sub_id_list {
public:
    void push_back(uint32_t id) {
        if (spill_.empty()) {
            if (size_ < inline_.size()) {
                inline_[size_++] = id;
                return;
            }
            spill_.assign(inline_.begin(), inline_.end());
        }
        spill_.push_back(id);
        ++size_;
    }
    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const uint32_t* begin() const noexcept { return spill_.empty() ? inline_.data() : spill_.data(); }
    const uint32_t* end() const noexcept { return begin() + size_; }
    uint32_t operator[](size_t i) const {
        SLUICE_ASSERT(i < size_, "sub_id_list index %zu out of range %zu", i, size_);
        return begin()[i];
    }

private:
    std::array<uint32_t, 4> inline_{};
    size_t size_ = 0;
    std::vector<uint32_t> spill_;  // all identifiers once there are more than four
};

// One per receiving session per message.
struct delivery {
    session_key session = 0;
    uint8_t qos = 0;                   // max QoS over that session's matching subscriptions
    bool retain_as_published = false;  // true if any matching subscription has it
    bool shared = false;               // chosen as a shared-subscription group member
    bool durable = false;              // true if any matching subscription is durable
    sub_id_list subscription_ids;      // all matching non-zero identifiers
};

// Which shared groups a match considers. On one node, every group that matches. In a
// cluster that balances shared subscriptions across nodes (docs/cluster.md), a message is
// first routed to the non-shared subscriptions only, and each group gets it once more,
// through that group's Kafka consumer group, addressed to it alone.
struct shared_scope {
    enum class kind : uint8_t { every_group, no_group, one_group };
    kind which = kind::every_group;
    std::string_view share_name;  // one_group: the group's name ({group} of $share/{group}/{filter})
    std::string_view filter;      // one_group: its topic filter
};

// Lifecycle and threading: one instance per event loop (each loop owns a private
// replica and applies the same subscribe/unsubscribe operations to it); no locks
// inside, every call runs on the owning loop's thread. Nothing here is durable: the
// broker persists subscriptions with the session and replays them into the index.
//
// Capacity: tested with 100k subscriptions. subscribe/unsubscribe are O(levels) plus
// expected O(1) hash operations; remove_session is O(that session's subscriptions).
class topic_index {
public:
    topic_index();
    ~topic_index();
    topic_index(topic_index&&) noexcept;
    topic_index& operator=(topic_index&&) noexcept;
    topic_index(const topic_index&) = delete;
    topic_index& operator=(const topic_index&) = delete;

    // Adds the subscription of `s` to `filter`, which may be "$share/{group}/{filter}".
    // Returns true if the same (filter, session) already existed (its options are then
    // replaced, MQTT 5.0 §3.8.4), false if it is new.
    // REQUIRES: mqtt::valid_topic_filter(filter) (the broker answers an
    // invalid filter with 0x8F before calling; a violation is a crash, not an error).
    bool subscribe(std::string_view filter, session_key s, const sub_options& o);

    // Removes the subscription; false if it did not exist (an invalid filter never
    // exists). Trie nodes left empty are freed.
    bool unsubscribe(std::string_view filter, session_key s);

    // Drops all of s's subscriptions (shared ones included).
    void remove_session(session_key s);

    // Fills `out` (cleared first) with one delivery per session whose non-shared
    // subscriptions match `topic`, deduplicated: max QoS, any retain_as_published, all
    // non-zero subscription ids. A subscription with no_local is skipped when its
    // session is `publisher`. Then, for each shared group ($share/{group}/{filter}) whose
    // filter matches, one delivery (shared = true) to exactly one member, chosen round
    // robin among the members for which `is_available(session)` is true; if none is,
    // among all members. (A shared member with no_local that is the publisher is never
    // chosen; MQTT forbids that combination anyway.) Shared deliveries are not merged
    // with non-shared ones of the same session. Non-shared deliveries come first,
    // ordered by session key.
    // `scope` narrows the shared part: no group at all, or only one (then the non-shared
    // subscriptions are not matched either: the caller knows the topic matches its filter).
    // REQUIRES: mqtt::valid_topic_name(topic). `is_available` must not touch this index.
    template <typename Available>
    void match(std::string_view topic, session_key publisher, std::vector<delivery>& out, Available&& is_available,
               const shared_scope& scope = {}) {
        using fn = std::remove_reference_t<Available>;
        if constexpr (std::is_function_v<fn>) {  // a plain function: wrap its pointer
            fn* f = &is_available;
            match(
                topic, publisher, out, [f](session_key s) { return f(s); }, scope);
        } else {
            availability avail{const_cast<void*>(static_cast<const void*>(std::addressof(is_available))),
                               [](void* ctx, session_key s) -> bool { return (*static_cast<fn*>(ctx))(s); }};
            match_impl(topic, publisher, out, avail, scope);
        }
    }
    // As above with every session available.
    void match(std::string_view topic, session_key publisher, std::vector<delivery>& out) {
        match(topic, publisher, out, [](session_key) { return true; });
    }

    // Subscriptions held (a shared membership counts as one).
    size_t subscription_count() const noexcept { return slots_.size(); }
    // Sessions with at least one subscription.
    size_t session_count() const noexcept { return sessions_.size(); }
    // Trie nodes besides the root; 0 once every subscription is gone (leak checks).
    size_t node_count() const noexcept { return node_count_; }

private:
    struct node;
    struct shared_group;
    struct subscriber {
        session_key session;
        sub_options options;
    };
    struct availability {
        void* ctx;
        bool (*call)(void*, session_key);
    };
    struct hit {
        session_key session;
        const sub_options* options;
    };
    // Where a session's subscription lives: a node's plain list, or a group of it.
    struct sub_ref {
        node* where;
        shared_group* group;  // nullptr for a non-shared subscription
    };
    struct slot_key {
        const void* container;  // the node or the shared group
        session_key session;
        bool operator==(const slot_key&) const = default;
    };
    struct slot_hash {
        size_t operator()(const slot_key& k) const noexcept;
    };

    void match_impl(std::string_view topic, session_key publisher, std::vector<delivery>& out, availability avail,
                    const shared_scope& scope);
    // Adds one delivery to a member of `g`, chosen round robin (see match()).
    void pick_member(shared_group& g, session_key publisher, std::vector<delivery>& out, availability avail);
    struct walk_frame {
        node* n;
        size_t pos;  // start of the next topic level; npos once all levels are consumed
        bool at_root;
    };
    void collect(std::string_view topic);
    void add_hits(node& n);
    node* find_node(std::string_view filter) const;
    node* find_or_create_node(std::string_view filter);
    bool remove_subscriber(node* where, shared_group* group, session_key s);
    void prune(node* where, shared_group* group);

    std::unique_ptr<node> root_;
    size_t node_count_ = 0;
    // (container, session) -> position in that container's subscriber vector.
    std::unordered_map<slot_key, size_t, slot_hash> slots_;
    std::unordered_map<session_key, std::vector<sub_ref>> sessions_;

    // match() scratch, kept between calls so the steady state does not allocate.
    bool dollar_topic_ = false;
    session_key publisher_ = no_session;
    std::vector<hit> hits_;
    std::vector<shared_group*> groups_hit_;
    std::vector<walk_frame> walk_;  // explicit stack: topic depth must not bound our stack
};

}  // namespace sluice::broker
