// SPDX-License-Identifier: Apache-2.0
//
// Trie behind the subscription index (see topic_index.h for the contract). The trie
// shape, the position map that makes unsubscribe O(1) and the pruning that keeps
// node_count() honest are private to this file.
#include "broker/topic_index.h"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "mqtt/topic.h"

namespace sluice::broker {

namespace {

constexpr size_t npos = std::string_view::npos;

// Heterogeneous hashing so a string_view level finds a std::string key uncopied.
struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// A SUBSCRIBE filter split into its share name (empty when not shared) and plain filter.
struct split_filter {
    std::string_view share_name;
    std::string_view filter;
};
split_filter split(std::string_view filter) {
    if (auto shared = mqtt::parse_shared(filter)) return {shared->group, shared->filter};
    return {{}, filter};
}

}  // namespace

struct topic_index::shared_group {
    std::string name;
    std::vector<subscriber> members;
    size_t next = 0;  // round-robin cursor: the member to try first
};

struct topic_index::node {
    enum class kind : uint8_t { root, literal, plus, hash };

    node(node* p, kind k, std::string_view l) : parent(p), type(k), level(l) {}

    bool empty() const noexcept { return children.empty() && !plus && !hash && subs.empty() && groups.empty(); }

    node* parent;
    kind type;
    std::string level;  // key in the parent's children (literal nodes only)
    std::unordered_map<std::string, std::unique_ptr<node>, string_hash, std::equal_to<>> children;
    std::unique_ptr<node> plus;
    std::unique_ptr<node> hash;  // never has children: '#' is always the last level
    std::vector<subscriber> subs;
    std::vector<std::unique_ptr<shared_group>> groups;  // few per filter: searched linearly
};

size_t topic_index::slot_hash::operator()(const slot_key& k) const noexcept {
    const size_t a = std::hash<const void*>{}(k.container);
    const size_t b = std::hash<session_key>{}(k.session);
    return a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
}

namespace {

// Frees a trie without recursion (a chain of unique_ptr destructors would recurse once
// per level). Works for any node type with children/plus/hash members.
template <typename Node>
void destroy_trie(std::unique_ptr<Node> root) {
    std::vector<std::unique_ptr<Node>> pending;
    if (root) pending.push_back(std::move(root));
    while (!pending.empty()) {
        std::unique_ptr<Node> n = std::move(pending.back());
        pending.pop_back();
        for (auto& [level, child] : n->children)
            pending.push_back(std::move(child));
        if (n->plus) pending.push_back(std::move(n->plus));
        if (n->hash) pending.push_back(std::move(n->hash));
    }  // each n is destroyed here with no live children
}

}  // namespace

topic_index::topic_index() : root_(std::make_unique<node>(nullptr, node::kind::root, "")) {}
topic_index::~topic_index() {
    destroy_trie(std::move(root_));
}
topic_index::topic_index(topic_index&&) noexcept = default;
topic_index& topic_index::operator=(topic_index&& other) noexcept {
    if (this != &other) {
        destroy_trie(std::move(root_));
        root_ = std::move(other.root_);
        node_count_ = std::exchange(other.node_count_, 0);
        slots_ = std::move(other.slots_);
        sessions_ = std::move(other.sessions_);
        hits_ = std::move(other.hits_);
        groups_hit_ = std::move(other.groups_hit_);
        walk_ = std::move(other.walk_);
    }
    return *this;
}

topic_index::node* topic_index::find_node(std::string_view filter) const {
    node* n = root_.get();
    size_t pos = 0;
    while (pos != npos && n != nullptr) {
        size_t next = 0;
        const std::string_view level = mqtt::topic_level(filter, pos, next);
        if (level == "+") {
            n = n->plus.get();
        } else if (level == "#") {
            n = n->hash.get();
        } else {
            auto it = n->children.find(level);
            n = it == n->children.end() ? nullptr : it->second.get();
        }
        pos = next;
    }
    return n;
}

topic_index::node* topic_index::find_or_create_node(std::string_view filter) {
    node* n = root_.get();
    size_t pos = 0;
    while (pos != npos) {
        size_t next = 0;
        const std::string_view level = mqtt::topic_level(filter, pos, next);
        std::unique_ptr<node>* slot = nullptr;
        node::kind k = node::kind::literal;
        if (level == "+") {
            slot = &n->plus;
            k = node::kind::plus;
        } else if (level == "#") {
            slot = &n->hash;
            k = node::kind::hash;
        } else {
            auto it = n->children.find(level);
            if (it == n->children.end()) {
                it = n->children.emplace(std::string(level), nullptr).first;
            }
            slot = &it->second;
        }
        if (!*slot) {
            *slot = std::make_unique<node>(n, k, k == node::kind::literal ? level : std::string_view{});
            ++node_count_;
        }
        n = slot->get();
        pos = next;
    }
    return n;
}

bool topic_index::subscribe(std::string_view filter, session_key s, const sub_options& o) {
    SLUICE_CHECK(mqtt::valid_topic_filter(filter), "subscribe with an invalid topic filter (%zu bytes)", filter.size());
    const split_filter parsed = split(filter);
    node* n = find_or_create_node(parsed.filter);
    shared_group* g = nullptr;
    std::vector<subscriber>* list = &n->subs;
    if (!parsed.share_name.empty()) {
        auto it = std::find_if(n->groups.begin(), n->groups.end(),
                               [&](const auto& grp) { return grp->name == parsed.share_name; });
        if (it == n->groups.end()) {
            auto fresh = std::make_unique<shared_group>();
            fresh->name = std::string(parsed.share_name);
            n->groups.push_back(std::move(fresh));
            it = std::prev(n->groups.end());
        }
        g = it->get();
        list = &g->members;
    }
    const void* container = g != nullptr ? static_cast<const void*>(g) : static_cast<const void*>(n);
    auto [slot, inserted] = slots_.try_emplace(slot_key{container, s}, list->size());
    if (!inserted) {
        (*list)[slot->second].options = o;  // MQTT 5.0 §3.8.4: replace, keep the subscription
        return true;
    }
    list->push_back(subscriber{s, o});
    sessions_[s].push_back(sub_ref{n, g});
    return false;
}

bool topic_index::remove_subscriber(node* where, shared_group* group, session_key s) {
    const void* container = group != nullptr ? static_cast<const void*>(group) : static_cast<const void*>(where);
    auto slot = slots_.find(slot_key{container, s});
    if (slot == slots_.end()) return false;
    std::vector<subscriber>& list = group != nullptr ? group->members : where->subs;
    const size_t index = slot->second;
    slots_.erase(slot);
    SLUICE_CHECK(index < list.size() && list[index].session == s, "topic index slot map out of sync");
    if (index + 1 != list.size()) {
        list[index] = list.back();
        slots_[slot_key{container, list[index].session}] = index;
    }
    list.pop_back();
    if (group != nullptr && group->next >= list.size()) group->next = 0;
    return true;
}

void topic_index::prune(node* where, shared_group* group) {
    if (group != nullptr && group->members.empty()) {
        auto it =
            std::find_if(where->groups.begin(), where->groups.end(), [&](const auto& g) { return g.get() == group; });
        SLUICE_CHECK(it != where->groups.end(), "shared group not found in its node");
        where->groups.erase(it);
    }
    node* n = where;
    while (n->type != node::kind::root && n->empty()) {
        node* parent = n->parent;
        switch (n->type) {
            case node::kind::plus:
                parent->plus.reset();
                break;
            case node::kind::hash:
                parent->hash.reset();
                break;
            case node::kind::literal: {
                auto it = parent->children.find(std::string_view(n->level));
                SLUICE_CHECK(it != parent->children.end(), "trie node missing from its parent");
                parent->children.erase(it);
                break;
            }
            case node::kind::root:
                break;
        }
        --node_count_;
        n = parent;
    }
}

bool topic_index::unsubscribe(std::string_view filter, session_key s) {
    if (!mqtt::valid_topic_filter(filter)) return false;
    const split_filter parsed = split(filter);
    node* n = find_node(parsed.filter);
    if (n == nullptr) return false;
    shared_group* g = nullptr;
    if (!parsed.share_name.empty()) {
        auto it = std::find_if(n->groups.begin(), n->groups.end(),
                               [&](const auto& grp) { return grp->name == parsed.share_name; });
        if (it == n->groups.end()) return false;
        g = it->get();
    }
    if (!remove_subscriber(n, g, s)) return false;
    auto sess = sessions_.find(s);
    SLUICE_CHECK(sess != sessions_.end(), "subscription of an unknown session");
    auto& refs = sess->second;
    auto ref = std::find_if(refs.begin(), refs.end(), [&](const sub_ref& r) { return r.where == n && r.group == g; });
    SLUICE_CHECK(ref != refs.end(), "subscription missing from its session's list");
    *ref = refs.back();
    refs.pop_back();
    if (refs.empty()) sessions_.erase(sess);
    prune(n, g);
    return true;
}

void topic_index::remove_session(session_key s) {
    auto sess = sessions_.find(s);
    if (sess == sessions_.end()) return;
    const std::vector<sub_ref> refs = std::move(sess->second);
    sessions_.erase(sess);
    for (const sub_ref& r : refs) {
        const bool removed = remove_subscriber(r.where, r.group, s);
        SLUICE_CHECK(removed, "session list names a subscription the index lacks");
        // Safe: a node or group that another of s's refs points to still holds s, so
        // it is not empty and this prune cannot free it.
        prune(r.where, r.group);
    }
}

void topic_index::add_hits(node& n) {
    for (const subscriber& sub : n.subs) {
        if (sub.options.no_local && sub.session == publisher_) continue;
        hits_.push_back(hit{sub.session, &sub.options});
    }
    for (auto& g : n.groups)
        groups_hit_.push_back(g.get());
}

void topic_index::collect(std::string_view topic) {
    // Depth-first over an explicit stack: a 64 KiB topic has 65536 levels, and a peer
    // must not be able to overflow an event loop's stack with one.
    walk_.clear();
    walk_.push_back(walk_frame{root_.get(), 0, true});
    while (!walk_.empty()) {
        const walk_frame f = walk_.back();
        walk_.pop_back();
        node& n = *f.n;
        const bool wildcards_allowed = !(f.at_root && dollar_topic_);  // MQTT 5.0 §4.7.2
        if (n.hash && wildcards_allowed) add_hits(*n.hash);            // '#' also matches the parent level
        if (f.pos == npos) {
            add_hits(n);
            continue;
        }
        size_t next = 0;
        const std::string_view level = mqtt::topic_level(topic, f.pos, next);
        if (n.plus && wildcards_allowed) walk_.push_back(walk_frame{n.plus.get(), next, false});
        if (!n.children.empty()) {
            auto it = n.children.find(level);
            if (it != n.children.end()) walk_.push_back(walk_frame{it->second.get(), next, false});
        }
    }
}

void topic_index::match_impl(std::string_view topic, session_key publisher, std::vector<delivery>& out,
                             availability avail, const shared_scope& scope) {
    SLUICE_ASSERT(mqtt::valid_topic_name(topic), "match on an invalid topic name");
    out.clear();
    hits_.clear();
    groups_hit_.clear();
    if (scope.which == shared_scope::kind::one_group) {
        node* n = find_node(scope.filter);
        if (n == nullptr) return;
        auto it = std::find_if(n->groups.begin(), n->groups.end(),
                               [&](const auto& grp) { return grp->name == scope.share_name; });
        if (it != n->groups.end()) pick_member(**it, publisher, out, avail);
        return;
    }
    dollar_topic_ = !topic.empty() && topic.front() == '$';
    publisher_ = publisher;
    collect(topic);

    std::sort(hits_.begin(), hits_.end(), [](const hit& a, const hit& b) { return a.session < b.session; });
    for (const hit& h : hits_) {
        if (out.empty() || out.back().session != h.session) {
            delivery& d = out.emplace_back();
            d.session = h.session;
            d.qos = h.options->qos;
            d.retain_as_published = h.options->retain_as_published;
            d.durable = h.options->durable;
        } else {
            delivery& d = out.back();
            d.qos = std::max(d.qos, h.options->qos);
            d.retain_as_published = d.retain_as_published || h.options->retain_as_published;
            d.durable = d.durable || h.options->durable;
        }
        if (h.options->subscription_id != 0) out.back().subscription_ids.push_back(h.options->subscription_id);
    }

    if (scope.which == shared_scope::kind::no_group) return;
    for (shared_group* g : groups_hit_)
        pick_member(*g, publisher, out, avail);
}

void topic_index::pick_member(shared_group& g, session_key publisher, std::vector<delivery>& out, availability avail) {
    const size_t n = g.members.size();
    SLUICE_ASSERT(n > 0, "empty shared group left in the trie");
    size_t pick = npos;
    size_t fallback = npos;
    for (size_t k = 0; k < n; ++k) {
        const size_t i = (g.next + k) % n;
        const subscriber& m = g.members[i];
        if (m.options.no_local && m.session == publisher) continue;
        if (avail.call(avail.ctx, m.session)) {
            pick = i;
            break;
        }
        if (fallback == npos) fallback = i;
    }
    if (pick == npos) pick = fallback;
    if (pick == npos) return;
    g.next = (pick + 1) % n;
    const subscriber& m = g.members[pick];
    delivery& d = out.emplace_back();
    d.session = m.session;
    d.qos = m.options.qos;
    d.retain_as_published = m.options.retain_as_published;
    d.durable = m.options.durable;
    d.shared = true;
    if (m.options.subscription_id != 0) d.subscription_ids.push_back(m.options.subscription_id);
}

}  // namespace sluice::broker
