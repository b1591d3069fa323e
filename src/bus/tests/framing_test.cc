// SPDX-License-Identifier: Apache-2.0
#include "bus/framing.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::bus::framing {
namespace {

// One header byte of its own, bodies of 2 to 64 bytes.
constexpr layout k_layout{k_prefix_size + 1, 2, 64};

std::string record(char tag, std::string_view body) {
    std::string out;
    const size_t start = begin_record(out, static_cast<uint32_t>(body.size()));
    out.push_back(tag);
    out.append(body);
    seal_record(out, start);
    return out;
}

TEST(framing, classifies_each_kind_of_damage) {
    const std::string good = record('t', "hello");
    frame f;
    ASSERT_EQ(check_frame(good, k_layout, f), damage::none);
    EXPECT_EQ(f.header[k_prefix_size], 't');
    EXPECT_EQ(f.body, "hello");
    EXPECT_EQ(f.size, good.size());

    EXPECT_EQ(check_frame(good.substr(0, 5), k_layout, f), damage::truncated_header);
    EXPECT_EQ(check_frame("", k_layout, f), damage::truncated_header);
    EXPECT_EQ(check_frame(std::string(5, '\0'), k_layout, f), damage::zero_filled);
    EXPECT_EQ(check_frame(std::string(40, '\0'), k_layout, f), damage::zero_filled);
    EXPECT_EQ(check_frame(good.substr(0, good.size() - 1), k_layout, f), damage::torn_record);
    std::string flipped = good;
    flipped.back() ^= 1;
    EXPECT_EQ(check_frame(flipped, k_layout, f), damage::bad_crc);
    EXPECT_EQ(check_frame(record('t', "x"), k_layout, f), damage::bad_length);
    EXPECT_EQ(check_frame(record('t', std::string(65, 'x')), k_layout, f), damage::bad_length);
}

TEST(framing, walk_stops_at_the_first_damage_and_search_finds_what_follows) {
    const std::string a = record('a', "first");
    const std::string b = record('b', "second");
    std::string bytes = a + "junk" + b + b;
    std::vector<uint64_t> seen;
    const walk_result w = walk(bytes, 0, [&](uint64_t pos, size_t& size) {
        frame f;
        const damage d = check_frame(std::string_view(bytes).substr(pos), k_layout, f);
        if (d == damage::none) {
            seen.push_back(pos);
            size = f.size;
        }
        return d;
    });
    EXPECT_EQ(w.records, 1u);
    EXPECT_EQ(w.end, a.size());
    EXPECT_NE(w.first_damage, damage::none);
    EXPECT_TRUE(may_precede_valid_records(w.first_damage));

    std::vector<uint64_t> found;
    search(bytes, w.end + 1, k_layout, [&](uint64_t pos, uint32_t) -> size_t {
        frame f;
        if (check_frame(std::string_view(bytes).substr(pos), k_layout, f) != damage::none) return 0;
        found.push_back(pos);
        return f.size;
    });
    EXPECT_EQ(found, (std::vector<uint64_t>{a.size() + 4, a.size() + 4 + b.size()}));

    found.clear();
    search(bytes, w.end + 1, k_layout, [&](uint64_t pos, uint32_t) -> size_t {
        found.push_back(pos);
        return k_stop;
    });
    EXPECT_EQ(found.size(), 1u);
    EXPECT_FALSE(may_precede_valid_records(damage::zero_filled));
    EXPECT_FALSE(may_precede_valid_records(damage::truncated_header));
}

}  // namespace
}  // namespace sluice::bus::framing
