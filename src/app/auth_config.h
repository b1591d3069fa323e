// SPDX-License-Identifier: Apache-2.0
//
// Reading the [auth] section of the config file (config.cc calls it); separate from
// security.h so that only the config readers include toml++.
#pragma once

#include <string>

#include <toml++/toml.h>

#include "app/security.h"

namespace sluice::app {

// Reads [auth] from a parsed file. Returns "" or "auth.key: problem".
std::string load_auth_section(const toml::table& root, auth_settings& out);

}  // namespace sluice::app
