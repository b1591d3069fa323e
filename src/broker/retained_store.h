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

#include "base/assert.h"
#include "broker/topic_index.h"

namespace sluice::broker {

// Lifecycle and threading: one per broker, single-threaded inside; the broker guards it
// with its own mutex. const members do not mutate, so concurrent readers are safe.
// Durability: none here; the broker persists retained messages and reloads them via set().
template <typename T>
class retained_store {
public:
    retained_store() : root_(std::make_unique<node>(nullptr, "")) {}

    // Stores `value` as the retained message of `topic`, replacing any previous one.
    // REQUIRES: valid_topic_name(topic).
    void set(std::string_view topic, T value) {
        SLUICE_CHECK(valid_topic_name(topic), "retained set on an invalid topic name");
        node* n = root_.get();
        size_t pos = 0;
        while (pos != npos) {
            size_t next = 0;
            const std::string_view level = level_at(topic, pos, next);
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
        SLUICE_ASSERT(valid_topic_filter(filter), "retained match on an invalid topic filter");
        std::string path;
        walk(*root_, filter, 0, path, v);
    }

    // Calls v(std::string_view topic, const T&) for every retained message.
    template <typename Visitor>
    void for_each(Visitor&& v) const {
        std::string path;
        visit_subtree(*root_, path, v, false);
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

    static std::string_view level_at(std::string_view text, size_t pos, size_t& next) noexcept {
        const size_t slash = text.find('/', pos);
        if (slash == npos) {
            next = npos;
            return text.substr(pos);
        }
        next = slash + 1;
        return text.substr(pos, slash - pos);
    }

    node* find(std::string_view topic) const {
        node* n = root_.get();
        size_t pos = 0;
        while (pos != npos) {
            size_t next = 0;
            auto it = n->children.find(level_at(topic, pos, next));
            if (it == n->children.end()) return nullptr;
            n = it->second.get();
            pos = next;
        }
        return n;
    }

    // Appends a child's level to the topic being rebuilt; returns the length to restore.
    static size_t descend(std::string& path, const node& child) {
        const size_t saved = path.size();
        if (child.parent->parent != nullptr) path.push_back('/');
        path.append(child.level);
        return saved;
    }

    static bool hidden_from_wildcard(const node& child) noexcept {
        // MQTT 5.0 §4.7.2: '+' or '#' as the first filter level never matches a '$' topic.
        return child.parent->parent == nullptr && !child.level.empty() && child.level.front() == '$';
    }

    template <typename Visitor>
    static void visit_subtree(const node& n, std::string& path, Visitor& v, bool skip_dollar) {
        if (n.value) v(std::string_view(path), *n.value);
        for (const auto& [level, child] : n.children) {
            if (skip_dollar && hidden_from_wildcard(*child)) continue;
            const size_t saved = descend(path, *child);
            visit_subtree(*child, path, v, false);
            path.resize(saved);
        }
    }

    template <typename Visitor>
    static void walk(const node& n, std::string_view filter, size_t pos, std::string& path, Visitor& v) {
        if (pos == npos) {
            if (n.value) v(std::string_view(path), *n.value);
            return;
        }
        size_t next = 0;
        const std::string_view level = level_at(filter, pos, next);
        if (level == "#") {
            // Matches this node's own topic (the parent level, "sport/#" matches "sport")
            // and everything below it. The root holds no message.
            visit_subtree(n, path, v, true);
            return;
        }
        if (level == "+") {
            for (const auto& [key, child] : n.children) {
                if (hidden_from_wildcard(*child)) continue;
                const size_t saved = descend(path, *child);
                walk(*child, filter, next, path, v);
                path.resize(saved);
            }
            return;
        }
        auto it = n.children.find(level);
        if (it == n.children.end()) return;
        const size_t saved = descend(path, *it->second);
        walk(*it->second, filter, next, path, v);
        path.resize(saved);
    }

    std::unique_ptr<node> root_;
    size_t size_ = 0;
    size_t node_count_ = 0;
};

}  // namespace sluice::broker
