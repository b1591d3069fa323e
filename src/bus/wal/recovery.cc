// SPDX-License-Identifier: Apache-2.0
//
// Recovery at open: scan a partition's segments, truncate a torn tail, quarantine
// mid-log corruption, and reopen or create the active segment.
#include <algorithm>

#include "base/log.h"
#include "bus/wal/wal_internal.h"

namespace sluice::bus::wal::detail {

result<void> partition::recover(std::vector<recovery_event>* report) {
    if (auto r = fs_->create_dirs(dir_); !r) return r;
    auto names = fs_->list(dir_);
    if (!names) return names.error();
    std::vector<uint64_t> bases;
    for (const auto& name : *names) {
        if (auto base = wal::parse_segment_file_name(name))
            bases.push_back(*base);
        else if (name.size() > 8 && name.compare(name.size() - 8, 8, ".corrupt") == 0)
            SLUICE_WARN("bus", "wal: partition %u keeps quarantined file %s/%s", id_, dir_.c_str(), name.c_str());
    }
    std::sort(bases.begin(), bases.end());

    std::vector<segment_info> segs;
    std::vector<missing_range> missing;
    uint64_t expected = bases.empty() ? 0 : bases.front();
    for (size_t i = 0; i < bases.size(); ++i) {
        const bool last = i + 1 == bases.size();
        const uint64_t base = bases[i];
        const std::string name = wal::segment_file_name(base);
        const std::string path = dir_ + "/" + name;
        auto data = read_whole_file(*fs_, path);
        if (!data) return data.error();
        if (base != expected) {
            if (base < expected) {
                SLUICE_ERROR("bus", "wal: segment %s overlaps offsets up to %llu", path.c_str(),
                             static_cast<unsigned long long>(expected));
                return err(errc::corruption);
            }
            SLUICE_ERROR("bus", "wal: partition %u offsets [%llu, %llu) are missing", id_,
                         static_cast<unsigned long long>(expected), static_cast<unsigned long long>(base));
            missing.push_back({expected, base});
            record_event(report, {recovery_event::action::offsets_missing, id_, path, damage::none, header_status::ok,
                                  0, 0, expected, base});
        }
        wal::scan_result scan = wal::scan_segment(*data, base);
        if (scan.header == header_status::unsupported_version) {
            SLUICE_ERROR("bus", "wal: %s has format version %u; this build reads %u to %u", path.c_str(), scan.version,
                         wal::k_oldest_readable_version, wal::k_format_version);
            return err(errc::corruption);
        }
        if (last && (scan.header == header_status::short_file || scan.header == header_status::zero_filled)) {
            // Created, but the header never reached the disk: a crash during a roll.
            SLUICE_WARN("bus", "wal: removing segment %s: %s", path.c_str(), wal::to_string(scan.header));
            if (auto r = fs_->unlink(path); !r) return r;
            if (auto r = fs_->sync_dir(dir_); !r) return r;
            record_event(report, {recovery_event::action::empty_segment_removed, id_, path, damage::none, scan.header,
                                  0, data->size(), base, base});
            expected = base;
            continue;
        }
        const bool tail_damage =
            scan.header == header_status::ok && scan.first_damage != damage::none && !scan.valid_after_damage;
        if (scan.header != header_status::ok || (scan.first_damage != damage::none && !(last && tail_damage))) {
            // Corruption in the middle of the log: quarantine, never skip silently.
            uint64_t end = last ? std::max(scan.next_offset, scan.valid_after_damage ? scan.max_offset_after_damage + 1
                                                                                     : scan.next_offset)
                                : bases[i + 1];
            if (!last) end = std::max(end, base);
            SLUICE_ERROR("bus",
                         "wal: CORRUPTION in %s (%s, %s at byte %llu); quarantined as %s.corrupt, offsets "
                         "[%llu, %llu) unavailable",
                         path.c_str(), wal::to_string(scan.header), wal::to_string(scan.first_damage),
                         static_cast<unsigned long long>(scan.damage_pos), name.c_str(),
                         static_cast<unsigned long long>(base), static_cast<unsigned long long>(end));
            if (auto r = fs_->rename(path, path + ".corrupt"); !r) return r;
            if (auto r = fs_->sync_dir(dir_); !r) return r;
            quarantined_.fetch_add(1);
            if (end > base) missing.push_back({base, end});
            record_event(report, {recovery_event::action::segment_quarantined, id_, path, scan.first_damage,
                                  scan.header, scan.damage_pos, 0, base, end});
            expected = end;
            continue;
        }
        uint64_t size = data->size();
        if (scan.first_damage != damage::none) {
            SLUICE_WARN("bus", "wal: %s: %s at byte %llu; truncating %llu bytes of torn tail", path.c_str(),
                        wal::to_string(scan.first_damage), static_cast<unsigned long long>(scan.damage_pos),
                        static_cast<unsigned long long>(size - scan.valid_bytes));
            if (auto r = fs_->truncate(path, scan.valid_bytes); !r) return r;
            record_event(report, {recovery_event::action::tail_truncated, id_, path, scan.first_damage,
                                  header_status::ok, scan.damage_pos, size - scan.valid_bytes, 0, 0});
            size = scan.valid_bytes;
        }
        segs.push_back({base, path, size, scan.next_offset, scan.newest_time_ms});
        expected = scan.next_offset;
    }

    next_offset_ = expected;
    {
        mutex_lock lock(state_mu_);
        segments_ = segs;
        missing_ = missing;
        visible_end_ = next_offset_;
        for (const auto& s : segs)
            newest_time_ms_ = std::max(newest_time_ms_, s.newest_time_ms);
    }
    for (const auto& s : segs)
        add_bytes(s.bytes);

    // A last segment already at its size limit (e.g. the quota was lowered since it was
    // written) is sealed now rather than reopened, so it can be deleted once consumed.
    if (!segs.empty() && segs.back().end_offset == next_offset_) {
        auto file = fs_->open_writable(segs.back().path);
        if (!file) return file.error();
        if (auto r = (*file)->sync(); !r) return r;  // makes a truncation durable
        active_ = std::move(*file);
        active_records_ = segs.back().end_offset - segs.back().base;
        if (segs.back().bytes >= segment_limit_ && active_records_ > 0) {
            SLUICE_INFO("bus", "wal: partition %u: last segment %s (%llu bytes) is at the segment limit (%llu); sealed",
                        id_, segs.back().path.c_str(), static_cast<unsigned long long>(segs.back().bytes),
                        static_cast<unsigned long long>(segment_limit_));
            if (auto r = create_segment(next_offset_); !r) return r;
        }
    } else {
        if (auto r = create_segment(next_offset_); !r) return r;
    }
    last_sync_ = clock::now();
    last_collect_ = clock::now();
    return ok();
}

}  // namespace sluice::bus::wal::detail
