// SPDX-License-Identifier: Apache-2.0
//
// Access control lists in mosquitto's acl_file format, so that existing files work
// unchanged (docs/security.md has the full grammar):
//   topic [read|write|readwrite|deny] TOPIC    before any `user` line: clients without a username
//   user NAME                                  the `topic` lines after it apply to NAME
//   pattern [read|write|readwrite|deny] TOPIC  every client; %u = username, %c = client id
// The access word defaults to readwrite. Once a file is loaded, what it does not allow is
// denied; a `deny` rule wins over any allowing one. Immutable after parse(): one instance
// is shared by every event loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::auth {

// What a client asks to do with a topic.
enum class operation : uint8_t {
    publish,    // PUBLISH (and its will) to a topic name: needs write
    subscribe,  // SUBSCRIBE to a filter: needs read on every topic the filter can match
    receive,    // a matching message is delivered to the client: needs read on its topic
};

class acl {
public:
    // Parses the file's text. Returns "" on success, else "name:line: problem".
    std::string parse(std::string_view text, const std::string& name);
    std::string load(const std::string& path);

    // May a client with `username` (`has_username` false: connected without one) and
    // `client_id` perform `op` on `topic` (a topic name, or a filter for subscribe)?
    bool allowed(std::string_view username, bool has_username, std::string_view client_id, std::string_view topic,
                 operation op) const;

    size_t rule_count() const;

private:
    enum access : uint8_t { deny = 0, read = 1, write = 2, readwrite = 3 };
    struct rule {
        std::string topic;
        uint8_t access;
    };
    // A rule applies to the request? `topic` is already substituted for patterns.
    static bool matches(const std::string& rule_topic, uint8_t rule_access, std::string_view topic, operation op);

    std::vector<rule> anonymous_;
    std::unordered_map<std::string, std::vector<rule>> users_;
    std::vector<rule> patterns_;
};

// Is every topic that `filter` matches also matched by `outer`? ("a/+" is within "a/#".)
// REQUIRES: both valid topic filters.
bool filter_within(std::string_view filter, std::string_view outer);

}  // namespace sluice::auth
