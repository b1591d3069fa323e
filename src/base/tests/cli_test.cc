// SPDX-License-Identifier: Apache-2.0
//
// The command-line contract every Sluice command shares (base/cli.h): help and version on
// stdout with status 0, usage errors on stderr naming the flag with status 2, and the
// last of a repeated option wins.
#include "base/cli.h"

#include <sstream>

#include <gtest/gtest.h>

namespace sluice {
namespace {

struct parsed {
    std::optional<int> status;
    std::string out;
    std::string err;
};

// A small command with one integer option, as a tool would declare it.
parsed run(std::vector<std::string> args, int* count = nullptr) {
    CLI::App app("test command", "sluice-test");
    cli::configure(app);
    int local = 3;
    app.add_option("--count", count != nullptr ? *count : local, "how many")->check(CLI::Range(1, 10));
    std::ostringstream out;
    std::ostringstream err;
    parsed p;
    p.status = cli::parse(app, std::move(args), out, err);
    p.out = out.str();
    p.err = err.str();
    return p;
}

TEST(cli, help_goes_to_stdout_with_status_zero_and_shows_defaults) {
    const auto p = run({"--help"});
    ASSERT_EQ(p.status, 0);
    EXPECT_NE(p.out.find("--count"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("how many"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("=3"), std::string::npos) << "default shown: " << p.out;
    EXPECT_TRUE(p.err.empty());
}

TEST(cli, version_is_the_project_version) {
    const auto p = run({"--version"});
    ASSERT_EQ(p.status, 0);
    EXPECT_EQ(p.out, std::string("sluice-test ") + sluice::version + "\n");
    EXPECT_NE(std::string(sluice::version).find('.'), std::string::npos) << "configured from project(VERSION)";
}

TEST(cli, unknown_flag_is_a_usage_error_that_names_it) {
    const auto p = run({"--count", "2", "--bogus"});
    ASSERT_EQ(p.status, cli::exit_usage);
    EXPECT_EQ(p.err.rfind("sluice-test: ", 0), 0u) << p.err;
    EXPECT_NE(p.err.find("--bogus"), std::string::npos) << p.err;
    EXPECT_TRUE(p.out.empty());
}

TEST(cli, bad_value_is_a_usage_error_that_names_the_flag) {
    for (const char* bad : {"0", "11", "many"}) {
        const auto p = run({"--count", bad});
        ASSERT_EQ(p.status, cli::exit_usage) << bad;
        EXPECT_NE(p.err.find("--count"), std::string::npos) << p.err;
    }
}

TEST(cli, missing_value_is_a_usage_error_that_names_the_flag) {
    const auto p = run({"--count"});
    ASSERT_EQ(p.status, cli::exit_usage);
    EXPECT_NE(p.err.find("--count"), std::string::npos) << p.err;
}

TEST(cli, good_command_line_goes_on_and_the_last_repeat_wins) {
    int count = 0;
    const auto p = run({"--count", "4", "--count=7"}, &count);
    EXPECT_FALSE(p.status.has_value()) << p.err;
    EXPECT_EQ(count, 7);
}

}  // namespace
}  // namespace sluice
