// SPDX-License-Identifier: Apache-2.0
#include "auth/authority.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>

namespace sluice::auth {
namespace {

class authority_test : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ =
            std::filesystem::temp_directory_path() / ("sluice-authority-" + std::to_string(::getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
        password_file f;
        f.set("alice", hash_password("wonderland"));
        ASSERT_EQ(f.save(path("pw")), "");
        write("acl", "pattern readwrite devices/%u/#\n");
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string path(const char* name) { return (dir_ / name).string(); }
    void write(const char* name, const std::string& text) { std::ofstream(path(name)) << text; }

    verdict login(authority& a, const char* user, const char* password, const char* client = "c",
                  const char* peer = "10.0.0.1") {
        credentials c;
        c.client_id = client;
        c.peer_address = peer;
        if (user) {
            c.has_username = true;
            c.username = user;
        }
        if (password) {
            c.has_password = true;
            c.password = password;
        }
        std::promise<std::pair<verdict, std::thread::id>> p;
        auto f = p.get_future();
        a.authenticate(std::move(c), [&p](verdict v) { p.set_value({v, std::this_thread::get_id()}); });
        auto [v, thread] = f.get();
        if (user && v != verdict::rate_limited) {
            EXPECT_NE(thread, std::this_thread::get_id()) << "hashed on the caller";
        }
        return v;
    }

    std::filesystem::path dir_;
};

TEST_F(authority_test, passwords_anonymous_and_counters) {
    authority_options o;
    o.password_file = path("pw");
    authority a(o);
    ASSERT_EQ(a.load(), "");
    EXPECT_EQ(login(a, "alice", "wonderland"), verdict::accepted);
    EXPECT_EQ(login(a, "alice", "wrong"), verdict::bad_credentials);
    EXPECT_EQ(login(a, "bob", "wonderland"), verdict::bad_credentials);
    EXPECT_EQ(login(a, "alice", nullptr), verdict::bad_credentials);
    EXPECT_EQ(login(a, nullptr, nullptr), verdict::not_authorized);
    EXPECT_EQ(a.stats().accepted.load(), 1u);
    EXPECT_EQ(a.stats().bad_credentials.load(), 3u);
    EXPECT_EQ(a.stats().not_authorized.load(), 1u);

    o.allow_anonymous = true;
    authority b(o);
    ASSERT_EQ(b.load(), "");
    EXPECT_EQ(login(b, nullptr, nullptr), verdict::accepted);
    EXPECT_EQ(login(b, "alice", "wrong"), verdict::bad_credentials);  // a wrong password is never anonymous
}

TEST_F(authority_test, failed_logins_are_limited_per_address) {
    authority_options o;
    o.password_file = path("pw");
    o.max_failures_per_minute = 3;
    authority a(o);
    ASSERT_EQ(a.load(), "");
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(login(a, "alice", "guess"), verdict::bad_credentials);
    // The right password from that address is refused unchecked for the rest of the minute...
    EXPECT_EQ(login(a, "alice", "wonderland"), verdict::rate_limited);
    EXPECT_EQ(a.stats().rate_limited.load(), 1u);
    // ...other addresses are not affected.
    EXPECT_EQ(login(a, "alice", "wonderland", "c", "10.0.0.2"), verdict::accepted);
}

TEST_F(authority_test, client_id_binding) {
    authority_options o;
    o.password_file = path("pw");
    o.client_id_pattern = "%u-*";
    authority a(o);
    ASSERT_EQ(a.load(), "");
    EXPECT_EQ(login(a, "alice", "wonderland", "alice-1"), verdict::accepted);
    EXPECT_EQ(login(a, "alice", "wonderland", "bob-1"), verdict::client_id_bound);
    EXPECT_EQ(login(a, "alice", "wonderland", "alice"), verdict::client_id_bound);
    EXPECT_TRUE(glob_match("a*b*c", "aXXbYc"));
    EXPECT_FALSE(glob_match("a*b", "ab/c"));
}

TEST_F(authority_test, reload_swaps_rules_and_keeps_old_ones_on_error) {
    authority_options o;
    o.password_file = path("pw");
    o.acl_file = path("acl");
    authority a(o);
    ASSERT_EQ(a.load(), "");
    EXPECT_TRUE(a.allowed("alice", true, "c", "devices/alice/x", operation::publish));
    EXPECT_FALSE(a.allowed("alice", true, "c", "devices/bob/x", operation::publish));
    EXPECT_EQ(a.stats().denied_publish.load(), 1u);

    write("acl", "pattern readwrite devices/%u/#\nuser alice\ntopic read devices/bob/#\n");
    ASSERT_EQ(a.reload(), "");
    EXPECT_TRUE(a.allowed("alice", true, "c", "devices/bob/x", operation::receive));

    write("acl", "nonsense here\n");
    EXPECT_NE(a.reload(), "");
    EXPECT_TRUE(a.allowed("alice", true, "c", "devices/bob/x", operation::receive));  // previous rules stay
    EXPECT_EQ(a.stats().reloads.load(), 1u);
    EXPECT_EQ(a.stats().reload_failures.load(), 1u);

    password_file f;
    ASSERT_EQ(f.load(path("pw")), "");
    f.set("bob", hash_password("builder"));
    ASSERT_EQ(f.save(path("pw")), "");
    EXPECT_EQ(login(a, "bob", "builder"), verdict::bad_credentials);
    write("acl", "");
    ASSERT_EQ(a.reload(), "");
    EXPECT_EQ(login(a, "bob", "builder"), verdict::accepted);
}

}  // namespace
}  // namespace sluice::auth
