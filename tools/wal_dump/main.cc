// SPDX-License-Identifier: Apache-2.0
//
// sluice-wal-dump: offline reader for the WAL's disk format (docs/wal-format.md), in
// the spirit of Mosquitto's db_dump and Redpanda's offline_log_viewer. It only reads:
// it never truncates or quarantines, so it is safe on a live or damaged log.
//
// Usage: sluice-wal-dump DIR [--records] [--from N]   (--help for details)
//   DIR is the WAL directory (partition-*/ and cursors) or one partition directory.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "base/cli.h"
#include "base/endian.h"
#include "bus/file_system.h"
#include "bus/wal/cursors.h"
#include "bus/wal/format.h"
#include "bus/wal/wal.h"

namespace {

using namespace sluice::bus;

std::string format_time(int64_t ms) {
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000 + 1000) % 1000);
    return buf;
}

std::string preview(const std::string& payload) {
    std::string out;
    for (size_t i = 0; i < payload.size() && i < 48; ++i) {
        auto c = static_cast<unsigned char>(payload[i]);
        if (std::isprint(c) && c != '"' && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02x", c);
            out += esc;
        }
    }
    if (payload.size() > 48) out += "...";
    return out;
}

void dump_segment(const std::string& name, uint64_t base, const std::string& data, bool records, uint64_t from) {
    std::vector<std::pair<record, uint64_t>> recs;
    auto scan = wal::scan_segment(data, base, [&](const record& r, uint64_t pos) {
        if (records && r.offset >= from) recs.emplace_back(r, pos);
    });
    std::printf("  segment %s base=%llu size=%zu records=%llu version=%u", name.c_str(),
                static_cast<unsigned long long>(base), data.size(), static_cast<unsigned long long>(scan.records),
                scan.version);
    if (scan.header != wal::header_status::ok) {
        std::printf(" HEADER: %s", wal::to_string(scan.header));
    } else if (scan.first_damage != wal::damage::none) {
        std::printf(" DAMAGE: %s at byte %llu (%s)", wal::to_string(scan.first_damage),
                    static_cast<unsigned long long>(scan.damage_pos),
                    scan.valid_after_damage ? "valid records follow: corruption" : "tail");
    }
    std::printf("\n");
    for (const auto& [r, pos] : recs) {
        std::printf("    offset=%llu pos=%llu time=%s client=%s topic=%s qos=%u packet_id=%u payload=%zuB \"%s\"\n",
                    static_cast<unsigned long long>(r.offset), static_cast<unsigned long long>(pos),
                    format_time(r.msg.receive_time_ms).c_str(), r.msg.client_id.c_str(), r.msg.topic.c_str(), r.msg.qos,
                    r.msg.packet_id, r.msg.payload.size(), preview(r.msg.payload).c_str());
    }
}

void dump_partition(file_system& fs, const std::string& dir, bool records, uint64_t from) {
    auto names = fs.list(dir);
    if (!names) {
        std::printf("  cannot list %s: %s\n", dir.c_str(), names.error().message().c_str());
        return;
    }
    std::sort(names->begin(), names->end());
    for (const auto& name : *names) {
        std::string path = dir;
        path.append("/").append(name);
        auto base = wal::parse_segment_file_name(name);
        if (!base) {
            if (name.size() > 8 && name.compare(name.size() - 8, 8, ".corrupt") == 0) {
                auto size = fs.file_size(path);
                std::printf("  quarantined %s size=%llu\n", name.c_str(),
                            static_cast<unsigned long long>(size ? *size : 0));
            }
            continue;
        }
        auto data = read_whole_file(fs, path);
        if (!data) {
            std::printf("  segment %s: %s\n", name.c_str(), data.error().message().c_str());
            continue;
        }
        dump_segment(name, *base, *data, records, from);
    }
}

}  // namespace

// A function-try-block: CLI11 throws on a badly declared option, and nothing may escape main.
int main(int argc, char** argv) try {
    CLI::App app(
        "Offline reader for Sluice's WAL (docs/wal-format.md): prints segments, damage, quarantined files "
        "and consumer cursors; never modifies anything.",
        "sluice-wal-dump");
    sluice::cli::configure(app);
    std::string dir;
    bool records = false;
    uint64_t from = 0;
    app.add_option("DIR", dir, "WAL directory, one partition directory, or one segment file")->required();
    app.add_flag("--records", records, "Print every record too");
    auto* from_flag = app.add_option("--from", from, "Print the records from this offset on (implies --records)");
    if (const auto status = sluice::cli::parse(app, {argv + 1, argv + argc}, std::cout, std::cerr)) return *status;
    if (from_flag->count() > 0) records = true;
    auto fs = default_fs();
    if (std::filesystem::is_regular_file(dir)) {
        // A single segment file (e.g. a quarantined *.corrupt one or a golden copy).
        auto slash = dir.rfind('/');
        std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
        if (auto dot = name.find(".log"); dot != std::string::npos) name = name.substr(0, dot + 4);
        auto base = wal::parse_segment_file_name(name);
        auto data = read_whole_file(*fs, dir);
        if (!data) {
            std::fprintf(stderr, "sluice-wal-dump: %s: %s\n", dir.c_str(), data.error().message().c_str());
            return 1;
        }
        uint64_t b = base ? *base : 0;
        if (!base && data->size() >= 20) {  // take the base from the header
            b = sluice::load_le64(data->data() + 12);
        }
        std::printf("file %s (base %llu)\n", dir.c_str(), static_cast<unsigned long long>(b));
        dump_segment(name, b, *data, records, from);
        return 0;
    }
    auto names = fs->list(dir);
    bool is_partition = false;
    if (names) {
        for (const auto& n : *names)
            is_partition |= wal::parse_segment_file_name(n).has_value();
    }
    if (is_partition) {
        std::printf("partition dir %s\n", dir.c_str());
        dump_partition(*fs, dir, records, from);
        return 0;
    }
    int found = 0;
    for (uint32_t p = 0; p < 4096; ++p) {
        const std::string pdir = partition_dir(dir, p);
        if (!fs->list(pdir)) break;
        std::printf("partition %u: %s\n", p, pdir.c_str());
        dump_partition(*fs, pdir, records, from);
        ++found;
    }
    auto cursors = wal::load_cursors(*fs, cursors_path(dir));
    if (!cursors) {
        std::printf("cursors: %s\n", cursors.error().message().c_str());
    } else {
        std::printf("cursors: %zu\n", cursors->size());
        for (const auto& [key, off] : *cursors)
            std::printf("  consumer=%s partition=%u next_offset=%llu\n", key.first.c_str(), key.second,
                        static_cast<unsigned long long>(off));
    }
    if (found == 0) {
        std::fprintf(stderr, "sluice-wal-dump: no partitions under %s\n", dir.c_str());
        return 1;
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-wal-dump: %s\n", e.what());
    return 1;
}
