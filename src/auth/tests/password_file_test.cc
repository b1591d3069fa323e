// SPDX-License-Identifier: Apache-2.0
#include "auth/password_file.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace sluice::auth {
namespace {

// Written by Debian's mosquitto_passwd 2.0.11 (`mosquitto_passwd -c -b pw alice secret`).
constexpr const char* k_mosquitto_line =
    "alice:$7$101$ME8d91Lm9xXNC0Sm$nxWRJ7mrkMi2eaQSywKxIrR/kMoTWgQhyrmW3efASMZYoOgDMDAfW4UJfuo7A57aY0X/uWnvm2sFM6L+"
    "T7p5DQ==\n";

TEST(password_file, verifies_a_hash_written_by_mosquitto_passwd) {
    password_file f;
    ASSERT_EQ(f.parse(k_mosquitto_line, "pw"), "");
    const std::string* h = f.find("alice");
    ASSERT_NE(h, nullptr);
    EXPECT_TRUE(verify_password("secret", *h));
    EXPECT_FALSE(verify_password("Secret", *h));
    EXPECT_FALSE(verify_password("", *h));
    EXPECT_EQ(f.find("bob"), nullptr);
}

TEST(password_file, hashes_in_the_mosquitto_layout) {
    std::string h = hash_password("pa:ss word");
    ASSERT_EQ(h.rfind("$7$101$", 0), 0u) << h;
    // $7$101$ + 16 chars of unpadded-equivalent salt (12 bytes) + $ + 88 chars of hash.
    EXPECT_EQ(h.size(), 7u + 16u + 1u + 88u) << h;
    EXPECT_TRUE(verify_password("pa:ss word", h));
    EXPECT_FALSE(verify_password("pa:ss wore", h));
    EXPECT_NE(hash_password("x"), hash_password("x"));  // fresh salt each time
}

TEST(password_file, legacy_sha512_hashes_verify) {
    // $6$: base64(salt) $ base64(sha512(password || salt)), mosquitto 1.x.
    // salt "saltsaltsalt", password "pw", computed with `printf pwsaltsaltsalt | openssl dgst -sha512 -binary | base64
    // -w0`.
    const char* h =
        "$6$c2FsdHNhbHRzYWx0$"
        "upfVVfdk1wuq4oaO0WskiLMD8f29DsnYAbie2XwdOw4NXP6IO55bx2FJikHnOlHKP4NSNTDTTlFFWzDMm6RxhA==";
    EXPECT_TRUE(verify_password("pw", h));
    EXPECT_FALSE(verify_password("px", h));
}

TEST(password_file, rejects_garbage_hashes_and_lines) {
    EXPECT_FALSE(verify_password("x", "plain"));
    EXPECT_FALSE(verify_password("x", "$7$0$AAAA$AAAA"));
    EXPECT_FALSE(verify_password("x", "$7$abc$AAAA$AAAA"));
    EXPECT_FALSE(verify_password("x", "$5$AAAA$AAAA"));
    password_file f;
    EXPECT_NE(f.parse("nocolon\n", "pw"), "");
    EXPECT_NE(f.parse("a:x\na:y\n", "pw"), "");
    EXPECT_NE(f.parse(":x\n", "pw"), "");
}

TEST(password_file, rewrites_keeping_comments_and_order) {
    password_file f;
    ASSERT_EQ(f.parse("# site users\nalice:h1\r\n\nbob:h2\n", "pw"), "");
    f.set("carol", "h3");
    f.set("alice", "h4");
    EXPECT_TRUE(f.erase("bob"));
    EXPECT_FALSE(f.erase("bob"));
    EXPECT_EQ(f.text(), "# site users\nalice:h4\n\ncarol:h3\n");

    auto path = std::filesystem::temp_directory_path() / ("sluice-pw-test-" + std::to_string(::getpid()));
    ASSERT_EQ(f.save(path.string()), "");
    EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    password_file g;
    ASSERT_EQ(g.load(path.string()), "");
    EXPECT_EQ(g.text(), f.text());
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace sluice::auth
