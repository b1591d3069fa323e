// SPDX-License-Identifier: Apache-2.0
//
// The start/stop list of a node: parts stop in reverse start order, on the normal path
// and when a later part fails to start, and a part that never started is never stopped.
#include "app/steps.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::app {
namespace {

// Three parts a, b, c; the one named `failing` fails to start with status 7.
std::vector<step> parts(std::vector<std::string>& log, const std::string& failing = "") {
    std::vector<step> list;
    for (const char* name : {"a", "b", "c"}) {
        list.push_back({name,
                        [&log, name, failing] {
                            log.push_back(std::string("start ") + name);
                            return failing == name ? 7 : 0;
                        },
                        [&log, name] { log.push_back(std::string("stop ") + name); }});
    }
    return list;
}

TEST(app_steps, start_in_order_stop_in_reverse_once) {
    std::vector<std::string> log;
    steps s(parts(log));
    EXPECT_EQ(s.start(), 0);
    s.stop();
    s.stop();
    EXPECT_EQ(log, (std::vector<std::string>{"start a", "start b", "start c", "stop c", "stop b", "stop a"}));
}

TEST(app_steps, a_failed_start_stops_only_what_started) {
    std::vector<std::string> log;
    steps s(parts(log, "b"));
    EXPECT_EQ(s.start(), 7);
    EXPECT_EQ(log, (std::vector<std::string>{"start a", "start b", "stop a"}));
}

TEST(app_steps, leaving_scope_stops_what_started) {
    std::vector<std::string> log;
    {
        steps s(parts(log));
        EXPECT_EQ(s.start(), 0);
    }
    EXPECT_EQ(log, (std::vector<std::string>{"start a", "start b", "start c", "stop c", "stop b", "stop a"}));
}

TEST(app_steps, a_step_without_stop_is_skipped_on_the_way_down) {
    std::vector<std::string> log;
    auto list = parts(log);
    list[1].stop = {};
    steps s(std::move(list));
    EXPECT_EQ(s.start(), 0);
    s.stop();
    EXPECT_EQ(log, (std::vector<std::string>{"start a", "start b", "start c", "stop c", "stop a"}));
}

}  // namespace
}  // namespace sluice::app
