// SPDX-License-Identifier: Apache-2.0
//
// The `sluice` command: reads the command line (command_line.h) and runs what it asks for:
// a node (`sluice serve`, `broker`, `pipeline`: node.h), `sluice status` (status.h),
// `sluice passwd` (security.h) or `sluice wal dump`, which runs the offline WAL reader installed beside us.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "app/command_line.h"
#include "base/errno_text.h"

namespace sluice::app {
namespace {

int wal_dump(const std::vector<std::string>& args) {
    std::string self = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "sluice-wal-dump";
    std::vector<char*> argv;
    argv.push_back(self.data());
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(self.c_str(), argv.data());
    std::fprintf(stderr, "sluice: cannot run %s: %s\n", self.c_str(), sluice::errno_text(errno).c_str());
    return 1;
}

}  // namespace
}  // namespace sluice::app

int main(int argc, char** argv) try {
    using namespace sluice::app;
    command_line line = parse_command_line({argv + 1, argv + argc}, std::cout, std::cerr);
    if (!line.run) return line.exit_status;
    invocation& run = *line.run;
    switch (run.what) {
        case command::node:
            return run_node(run.node, std::move(run.cfg), run.web_root);
        case command::passwd:
            return passwd_command(run.passwd);
        case command::wal_dump:
            return wal_dump(run.wal_dump_args);
        case command::status:
            return status_command(run.status);
    }
    return 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: %s\n", e.what());
    return 1;
}
