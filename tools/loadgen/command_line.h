// SPDX-License-Identifier: Apache-2.0
//
// sluice-loadgen's command line (CLI11, with the conventions of base/cli.h): every flag,
// its default (options.h) and its valid range in one table. Flag names and defaults are a
// contract: bench/macro/*, tools/loadgen/tests/smoke_test.sh and docs/loadgen.md use them.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "options.h"

namespace sluice::loadgen {

// Either options to run with, or the status the tool exits with at once.
struct command_line {
    std::optional<options> run;
    int exit_status = 0;
};

// Parses `args` (argv without argv[0]). A --scenario's presets apply first and explicit
// flags override them, whatever their order: `--publishers 4 --scenario fanin` runs 4.
// --help and --version print on `out` (status 0); a usage error names the flag on `err`
// (status 2).
command_line parse_command_line(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace sluice::loadgen
