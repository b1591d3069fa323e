// SPDX-License-Identifier: Apache-2.0
#include "app/auth_config.h"

#include <arpa/inet.h>

#include <cstring>

namespace sluice::app {

std::string load_auth_section(const toml::table& root, auth_settings& out) {
    const toml::table* a = root["auth"].as_table();
    if (a == nullptr) return {};
    for (const char* key : {"password_file", "acl_file", "client_id_pattern", "api_token"}) {
        auto node = (*a)[key];
        if (!node) continue;
        auto v = node.value<std::string>();
        if (!v) return std::string("auth.") + key + ": expected a string";
        std::string& dst = std::strcmp(key, "password_file") == 0 ? out.password_file
                           : std::strcmp(key, "acl_file") == 0    ? out.acl_file
                           : std::strcmp(key, "api_token") == 0   ? out.api_token
                                                                  : out.client_id_pattern;
        dst = *v;
    }
    if (auto node = (*a)["http_login"]) {
        auto v = node.value<bool>();
        if (!v) return "auth.http_login: expected true or false";
        out.http_login = *v;
    }
    if (auto node = (*a)["allow_anonymous"]) {
        auto v = node.value<bool>();
        if (!v) return "auth.allow_anonymous: expected true or false";
        out.allow_anonymous = *v;
    }
    if (auto node = (*a)["max_failures_per_minute"]) {
        auto v = node.value<int64_t>();
        if (!v || *v < 0 || *v > 1'000'000) return "auth.max_failures_per_minute: expected 0..1000000";
        out.max_failures_per_minute = static_cast<uint32_t>(*v);
    }
    return {};
}

bool anonymous_allowed(const auth_settings& s, const std::string& bind_address) {
    if (s.allow_anonymous) return *s.allow_anonymous;
    if (!s.password_file.empty()) return false;
    in_addr v4{};
    if (inet_pton(AF_INET, bind_address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    return bind_address == "::1" || bind_address == "localhost";
}

}  // namespace sluice::app
