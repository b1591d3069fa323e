// SPDX-License-Identifier: Apache-2.0
//
// What a node (node.h) takes from and leaves in its environment: the port files in the
// data dir that tools and tests wait for, the dashboard's directory, the open-files limit.
#pragma once

#include <string>

namespace sluice::app {

// Writes `text` to `path` atomically (temp file + rename), so readers never see half.
bool write_file_atomically(const std::string& path, const std::string& text);

// Removes DATA_DIR/{mqtt,mqtts,ws,wss}.port, and http.port too when `with_http`.
void remove_port_files(const std::string& data_dir, bool with_http);

// The dashboard's files when --web-root is not given: the repository's web/ next to a
// build tree (<repo>/build*/bin/sluice), else ./web.
std::string default_web_root();

// Raises the soft limit on open files to the hard one (one descriptor per client).
void raise_open_files_limit();

}  // namespace sluice::app
