// SPDX-License-Identifier: Apache-2.0
//
// The `sluice` command line (CLI11, with the conventions of base/cli.h): its subcommands
// and every flag with its default (config.h) in one table. Flag names, defaults and
// precedence are a contract: scripts/run, tests/support, bench/macro and docs/operations.md
// use them.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "app/config.h"
#include "app/node.h"
#include "app/security.h"
#include "app/status.h"

namespace sluice::app {

enum class command { node, passwd, wal_dump, status };

// What the command line asks for.
struct invocation {
    command what = command::node;
    role node = role::serve;                 // command::node: serve, broker or pipeline
    config cfg;                              // command::node: defaults, then each --config file, then the flags
    std::string web_root;                    // command::node: --web-root ("" = default_web_root())
    passwd_request passwd;                   // command::passwd
    status_request status;                   // command::status
    std::vector<std::string> wal_dump_args;  // command::wal_dump: passed to sluice-wal-dump as they are
};

// Either what to run, or the status the command exits with at once.
struct command_line {
    std::optional<invocation> run;
    int exit_status = 0;
};

// Parses `args` (argv without argv[0]). Config files load first and flags override them,
// whatever their order; a repeated flag takes its last value (--config loads each file in
// turn). --help and --version print on `out` (status 0); a usage error names the flag on
// `err` (status 2).
command_line parse_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace sluice::app
