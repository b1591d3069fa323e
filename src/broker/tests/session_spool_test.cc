// SPDX-License-Identifier: Apache-2.0
#include "broker/session_spool.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "broker/persist/errc.h"

namespace sluice::broker {
namespace {

class spool_files : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ =
            std::filesystem::temp_directory_path() / ("sluice-spool-test-" + std::to_string(::getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        auto d = spool_directory::open(dir_.string());
        ASSERT_TRUE(d) << d.error().message();
        spools_ = std::move(*d);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    static persist::session_message_record message(uint64_t order, size_t payload_bytes) {
        persist::session_message_record m;
        m.order = order;
        m.qos = 1;
        m.message.topic = "t/" + std::to_string(order);
        m.message.payload = std::string(payload_bytes, 'x');
        m.message.qos = 1;
        return m;
    }
    // Appends records for `orders` after the header; returns the end offset.
    uint64_t append(spool_file& f, std::initializer_list<std::pair<uint64_t, size_t>> orders) {
        std::string bytes;
        for (auto [order, size] : orders)
            encode_spool_entry(bytes, message(order, size));
        EXPECT_TRUE(f.write_at(k_spool_header_size, bytes));
        return k_spool_header_size + bytes.size();
    }

    std::filesystem::path dir_;
    std::unique_ptr<spool_directory> spools_;
};

TEST_F(spool_files, records_read_back_in_chunks_and_a_large_one_whole) {
    auto f = spools_->create();
    ASSERT_TRUE(f);
    const uint64_t end = append(**f, {{1, 100}, {2, 100}, {3, 300000}, {4, 10}});
    ASSERT_FALSE(spools_->sync_written());
    auto first = read_spool(**f, k_spool_header_size, end, 1024);  // the first two fit
    ASSERT_TRUE(first);
    ASSERT_EQ(first->size(), 2u);
    EXPECT_EQ(first->at(0).record, message(1, 100));
    EXPECT_EQ(first->at(1).record.order, 2u);
    auto big = read_spool(**f, first->back().end_offset, end, 1024);  // larger than the chunk
    ASSERT_TRUE(big);
    ASSERT_EQ(big->size(), 1u);
    EXPECT_EQ(big->at(0).record.message.payload.size(), 300000u);
    auto last = read_spool(**f, big->back().end_offset, end, 1024);
    ASSERT_TRUE(last);
    ASSERT_EQ(last->size(), 1u);
    EXPECT_EQ(last->at(0).end_offset, end);
    EXPECT_TRUE(read_spool(**f, end, end, 1024)->empty());
}

TEST_F(spool_files, damaged_bytes_are_corruption_not_a_shorter_queue) {
    auto f = spools_->create();
    ASSERT_TRUE(f);
    const uint64_t end = append(**f, {{1, 100}, {2, 100}});
    ASSERT_TRUE((*f)->write_at(k_spool_header_size + 20, "garbage"));
    auto r = read_spool(**f, k_spool_header_size, end, 1 << 20);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), persist::errc::corruption);
    // A range that claims more than the file holds (its bytes never became durable).
    auto g = spools_->create();
    ASSERT_TRUE(g);
    const uint64_t g_end = append(**g, {{1, 100}});
    auto past = read_spool(**g, k_spool_header_size, g_end + 50, 1 << 20);
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error(), persist::errc::corruption);
}

TEST_F(spool_files, ids_are_not_reused_and_unreferenced_files_are_swept) {
    auto a = spools_->create();
    auto b = spools_->create();
    ASSERT_TRUE(a && b);
    const uint64_t id_a = (*a)->id();
    const uint64_t id_b = (*b)->id();
    EXPECT_NE(id_a, id_b);
    a->reset();
    b->reset();
    // Reopened (a restart): new ids continue after the existing ones.
    auto again = spool_directory::open(dir_.string());
    ASSERT_TRUE(again);
    auto c = (*again)->create();
    ASSERT_TRUE(c);
    EXPECT_GT((*c)->id(), std::max(id_a, id_b));
    EXPECT_TRUE((*again)->open_file(id_a));
    (*again)->remove_all_but({id_a});
    EXPECT_TRUE((*again)->open_file(id_a));
    EXPECT_FALSE((*again)->open_file(id_b));
    EXPECT_FALSE((*again)->open_file((*c)->id()));
}

TEST_F(spool_files, many_written_files_are_synced_together_and_once) {
    std::vector<std::shared_ptr<spool_file>> files;
    for (int i = 0; i < 40; ++i) {
        auto f = spools_->create();
        ASSERT_TRUE(f);
        append(**f, {{1, 100}});
        spools_->written(*f);  // twice: synced once
        files.push_back(std::move(*f));
    }
    EXPECT_FALSE(spools_->sync_written());
    EXPECT_FALSE(spools_->sync_written()) << "nothing left to sync";
}

TEST_F(spool_files, a_file_of_another_format_is_refused) {
    auto f = spools_->create();
    ASSERT_TRUE(f);
    ASSERT_TRUE((*f)->write_at(0, "NOT-A-SPOOL-FILE"));
    auto r = spools_->open_file((*f)->id());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), persist::errc::unsupported_version);
}

}  // namespace
}  // namespace sluice::broker
