// SPDX-License-Identifier: Apache-2.0
//
// How every Sluice command line behaves, in one place, so that sluice, sluice-loadgen and
// sluice-wal-dump agree: --help and --version print on stdout and exit 0; a usage error
// prints "PROGRAM: MESSAGE" on stderr, where CLI11's message names the offending flag, and
// exits with exit_usage. Header-only: CLI11 is a header-only library (Debian
// libcli11-dev) and only the commands' parsers include this.
#pragma once

#include <algorithm>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/version.h"

namespace sluice::cli {

// Exit status of a command given a bad command line (as the tools had before CLI11).
inline constexpr int exit_usage = 2;

// Gives `app` the behaviour shared by our commands: --version prints "NAME VERSION";
// --help shows each option's default; a repeated option takes its last value, as it
// did before CLI11 (bench scripts append overrides to a list of defaults).
inline void configure(CLI::App& app) {
    app.set_version_flag("--version", app.get_name() + " " + sluice::version, "Print the version and exit");
    app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

// Parses `args` (argv without argv[0]) into `app`.
// Returns: std::nullopt when the command should go on; 0 after printing --help or
// --version on `out`; exit_usage after printing the usage error (naming the flag) on `err`.
inline std::optional<int> parse(CLI::App& app, std::vector<std::string> args, std::ostream& out, std::ostream& err) {
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
    try {
        app.parse(args);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return 0;
    } catch (const CLI::CallForVersion&) {
        out << app.version() << "\n";
        return 0;
    } catch (const CLI::ParseError& e) {
        err << app.get_name() << ": " << e.what() << "\n"
            << "Run '" << app.get_name() << " --help' for the options.\n";
        return exit_usage;
    }
    return std::nullopt;
}

}  // namespace sluice::cli
