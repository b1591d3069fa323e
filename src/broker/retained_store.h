// SPDX-License-Identifier: Apache-2.0
//
// Retained messages (MQTT 5.0 §3.3.1.3): the last retained PUBLISH per topic, handed to
// each new matching subscription. Subscribing with a wildcard filter must not scan every
// retained topic, so the store is a trie of topic levels walked by the filter: a literal
// level descends one hashed child, '+' fans out one level, '#' takes a whole subtree.
// It is a template over the broker's message handle (e.g. std::shared_ptr<const message>)
// so it knows nothing of the message layout.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/assert.h"
#include "mqtt/topic.h"

namespace sluice::broker {

// Lifecycle and threading: one per broker, single-threaded inside; the broker guards it
// with its own mutex. const members do not mutate, so concurrent readers are safe.
// Durability: none here; the broker persists retained messages and reloads them via set().
template <typename T>
class retained_store {
public:
    retained_store() : root_(std::make_unique<node>(nullptr, "")) {}
    ~retained_store() { destroy(std::move(root_)); }
    retained_store(retained_store&&) noexcept = default;
    retained_store& operator=(retained_store&& other) noexcept {
        if (this != &other) {
            destroy(std::move(root_));
            root_ = std::move(other.root_);
            size_ = std::exchange(other.size_, 0);
            node_count_ = std::exchange(other.node_count_, 0);
        }
        return *this;
    }
    retained_store(const retained_store&) = delete;
    retained_store& operator=(const retained_store&) = delete;

    // Stores `value` as the retained message of `topic`, replacing any previous one.
    // REQUIRES: valid_topic_name(topic).
    void set(std::string_view topic, T value) {
        SLUICE_CHECK(mqtt::valid_topic_name(topic), "retained set on an invalid topic name");
        node* n = root_.get();
        size_t pos = 0;
        while (pos != npos) {
            size_t next = 0;
            const std::string_view level = mqtt::topic_level(topic, pos, next);
            auto it = n->children.find(level);
            if (it == n->children.end()) {
                it = n->children.emplace(std::string(level), std::make_unique<node>(n, level)).first;
                ++node_count_;
            }
            n = it->second.get();
            pos = next;
        }
        if (!n->value) ++size_;
        n->value.emplace(std::move(value));
    }

    // Removes the retained message of `topic` (a retained PUBLISH with an empty payload).
    // Returns false if there was none.
    bool erase(std::string_view topic) {
        node* n = find(topic);
        if (n == nullptr || !n->value) return false;
        n->value.reset();
        --size_;
        while (n->parent != nullptr && !n->value && n->children.empty()) {
            node* parent = n->parent;
            auto it = parent->children.find(std::string_view(n->level));
            SLUICE_CHECK(it != parent->children.end(), "retained trie node missing from its parent");
            parent->children.erase(it);  // frees n
            --node_count_;
            n = parent;
        }
        return true;
    }

    // The retained message of exactly `topic`, or nullptr.
    const T* get(std::string_view topic) const {
        const node* n = find(topic);
        return n != nullptr && n->value ? &*n->value : nullptr;
    }

    // Calls v(std::string_view topic, const T&) for every retained message whose topic
    // matches the plain filter (wildcards and the '$' rule as in topic_matches). Order is
    // unspecified. The topic view is valid only during the call.
    // REQUIRES: valid_topic_filter(filter); v must not modify this store.
    template <typename Visitor>
    void match(std::string_view filter, Visitor&& v) const {
        SLUICE_ASSERT(mqtt::valid_topic_filter(filter), "retained match on an invalid topic filter");
        walk(filter, 0, false, v);
    }

    // Calls v(std::string_view topic, const T&) for every retained message.
    template <typename Visitor>
    void for_each(Visitor&& v) const {
        walk({}, npos, true, v);
    }

    size_t size() const noexcept { return size_; }
    // Trie nodes besides the root; 0 once every message is erased (leak checks).
    size_t node_count() const noexcept { return node_count_; }

private:
    static constexpr size_t npos = std::string_view::npos;

    struct string_hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    struct node {
        node(node* p, std::string_view l) : parent(p), level(l) {}
        node* parent;
        std::string level;
        std::unordered_map<std::string, std::unique_ptr<node>, string_hash, std::equal_to<>> children;
        std::optional<T> value;
    };

    node* find(std::string_view topic) const {
        node* n = root_.get();
        size_t pos = 0;
        while (pos != npos) {
            size_t next = 0;
            auto it = n->children.find(mqtt::topic_level(topic, pos, next));
            if (it == n->children.end()) return nullptr;
            n = it->second.get();
            pos = next;
        }
        return n;
    }

    static bool hidden_from_wildcard(const node& child) noexcept {
        // MQTT 5.0 §4.7.2: '+' or '#' as the first filter level never matches a '$' topic.
        return child.parent->parent == nullptr && !child.level.empty() && child.level.front() == '$';
    }

    // Depth-first walk over an explicit stack (a topic may have 65536 levels; a peer must
    // not be able to overflow our stack). `path` is rebuilt incrementally: a frame keeps
    // the length of its parent's topic, which stays intact in the buffer because LIFO
    // order finishes a parent's whole subtree before leaving it.
    struct frame {
        const node* n;
        size_t parent_len;  // length of the parent's topic in `path`
        size_t pos;         // filter position of the level n's children must match; npos: filter done
        bool subtree;       // inside a '#': everything below matches
    };

    template <typename Visitor>
    void walk(std::string_view filter, size_t start, bool subtree, Visitor& v) const {
        std::string path;
        std::vector<frame> stack;
        stack.push_back(frame{root_.get(), 0, start, subtree});
        while (!stack.empty()) {
            const frame f = stack.back();
            stack.pop_back();
            const node& n = *f.n;
            path.resize(f.parent_len);
            if (n.parent != nullptr) {
                if (n.parent->parent != nullptr) path.push_back('/');
                path.append(n.level);
            }
            // A wildcard at the first level hides '$' topics; for_each (the only walk
            // that starts at the root in subtree mode) sees them all.
            const bool hide_dollar = n.parent == nullptr && !f.subtree;
            auto push_children = [&](size_t pos, bool all) {
                for (const auto& [level, child] : n.children) {
                    if (hide_dollar && hidden_from_wildcard(*child)) continue;
                    stack.push_back(frame{child.get(), path.size(), pos, all});
                }
            };
            if (f.subtree || f.pos == npos) {
                if (n.value) v(std::string_view(path), *n.value);
                if (f.subtree) push_children(npos, true);
                continue;
            }
            size_t next = 0;
            const std::string_view level = mqtt::topic_level(filter, f.pos, next);
            if (level == "#") {
                // Matches n's own topic (the parent level: "sport/#" matches "sport") and
                // everything below it. The root holds no message.
                if (n.value) v(std::string_view(path), *n.value);
                push_children(npos, true);
            } else if (level == "+") {
                push_children(next, false);
            } else {
                auto it = n.children.find(level);
                if (it != n.children.end()) stack.push_back(frame{it->second.get(), path.size(), next, false});
            }
        }
    }

    // Frees the trie without recursion (nested unique_ptr destructors recurse per level).
    static void destroy(std::unique_ptr<node> root) {
        std::vector<std::unique_ptr<node>> pending;
        if (root) pending.push_back(std::move(root));
        while (!pending.empty()) {
            std::unique_ptr<node> n = std::move(pending.back());
            pending.pop_back();
            for (auto& [level, child] : n->children)
                pending.push_back(std::move(child));
        }
    }

    std::unique_ptr<node> root_;
    size_t size_ = 0;
    size_t node_count_ = 0;
};

}  // namespace sluice::broker
