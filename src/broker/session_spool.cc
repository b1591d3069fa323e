// SPDX-License-Identifier: Apache-2.0
#include "broker/session_spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>
#include <utility>

#include "base/endian.h"
#include "base/errno_text.h"
#include "base/log.h"
#include "broker/persist/errc.h"
#include "bus/file_system.h"
#include "bus/framing.h"
#include "bus/numbered_file.h"

namespace sluice::broker {
namespace {

constexpr const char* k_log = "spool";
constexpr std::string_view k_prefix = "spool-";
constexpr std::string_view k_suffix = ".q";
constexpr std::string_view k_header{"SLUICE-SPOOL\x01\0\0\0", 16};  // magic, format version 1
static_assert(k_header.size() == k_spool_header_size);

// sync_written: one more thread per this many files to sync, up to this many threads.
constexpr size_t k_files_per_sync_thread = 4;
constexpr size_t k_max_sync_threads = 32;

constexpr bus::framing::layout k_layout{bus::framing::k_prefix_size, 1, 320u << 20};

std::error_code io_error(const char* op, const std::string& path, int err) {
    SLUICE_ERROR(k_log, "%s %s: %s", op, path.c_str(), errno_text(err).c_str());
    return make_error_code(persist::errc::io_error);
}

}  // namespace

std::string_view spool_file_header() {
    return k_header;
}

spool_file::~spool_file() {
    ::close(fd_);
}

result<void> spool_file::write_at(uint64_t offset, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            return io_error("pwrite", path_, errno);
        }
        bytes.remove_prefix(static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return ok();
}

result<size_t> spool_file::read_at(uint64_t offset, char* dst, size_t n) const {
    size_t done = 0;
    while (done < n) {
        const ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return io_error("pread", path_, errno);
        }
        if (r == 0) break;
        done += static_cast<size_t>(r);
    }
    return done;
}

result<void> spool_file::sync() {
    if (::fdatasync(fd_) != 0) return io_error("fdatasync", path_, errno);
    return ok();
}

result<std::unique_ptr<spool_directory>> spool_directory::open(const std::string& dir) {
    auto fs = bus::default_fs();
    if (auto r = fs->create_dirs(dir); !r) return make_error_code(persist::errc::io_error);
    auto names = fs->list(dir);
    if (!names) return make_error_code(persist::errc::io_error);
    uint64_t next = 1;
    for (const auto& name : *names) {
        if (auto id = bus::parse_numbered_file_name(name, k_prefix, k_suffix)) next = std::max(next, *id + 1);
    }
    return std::unique_ptr<spool_directory>(new spool_directory(dir, next));
}

std::string spool_directory::path_of(uint64_t id) const {
    return dir_ + "/" + bus::numbered_file_name(k_prefix, id, k_suffix);
}

result<std::shared_ptr<spool_file>> spool_directory::create() {
    uint64_t id = 0;
    {
        mutex_lock lock(mu_);
        id = next_id_++;
    }
    const std::string path = path_of(id);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("create", path, errno);
    auto f = std::make_shared<spool_file>(id, path, fd);
    if (auto r = f->write_at(0, k_header); !r) return r.error();
    mutex_lock lock(mu_);
    created_since_sync_ = true;
    written_.push_back(f);
    return f;
}

result<std::shared_ptr<spool_file>> spool_directory::open_file(uint64_t id) {
    const std::string path = path_of(id);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return io_error("open", path, errno);
    auto f = std::make_shared<spool_file>(id, path, fd);
    char header[k_spool_header_size];
    auto n = f->read_at(0, header, sizeof header);
    if (!n) return n.error();
    if (*n != sizeof header || std::string_view(header, sizeof header) != k_header) {
        SLUICE_ERROR(k_log, "%s is not a spool file of this format", path.c_str());
        return make_error_code(persist::errc::unsupported_version);
    }
    return f;
}

void spool_directory::written(const std::shared_ptr<spool_file>& f) {
    mutex_lock lock(mu_);
    // Consecutive writes to one file are the common case: keep the list short.
    if (written_.empty() || written_.back() != f) written_.push_back(f);
}

std::error_code spool_directory::sync_written() {
    std::vector<std::shared_ptr<spool_file>> files;
    bool created = false;
    {
        mutex_lock lock(mu_);
        files.swap(written_);
        created = std::exchange(created_since_sync_, false);
    }
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    // Many files (a message for many offline sessions) are synced side by side: the file
    // system commits concurrent syncs together (measured here, ext4: 1000 files 140 ms one
    // after another, 40 ms from 32 threads).
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    auto sync_some = [&] {
        for (size_t i; (i = next.fetch_add(1)) < files.size();) {
            if (!files[i]->sync()) failed = true;
        }
    };
    std::vector<std::thread> helpers;
    const size_t extra = std::min<size_t>(files.size() / k_files_per_sync_thread, k_max_sync_threads - 1);
    for (size_t t = 0; t < extra; ++t)
        helpers.emplace_back(sync_some);
    sync_some();
    for (auto& t : helpers)
        t.join();
    std::error_code first;
    if (failed) first = make_error_code(persist::errc::io_error);
    if (created) {
        if (auto r = bus::default_fs()->sync_dir(dir_); !r && !first) first = make_error_code(persist::errc::io_error);
    }
    return first;
}

void spool_directory::remove(uint64_t id) {
    const std::string path = path_of(id);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) (void)io_error("unlink", path, errno);
}

void spool_directory::remove_all_but(const std::unordered_set<uint64_t>& live) {
    auto names = bus::default_fs()->list(dir_);
    if (!names) return;
    size_t removed = 0;
    for (const auto& name : *names) {
        auto id = bus::parse_numbered_file_name(name, k_prefix, k_suffix);
        if (!id || live.contains(*id)) continue;
        remove(*id);
        ++removed;
    }
    if (removed > 0) SLUICE_INFO(k_log, "removed %zu spool files no session refers to", removed);
}

void encode_spool_entry(std::string& out, const persist::session_message_record& m) {
    const std::string body = persist::encode(m);
    const size_t start = bus::framing::begin_record(out, static_cast<uint32_t>(body.size()));
    out.append(body);
    bus::framing::seal_record(out, start);
}

result<std::vector<spool_entry>> read_spool(const spool_file& f, uint64_t from, uint64_t end, size_t max_bytes) {
    std::vector<spool_entry> entries;
    if (from >= end) return entries;
    std::string buf(static_cast<size_t>(std::min<uint64_t>(end - from, std::max<size_t>(max_bytes, 64))), '\0');
    auto n = f.read_at(from, buf.data(), buf.size());
    if (!n) return n.error();
    if (*n < buf.size()) {  // the durable range is longer than the file: bytes were lost
        SLUICE_ERROR(k_log, "spool file %llu ends at %llu, inside its queued range (to %llu)",
                     static_cast<unsigned long long>(f.id()), static_cast<unsigned long long>(from + *n),
                     static_cast<unsigned long long>(end));
        return make_error_code(persist::errc::corruption);
    }
    size_t pos = 0;
    while (pos < buf.size()) {
        bus::framing::frame fr;
        std::string_view rest(buf.data() + pos, buf.size() - pos);
        const auto d = bus::framing::check_frame(rest, k_layout, fr);
        if (d == bus::framing::damage::none) {
            auto rec = persist::decode_session_message_record(fr.body);
            if (!rec) return rec.error();
            pos += fr.size;
            entries.push_back(spool_entry{std::move(rec).value(), from + pos});
            continue;
        }
        const bool cut_by_buffer = from + buf.size() < end && (d == bus::framing::damage::torn_record ||
                                                               d == bus::framing::damage::truncated_header);
        if (!cut_by_buffer) {
            SLUICE_ERROR(k_log, "spool file %llu is damaged at offset %llu (%s)",
                         static_cast<unsigned long long>(f.id()), static_cast<unsigned long long>(from + pos),
                         bus::framing::to_string(d));
            return make_error_code(persist::errc::corruption);
        }
        if (!entries.empty()) break;  // the next chunk starts with it
        // One record larger than max_bytes: read exactly it.
        if (rest.size() < bus::framing::k_prefix_size) {
            max_bytes = bus::framing::k_prefix_size;
        } else {
            max_bytes = bus::framing::k_prefix_size + load_le32(rest.data() + 4);
        }
        if (max_bytes <= buf.size()) return make_error_code(persist::errc::corruption);
        return read_spool(f, from, end, max_bytes);
    }
    return entries;
}

}  // namespace sluice::broker
