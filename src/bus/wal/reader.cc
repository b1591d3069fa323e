// SPDX-License-Identifier: Apache-2.0
//
// Readers: sequential reads of a partition's published records.
#include <algorithm>

#include "base/endian.h"
#include "base/log.h"
#include "bus/wal/wal_internal.h"

namespace sluice::bus::wal::detail {
namespace {

// A sequential reader over one partition. Reads only bytes the writer has published,
// so it never sees a partially written record.
class wal_reader final : public reader {
public:
    wal_reader(std::shared_ptr<partition> part, std::shared_ptr<file_system> fs, uint64_t from)
        : part_(std::move(part)), fs_(std::move(fs)), pos_(from) {}

    uint64_t position() const override { return pos_; }

    result<size_t> poll(std::vector<record>& out, size_t max_records, std::chrono::milliseconds wait) override {
        auto end = part_->wait_visible(pos_, wait);
        if (!end) return end.error();
        size_t n = 0;
        while (n < max_records && pos_ < *end) {
            auto seg = part_->locate(pos_);
            if (!seg) {
                if (seg.error() == make_error_code(errc::corruption))
                    SLUICE_ERROR("bus", "wal: reader at offset %llu: offset is in a quarantined range",
                                 static_cast<unsigned long long>(pos_));
                if (n > 0) break;
                return seg.error();
            }
            if (!file_ || seg->base != seg_base_ || pos_ < file_offset_) {
                auto r = open_segment(*seg);
                if (!r) return n > 0 ? result<size_t>(n) : result<size_t>(r.error());
            }
            record rec;
            auto r = read_next(*seg, rec);
            if (!r) return n > 0 ? result<size_t>(n) : result<size_t>(r.error());
            out.push_back(std::move(rec));
            ++pos_;
            ++n;
        }
        return n;
    }

private:
    result<void> open_segment(const segment_info& seg) {
        auto f = fs_->open_readable(seg.path);
        if (!f) return f.error() == make_error_code(errc::not_found) ? err(errc::not_found) : f.error();
        file_ = std::move(*f);
        seg_base_ = seg.base;
        file_pos_ = wal::k_segment_header_size;
        file_offset_ = seg.base;
        buf_.clear();
        buf_pos_ = file_pos_;
        while (file_offset_ < pos_) {
            record skip;
            if (auto r = read_next(seg, skip); !r) return r.error();
        }
        return ok();
    }

    // Makes buf_ cover [file_pos_, file_pos_ + need) without reading past `limit`.
    result<bool> fill(uint64_t need, uint64_t limit) {
        if (file_pos_ >= buf_pos_ && file_pos_ + need <= buf_pos_ + buf_.size()) return true;
        if (file_pos_ + need > limit) return false;
        const uint64_t want = std::min<uint64_t>(limit - file_pos_, std::max<uint64_t>(need, uint64_t{256} * 1024));
        buf_.resize(static_cast<size_t>(want));
        auto got = file_->read_at(file_pos_, buf_.data(), buf_.size());
        if (!got) return got.error();
        buf_.resize(*got);
        buf_pos_ = file_pos_;
        return *got >= need;
    }

    result<void> read_next(const segment_info& seg, record& rec) {
        auto corrupt = [&](const char* what) {
            SLUICE_ERROR("bus", "wal: %s at byte %llu of %s (offset %llu)", what,
                         static_cast<unsigned long long>(file_pos_), seg.path.c_str(),
                         static_cast<unsigned long long>(file_offset_));
            return err(errc::corruption);
        };
        auto have = fill(wal::k_record_header_size, seg.bytes);
        if (!have) return have.error();
        if (!*have) return corrupt("record header beyond published end");
        const char* h = buf_.data() + (file_pos_ - buf_pos_);
        const uint32_t length = load_le32(h + 4);
        const uint64_t total = wal::k_record_header_size + uint64_t{length};
        have = fill(total, seg.bytes);
        if (!have) return have.error();
        if (!*have) return corrupt("record beyond published end");
        size_t size = 0;
        std::string_view view(buf_.data() + (file_pos_ - buf_pos_), static_cast<size_t>(total));
        damage d = wal::decode_record(view, file_offset_, rec, size);
        if (d != damage::none) return corrupt(wal::to_string(d));
        file_pos_ += size;
        ++file_offset_;
        return ok();
    }

    std::shared_ptr<partition> part_;
    std::shared_ptr<file_system> fs_;
    uint64_t pos_;
    std::unique_ptr<readable_file> file_;
    uint64_t seg_base_ = UINT64_MAX;
    uint64_t file_pos_ = 0;  // file position of the record with offset file_offset_
    uint64_t file_offset_ = 0;
    std::string buf_;  // bytes [buf_pos_, buf_pos_ + buf_.size()) of the file
    uint64_t buf_pos_ = 0;
};

}  // namespace

std::unique_ptr<reader> make_reader(std::shared_ptr<partition> part, std::shared_ptr<file_system> fs, uint64_t from) {
    return std::make_unique<wal_reader>(std::move(part), std::move(fs), from);
}

}  // namespace sluice::bus::wal::detail
