// SPDX-License-Identifier: Apache-2.0
//
// Pattern compilation and matching for topic rules (see topic_rules.h). Matching is a
// single left-to-right pass over the topic's levels against the compiled segments.
#include "pipeline/topic_rules.h"

#include "pipeline/reason.h"

namespace sluice::pipeline {

using detail::set_reason;

std::optional<std::string_view> topic_match::get(std::string_view name) const {
    for (std::size_t i = 0; i < capture_count; ++i) {
        if (captures[i].name == name) return captures[i].value;
    }
    return std::nullopt;
}

namespace {

bool valid_capture_name(std::string_view name) {
    if (name.empty()) return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) return false;
    }
    return true;
}

}  // namespace

result<topic_rule> topic_rule::compile(std::string_view pattern, payload_format format, std::string& reason) {
    const int plen = detail::name_len(pattern.size());
    if (pattern.empty()) return set_reason(reason, errc::bad_topic_pattern, "empty topic pattern");
    topic_rule rule;
    rule.pattern_ = std::string(pattern);
    rule.format_ = format;
    std::size_t captures = 0;
    std::size_t start = 0;
    while (true) {
        const std::size_t slash = pattern.find('/', start);
        const std::string_view level =
            pattern.substr(start, slash == std::string_view::npos ? pattern.npos : slash - start);
        if (!rule.segments_.empty() && rule.segments_.back().k == kind::hash) {
            return set_reason(reason, errc::bad_topic_pattern, "pattern '%.*s': '#' must be the last level", plen,
                              pattern.data());
        }
        if (level == "+") {
            rule.segments_.push_back({kind::plus, {}});
        } else if (level == "#") {
            rule.segments_.push_back({kind::hash, {}});
        } else if (!level.empty() && level.front() == '{') {
            if (level.back() != '}' || level.size() < 2) {
                return set_reason(reason, errc::bad_topic_pattern,
                                  "pattern '%.*s': a capture must be a whole level like {name}", plen, pattern.data());
            }
            const std::string_view name = level.substr(1, level.size() - 2);
            if (!valid_capture_name(name)) {
                return set_reason(reason, errc::bad_topic_pattern,
                                  "pattern '%.*s': capture name '%.*s' must be letters, digits or '_'", plen,
                                  pattern.data(), detail::name_len(name.size()), name.data());
            }
            for (const auto& s : rule.segments_) {
                if (s.k == kind::capture && s.text == name) {
                    return set_reason(reason, errc::bad_topic_pattern, "pattern '%.*s': duplicate capture {%.*s}", plen,
                                      pattern.data(), detail::name_len(name.size()), name.data());
                }
            }
            if (++captures > topic_match::max_captures) {
                return set_reason(reason, errc::bad_topic_pattern, "pattern '%.*s': more than %zu captures", plen,
                                  pattern.data(), topic_match::max_captures);
            }
            rule.segments_.push_back({kind::capture, std::string(name)});
        } else {
            if (level.find_first_of("+#{}") != std::string_view::npos) {
                return set_reason(reason, errc::bad_topic_pattern,
                                  "pattern '%.*s': '+', '#' and {capture} must each be a whole level", plen,
                                  pattern.data());
            }
            rule.segments_.push_back({kind::literal, std::string(level)});
        }
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return rule;
}

template <bool Capture>
bool topic_rule::walk(std::string_view topic, topic_match* out) const {
    if (!topic.empty() && topic.front() == '$' && segments_.front().k != kind::literal) return false;
    std::size_t pos = 0;
    std::size_t n = 0;
    bool more = true;  // is there a level at `pos`? (an empty topic still has one empty level)
    for (const segment& seg : segments_) {
        if (seg.k == kind::hash) {  // matches the rest, including nothing (MQTT: "a/#" matches "a")
            more = false;
            break;
        }
        if (!more) return false;
        const std::size_t slash = topic.find('/', pos);
        const std::size_t end = slash == std::string_view::npos ? topic.size() : slash;
        const std::string_view level = topic.substr(pos, end - pos);
        switch (seg.k) {
            case kind::literal:
                if (level != seg.text) return false;
                break;
            case kind::capture:
                if (level.empty()) return false;
                if constexpr (Capture) {
                    out->captures[n++] = topic_capture{seg.text, level};
                }
                break;
            case kind::plus:
            case kind::hash:
                break;
        }
        more = slash != std::string_view::npos;
        pos = end + 1;
    }
    if (more) return false;
    if constexpr (Capture) {
        out->capture_count = n;
        out->format = format_;
        out->device = {};
        for (std::size_t i = 0; i < n; ++i) {
            if (out->captures[i].name == "device") out->device = out->captures[i].value;
        }
    }
    return true;
}

bool topic_rule::match(std::string_view topic, topic_match& out) const {
    return walk<true>(topic, &out);
}
bool topic_rule::matches(std::string_view topic) const {
    return walk<false>(topic, nullptr);
}

std::optional<std::string_view> topic_rule::first_literal() const {
    if (segments_.front().k != kind::literal) return std::nullopt;
    return segments_.front().text;
}

rule_set rule_set::defaults() {
    rule_set set;
    std::string reason;
    auto r = set.add("devices/{device}/telemetry", payload_format::auto_detect, reason);
    SLUICE_CHECK(r.has_value(), "default rule does not compile: %s", reason.c_str());
    return set;
}

result<void> rule_set::add(std::string_view pattern, payload_format format, std::string& reason) {
    auto rule = topic_rule::compile(pattern, format, reason);
    if (!rule) return rule.error();
    if (const auto first = rule->first_literal()) {
        // An empty first level ("/a/b") means topics starting with '/'.
        first_bytes_.set(first->empty() ? static_cast<unsigned char>('/') : static_cast<unsigned char>(first->front()));
    } else {
        first_bytes_.set();
        first_bytes_.reset(static_cast<unsigned char>('$'));  // wildcards never match $-topics
    }
    rules_.push_back(std::move(*rule));
    return ok();
}

std::optional<topic_match> rule_set::match(std::string_view topic) const {
    topic_match m;
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        if (rules_[i].match(topic, m)) {
            m.rule_index = i;
            return m;
        }
    }
    return std::nullopt;
}

bool rule_set::could_match(std::string_view topic) const {
    if (topic.empty() || !first_bytes_.test(static_cast<unsigned char>(topic.front()))) {
        // An empty topic is not valid MQTT; a rule with a wildcard first level would
        // still need a level, so nothing matches.
        return false;
    }
    for (const auto& rule : rules_) {
        if (rule.matches(topic)) return true;
    }
    return false;
}

}  // namespace sluice::pipeline
