// SPDX-License-Identifier: Apache-2.0
//
// Reading the listener ports of [server] and the [tls] section of the config file
// (config.cc calls it); separate from listeners.h so that only the config readers include toml++.
#pragma once

#include <string>

#include <toml++/toml.h>

#include "app/listeners.h"

namespace sluice::app {

// Reads server.mqtts_port, server.ws_port, server.wss_port and [tls]. Returns "" or "section.key: problem".
std::string load_listener_section(const toml::table& root, listener_settings& out);

}  // namespace sluice::app
