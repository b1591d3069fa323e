// SPDX-License-Identifier: Apache-2.0
//
// Topic rules decide which PUBLISH topics are telemetry, which device they belong to,
// and which payload format to expect. A rule is a pattern like
// `factory/{site}/{device}/telemetry`: literal levels, named single-level captures
// `{name}`, and MQTT's unnamed `+` (one level) and `#` (the rest, last only). Patterns
// are compiled once into segments; matching walks the topic once and never allocates,
// because the broker asks could_match() on every PUBLISH.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "pipeline/errc.h"
#include "pipeline/types.h"

namespace sluice::pipeline {

struct topic_capture {
    std::string_view name;   // points into the rule (lives as long as the rule set)
    std::string_view value;  // points into the matched topic
};

// The result of matching one topic. Views into the topic: valid while it is.
struct topic_match {
    static constexpr std::size_t max_captures = 8;

    std::size_t rule_index = 0;  // position of the matching rule in its rule_set
    payload_format format = payload_format::auto_detect;
    std::string_view device;  // the {device} capture; empty when the rule has none
                              // (the caller then uses the MQTT client id)
    std::array<topic_capture, max_captures> captures{};
    std::size_t capture_count = 0;

    // The value of capture `name`, or nullopt.
    std::optional<std::string_view> get(std::string_view name) const;
};

// One compiled pattern. Immutable after compile(); safe to share between threads.
class topic_rule {
public:
    // Compiles `pattern`. Returns errc::bad_topic_pattern with `reason` set (e.g.
    // "'#' must be the last level", "duplicate capture {device}") when it is invalid.
    static result<topic_rule> compile(std::string_view pattern, payload_format format, std::string& reason);

    // Matches a concrete topic (no wildcards). Named captures never match an empty
    // level; topics starting with '$' only match rules whose first level is literal
    // (as MQTT requires for wildcards). Fills `out` on success.
    bool match(std::string_view topic, topic_match& out) const;
    bool matches(std::string_view topic) const;

    std::string_view pattern() const { return pattern_; }
    payload_format format() const { return format_; }
    // First level when it is literal, for prefilters; nullopt when it is a wildcard.
    std::optional<std::string_view> first_literal() const;

private:
    enum class kind : uint8_t { literal, capture, plus, hash };
    struct segment {
        kind k;
        std::string text;  // the literal, or the capture name
    };
    template <bool Capture>
    bool walk(std::string_view topic, topic_match* out) const;

    std::string pattern_;
    std::vector<segment> segments_;
    payload_format format_ = payload_format::auto_detect;
};

// An ordered list of rules; a topic belongs to the first rule that matches it.
// Built at configuration time, then read-only (share it between event loops).
class rule_set {
public:
    // The rule set Sluice runs with out of the box: exactly `devices/{device}/telemetry`
    // with the payload format detected from the payload.
    static rule_set defaults();

    // Appends a rule. Errors as topic_rule::compile.
    result<void> add(std::string_view pattern, payload_format format, std::string& reason);

    std::optional<topic_match> match(std::string_view topic) const;
    // Cheap test for the broker's PUBLISH path: does any rule match this topic? Does
    // not build captures; rejects most non-ingest topics on their first byte.
    bool could_match(std::string_view topic) const;

    std::size_t size() const { return rules_.size(); }
    const topic_rule& operator[](std::size_t i) const { return rules_[i]; }

private:
    std::vector<topic_rule> rules_;
    std::bitset<256> first_bytes_;  // first bytes a matching topic can start with
};

}  // namespace sluice::pipeline
