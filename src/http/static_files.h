// SPDX-License-Identifier: Apache-2.0
//
// The dashboard's files (web/), served under GET / and GET /static/*. Paths are checked
// before the file system is touched, so nothing outside the web root is served.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "http/errc.h"
#include "http/server.h"

namespace sluice::http {

// Maps a request path below the static prefix ("app.js", "img/logo.svg") to a file
// under `web_root`. Fails with api_errc::unsafe_path for '..', '.', empty segments,
// backslashes, NUL bytes or an absolute path; never touches the file system.
result<std::string> static_file_path(std::string_view web_root, std::string_view relative);

// Content-Type for a file name by extension; application/octet-stream when unknown.
std::string_view content_type_for(std::string_view file_name);

// 200 with the file `relative` under `web_root` (regular files up to 8 MiB), else 404.
response static_file_response(std::string_view web_root, std::string_view relative);

}  // namespace sluice::http
