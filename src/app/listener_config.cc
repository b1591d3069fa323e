// SPDX-License-Identifier: Apache-2.0
#include "app/listener_config.h"

namespace sluice::app {

std::string load_listener_section(const toml::table& root, listener_settings& out) {
    if (const toml::table* s = root["server"].as_table()) {
        struct port_key {
            const char* key;
            std::optional<uint16_t>* dst;
        };
        for (port_key k : {port_key{"mqtts_port", &out.mqtts_port}, port_key{"ws_port", &out.ws_port},
                           port_key{"wss_port", &out.wss_port}}) {
            auto node = (*s)[k.key];
            if (!node) continue;
            auto v = node.value<int64_t>();
            if (!v || *v < 0 || *v > 65535) return std::string("server.") + k.key + ": expected 0..65535";
            *k.dst = static_cast<uint16_t>(*v);
        }
        if (auto node = (*s)["http_tls"]) {
            auto v = node.value<bool>();
            if (!v) return "server.http_tls: expected true or false";
            out.http_tls = *v;
        }
    }
    const toml::table* t = root["tls"].as_table();
    if (t == nullptr) return {};
    struct text_key {
        const char* key;
        std::string* dst;
    };
    for (text_key k :
         {text_key{"cert_file", &out.tls.cert_file}, text_key{"key_file", &out.tls.key_file},
          text_key{"ca_file", &out.tls.ca_file}, text_key{"ciphers", &out.tls.ciphers},
          text_key{"ciphersuites", &out.tls.ciphersuites}, text_key{"min_version", &out.tls.min_version}}) {
        auto node = (*t)[k.key];
        if (!node) continue;
        auto v = node.value<std::string>();
        if (!v) return std::string("tls.") + k.key + ": expected a string";
        *k.dst = *v;
    }
    if (auto node = (*t)["require_certificate"]) {
        auto v = node.value<bool>();
        if (!v) return "tls.require_certificate: expected true or false";
        out.tls.require_certificate = *v;
    }
    if (out.tls.min_version != "1.2" && out.tls.min_version != "1.3") return "tls.min_version: \"1.2\" or \"1.3\"";
    return {};
}

}  // namespace sluice::app
