// SPDX-License-Identifier: Apache-2.0
//
// Static path checks (nothing outside the web root) and content types; the files served
// over a real server are in routes_test.cc.
#include "http/static_files.h"

#include <string>

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

TEST(api_static, path_safety) {
    EXPECT_EQ(*static_file_path("/srv/web", "app.js"), "/srv/web/app.js");
    EXPECT_EQ(*static_file_path("/srv/web/", "img/logo.svg"), "/srv/web/img/logo.svg");
    for (const char* bad :
         {"", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "./a", "a//b", "a/", "a\\..\\b", "a/./b"}) {
        auto r = static_file_path("/srv/web", bad);
        EXPECT_FALSE(r) << bad;
        EXPECT_EQ(r.error(), api_errc::unsafe_path) << bad;
    }
    EXPECT_FALSE(static_file_path("/srv/web", std::string("a\0b", 3)));
    // Names that merely contain dots are fine.
    EXPECT_TRUE(static_file_path("/srv/web", "..hidden"));
    EXPECT_TRUE(static_file_path("/srv/web", "a..b.js"));
}

TEST(api_static, content_types) {
    EXPECT_EQ(content_type_for("index.html"), "text/html; charset=utf-8");
    EXPECT_EQ(content_type_for("x/app.js"), "text/javascript; charset=utf-8");
    EXPECT_EQ(content_type_for("style.css"), "text/css; charset=utf-8");
    EXPECT_EQ(content_type_for("a.svg"), "image/svg+xml");
    EXPECT_EQ(content_type_for("README"), "application/octet-stream");
    EXPECT_EQ(content_type_for("js"), "application/octet-stream");
}

}  // namespace
}  // namespace sluice::http
