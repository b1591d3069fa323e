// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: arbitrary bytes as a WAL segment file, fed to the pure scanner, to the
// cursor-file decoder and to full recovery + reading through open_wal(). Nothing may
// crash, and recovery must leave a log that reads back cleanly and accepts appends.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "base/log.h"
#include "bus/file_system.h"
#include "bus/wal/cursors.h"
#include "bus/wal/format.h"
#include "bus/wal/wal.h"

namespace {

using namespace sluice::bus;

const std::string& work_dir() {
    static const std::string dir = [] {
        // tmpfs when available: recovery fsyncs, and a disk would make each run slow.
        std::filesystem::path root = std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                               : std::filesystem::temp_directory_path();
        std::string tmpl = (root / "sluice-fuzz-wal-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
        sluice::log::set_level(sluice::log::level::off);
        return tmpl;
    }();
    return dir;
}

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "wal_recover invariant failed: %s\n", what);
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)work_dir();
    std::atexit([] {
        std::error_code ec;
        std::filesystem::remove_all(work_dir(), ec);
    });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    // 1. The pure scanner: its answer must be self-consistent.
    uint64_t visited = 0;
    auto scan = wal::scan_segment(bytes, 0, [&](const record& r, uint64_t pos) {
        check(r.offset == visited, "visited offsets are dense");
        check(pos < size, "record position inside the file");
        ++visited;
    });
    check(scan.records == visited, "record count");
    check(scan.next_offset == scan.records, "next offset");
    check(scan.valid_bytes <= size, "valid bytes within the file");
    (void)wal::decode_cursors(bytes);

    // 2. Recovery and reading on a real directory holding this segment.
    const std::string wal_dir = work_dir() + "/wal";
    std::error_code ec;
    std::filesystem::remove_all(wal_dir, ec);
    std::filesystem::create_directories(partition_dir(wal_dir, 0));
    {
        auto fs = default_fs();
        auto f = fs->open_writable(partition_dir(wal_dir, 0) + "/" + wal::segment_file_name(0));
        check(f.has_value(), "create segment");
        check((*f)->append(bytes).has_value(), "write segment");
    }
    wal_options o;
    o.dir = wal_dir;
    o.segment_bytes = 1 << 20;
    o.group_commit_max_delay = std::chrono::microseconds(0);
    o.mode = durability::none;
    auto b = open_wal(o);
    if (!b) return 0;  // e.g. an intact header of an unsupported version
    const uint64_t end = (*b)->get_stats(0).durable_end;
    if (scan.header == wal::header_status::ok && scan.first_damage == wal::damage::none)
        check(end == scan.records, "clean segment keeps every record");
    auto reader = (*b)->open_reader(0, (*b)->get_stats(0).oldest_offset);
    if (reader) {
        std::vector<record> out;
        for (int i = 0; i < 64; ++i) {
            auto n = (*reader)->poll(out, 256, std::chrono::milliseconds(0));
            if (!n || *n == 0) break;
        }
    }
    message m;
    m.topic = "t";
    bool appended = false;
    (*b)->append(0, m, [&](sluice::result<uint64_t> r) {
        appended = true;
        check(!r.has_value() || *r == end, "append continues the offsets");
    });
    (*b)->stop();
    check(appended, "append callback ran");
    return 0;
}
