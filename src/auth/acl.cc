// SPDX-License-Identifier: Apache-2.0
#include "auth/acl.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mqtt/topic.h"

namespace sluice::auth {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// Splits off the first word of `s` (which is trimmed first).
std::string_view take_word(std::string_view& s) {
    s = trim(s);
    size_t end = s.find_first_of(" \t");
    std::string_view w = s.substr(0, end);
    s = end == std::string_view::npos ? std::string_view{} : trim(s.substr(end));
    return w;
}

std::vector<std::string_view> levels(std::string_view t) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
        size_t pos = t.find('/', start);
        if (pos == std::string_view::npos) {
            out.push_back(t.substr(start));
            return out;
        }
        out.push_back(t.substr(start, pos - start));
        start = pos + 1;
    }
}

// %u and %c substituted; false when a value would change the rule's shape (contains a
// level separator or a wildcard) or is missing: the rule then does not apply.
bool substitute(const std::string& pattern, std::string_view username, bool has_username, std::string_view client_id,
                std::string& out) {
    out.clear();
    for (size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '%' && i + 1 < pattern.size() && (pattern[i + 1] == 'u' || pattern[i + 1] == 'c')) {
            bool user = pattern[i + 1] == 'u';
            std::string_view v = user ? username : client_id;
            if ((user && !has_username) || v.empty() || v.find_first_of("/+#") != std::string_view::npos) return false;
            out.append(v);
            ++i;
        } else {
            out.push_back(pattern[i]);
        }
    }
    return true;
}

}  // namespace

bool filter_within(std::string_view filter, std::string_view outer) {
    if (!filter.empty() && !outer.empty() && filter.front() == '$' && outer.front() != '$') return false;
    auto f = levels(filter);
    auto o = levels(outer);
    for (size_t i = 0; i < o.size(); ++i) {
        if (o[i] == "#") return true;
        if (i >= f.size()) return false;
        if (f[i] == "#") return false;
        if (o[i] == "+") continue;
        if (f[i] == "+" || f[i] != o[i]) return false;
    }
    return f.size() == o.size();
}

std::string acl::load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return path + ": " + std::strerror(errno);
    std::stringstream ss;
    ss << f.rdbuf();
    return parse(ss.str(), path);
}

std::string acl::parse(std::string_view text, const std::string& name) {
    anonymous_.clear();
    users_.clear();
    patterns_.clear();
    std::vector<rule>* current = &anonymous_;
    size_t line_no = 0;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view l = trim(text.substr(start, end - start));
        start = end + 1;
        ++line_no;
        auto fail = [&](const std::string& what) { return name + ":" + std::to_string(line_no) + ": " + what; };
        if (l.empty() || l.front() == '#') continue;
        std::string_view rest = l;
        std::string_view keyword = take_word(rest);
        if (keyword == "user") {
            if (rest.empty()) return fail("user needs a name");
            current = &users_[std::string(rest)];
            continue;
        }
        if (keyword != "topic" && keyword != "pattern") return fail("unknown keyword " + std::string(keyword));
        std::string_view topic = rest;
        std::string_view first = take_word(topic);
        uint8_t a = readwrite;
        if (first == "read") {
            a = read;
        } else if (first == "write") {
            a = write;
        } else if (first == "readwrite") {
            a = readwrite;
        } else if (first == "deny") {
            a = deny;
        } else {
            topic = rest;  // no access word: the whole rest is the topic
        }
        if (topic.empty()) return fail(std::string(keyword) + " needs a topic");
        if (!mqtt::valid_topic_filter(topic)) return fail("invalid topic filter " + std::string(topic));
        (keyword == "topic" ? *current : patterns_).push_back(rule{std::string(topic), a});
    }
    return {};
}

size_t acl::rule_count() const {
    size_t n = anonymous_.size() + patterns_.size();
    for (const auto& [u, rules] : users_)
        n += rules.size();
    return n;
}

bool acl::matches(const std::string& rule_topic, uint8_t rule_access, std::string_view topic, operation op) {
    if (op == operation::subscribe) {
        // A deny rule blocks a subscription that overlaps it entirely; an allowing rule
        // must cover every topic the filter can match.
        return filter_within(topic, rule_topic);
    }
    (void)rule_access;
    return mqtt::topic_matches(rule_topic, topic);
}

bool acl::allowed(std::string_view username, bool has_username, std::string_view client_id, std::string_view topic,
                  operation op) const {
    if (op == operation::subscribe) {
        if (auto shared = mqtt::parse_shared(topic)) topic = shared->filter;
    }
    const std::vector<rule>* own = &anonymous_;
    if (has_username) {
        auto it = users_.find(std::string(username));
        own = it == users_.end() ? nullptr : &it->second;
    }
    uint8_t need = op == operation::publish ? write : read;
    bool granted = false;
    auto consider = [&](const std::string& rule_topic, uint8_t a) {
        if (a == deny) {
            // Denials: publish/receive on a matching topic; a subscription entirely within it.
            if (matches(rule_topic, a, topic, op)) return false;
            return true;
        }
        if (!granted && (a & need) != 0 && matches(rule_topic, a, topic, op)) granted = true;
        return true;
    };
    if (own != nullptr) {
        for (const auto& r : *own)
            if (!consider(r.topic, r.access)) return false;
    }
    std::string substituted;
    for (const auto& r : patterns_) {
        if (!substitute(r.topic, username, has_username, client_id, substituted)) continue;
        if (!consider(substituted, r.access)) return false;
    }
    return granted;
}

}  // namespace sluice::auth
