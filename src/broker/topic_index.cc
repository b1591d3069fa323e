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

namespace sluice::broker {

namespace {

constexpr size_t npos = std::string_view::npos;
constexpr size_t max_topic_length = 65535;
constexpr std::string_view share_prefix = "$share/";

// Heterogeneous hashing so a string_view level finds a std::string key uncopied.
struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Splits off the level starting at `pos`; `next` is the start of the following level
// or npos when this is the last one.
std::string_view level_at(std::string_view text, size_t pos, size_t& next) noexcept {
    const size_t slash = text.find('/', pos);
    if (slash == npos) {
        next = npos;
        return text.substr(pos);
    }
    next = slash + 1;
    return text.substr(pos, slash - pos);
}

}  // namespace

bool valid_topic_name(std::string_view topic) noexcept {
    if (topic.empty() || topic.size() > max_topic_length) return false;
    return topic.find_first_of(std::string_view("+#\0", 3)) == npos;
}

bool valid_topic_filter(std::string_view filter) noexcept {
    if (filter.empty() || filter.size() > max_topic_length) return false;
    if (filter.find('\0') != npos) return false;
    size_t pos = 0;
    while (pos != npos) {
        size_t next = 0;
        const std::string_view level = level_at(filter, pos, next);
        if (level.find_first_of("+#") != npos) {
            if (level.size() != 1) return false;             // "sport+" or "a#"
            if (level == "#" && next != npos) return false;  // '#' must be last
        }
        pos = next;
    }
    return true;
}

std::optional<subscription_filter> parse_subscription_filter(std::string_view filter) noexcept {
    if (filter.substr(0, share_prefix.size()) != share_prefix) {
        if (!valid_topic_filter(filter)) return std::nullopt;
        return subscription_filter{{}, filter};
    }
    const std::string_view rest = filter.substr(share_prefix.size());
    const size_t slash = rest.find('/');
    if (slash == npos) return std::nullopt;
    const std::string_view name = rest.substr(0, slash);
    const std::string_view plain = rest.substr(slash + 1);
    if (name.empty() || name.find_first_of(std::string_view("+#\0", 3)) != npos) return std::nullopt;
    if (!valid_topic_filter(plain)) return std::nullopt;
    return subscription_filter{name, plain};
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    if (!topic.empty() && topic.front() == '$' && !filter.empty() && (filter.front() == '+' || filter.front() == '#')) {
        return false;
    }
    size_t fpos = 0;
    size_t tpos = 0;
    while (fpos != npos) {
        size_t fnext = 0;
        const std::string_view flevel = level_at(filter, fpos, fnext);
        if (flevel == "#") return true;  // matches the parent level and everything below
        if (tpos == npos) return false;  // filter has more levels than the topic
        size_t tnext = 0;
        const std::string_view tlevel = level_at(topic, tpos, tnext);
        if (flevel != "+" && flevel != tlevel) return false;
        fpos = fnext;
        tpos = tnext;
    }
    return tpos == npos;
}

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
        const std::string_view level = level_at(filter, pos, next);
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
        const std::string_view level = level_at(filter, pos, next);
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
    const auto parsed = parse_subscription_filter(filter);
    SLUICE_CHECK(parsed.has_value(), "subscribe with an invalid topic filter (%zu bytes)", filter.size());
    node* n = find_or_create_node(parsed->filter);
    shared_group* g = nullptr;
    std::vector<subscriber>* list = &n->subs;
    if (parsed->shared()) {
        auto it = std::find_if(n->groups.begin(), n->groups.end(),
                               [&](const auto& grp) { return grp->name == parsed->share_name; });
        if (it == n->groups.end()) {
            auto fresh = std::make_unique<shared_group>();
            fresh->name = std::string(parsed->share_name);
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
    const auto parsed = parse_subscription_filter(filter);
    if (!parsed) return false;
    node* n = find_node(parsed->filter);
    if (n == nullptr) return false;
    shared_group* g = nullptr;
    if (parsed->shared()) {
        auto it = std::find_if(n->groups.begin(), n->groups.end(),
                               [&](const auto& grp) { return grp->name == parsed->share_name; });
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
        const std::string_view level = level_at(topic, f.pos, next);
        if (n.plus && wildcards_allowed) walk_.push_back(walk_frame{n.plus.get(), next, false});
        if (!n.children.empty()) {
            auto it = n.children.find(level);
            if (it != n.children.end()) walk_.push_back(walk_frame{it->second.get(), next, false});
        }
    }
}

void topic_index::match_impl(std::string_view topic, session_key publisher, std::vector<delivery>& out,
                             availability avail) {
    SLUICE_ASSERT(valid_topic_name(topic), "match on an invalid topic name");
    out.clear();
    hits_.clear();
    groups_hit_.clear();
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

    for (shared_group* g : groups_hit_) {
        const size_t n = g->members.size();
        SLUICE_ASSERT(n > 0, "empty shared group left in the trie");
        size_t pick = npos;
        size_t fallback = npos;
        for (size_t k = 0; k < n; ++k) {
            const size_t i = (g->next + k) % n;
            const subscriber& m = g->members[i];
            if (m.options.no_local && m.session == publisher) continue;
            if (avail.call(avail.ctx, m.session)) {
                pick = i;
                break;
            }
            if (fallback == npos) fallback = i;
        }
        if (pick == npos) pick = fallback;
        if (pick == npos) continue;
        g->next = (pick + 1) % n;
        const subscriber& m = g->members[pick];
        delivery& d = out.emplace_back();
        d.session = m.session;
        d.qos = m.options.qos;
        d.retain_as_published = m.options.retain_as_published;
        d.durable = m.options.durable;
        d.shared = true;
        if (m.options.subscription_id != 0) d.subscription_ids.push_back(m.options.subscription_id);
    }
}

}  // namespace sluice::broker
