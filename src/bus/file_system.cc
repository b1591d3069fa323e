// SPDX-License-Identifier: Apache-2.0
//
// POSIX implementation of bus::file_system. Every syscall failure is logged with its
// errno (the error value itself only carries the kind) and mapped to errc.
#include "bus/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace sluice::bus {
namespace {

std::error_code from_errno(const char* op, const std::string& path, int err) {
    if (err == ENOENT) return make_error_code(errc::not_found);
    SLUICE_WARN("bus", "%s %s: %s", op, path.c_str(), std::strerror(err));
    return make_error_code(errc::io_error);
}

class posix_writable final : public writable_file {
public:
    posix_writable(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
    ~posix_writable() override { ::close(fd_); }

    result<void> append(std::string_view data) override { return pwrite(size_, data); }

    result<void> pwrite(uint64_t offset, std::string_view data) override {
        const char* p = data.data();
        size_t left = data.size();
        uint64_t at = offset;
        while (left > 0) {
            ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(at));
            if (n < 0) {
                if (errno == EINTR) continue;
                return from_errno("pwrite", path_, errno);
            }
            p += n;
            left -= static_cast<size_t>(n);
            at += static_cast<uint64_t>(n);
        }
        if (at > size_) size_ = at;
        return ok();
    }

    result<void> sync() override {
        if (::fdatasync(fd_) != 0) return from_errno("fdatasync", path_, errno);
        return ok();
    }

    result<void> truncate(uint64_t size) override {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return from_errno("ftruncate", path_, errno);
        size_ = size;
        return ok();
    }

    uint64_t size() const override { return size_; }

private:
    std::string path_;
    int fd_;
    uint64_t size_;
};

class posix_readable final : public readable_file {
public:
    posix_readable(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
    ~posix_readable() override { ::close(fd_); }

    result<size_t> read_at(uint64_t offset, char* dst, size_t n) override {
        size_t done = 0;
        while (done < n) {
            ssize_t got = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
            if (got < 0) {
                if (errno == EINTR) continue;
                return from_errno("pread", path_, errno);
            }
            if (got == 0) break;
            done += static_cast<size_t>(got);
        }
        return done;
    }

    result<uint64_t> size() override {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return from_errno("fstat", path_, errno);
        return static_cast<uint64_t>(st.st_size);
    }

private:
    std::string path_;
    int fd_;
};

class posix_fs final : public file_system {
public:
    result<std::unique_ptr<writable_file>> open_writable(const std::string& path) override {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return from_errno("open", path, errno);
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            int err = errno;
            ::close(fd);
            return from_errno("fstat", path, err);
        }
        return std::unique_ptr<writable_file>(
            std::make_unique<posix_writable>(path, fd, static_cast<uint64_t>(st.st_size)));
    }

    result<std::unique_ptr<readable_file>> open_readable(const std::string& path) override {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return from_errno("open", path, errno);
        return std::unique_ptr<readable_file>(std::make_unique<posix_readable>(path, fd));
    }

    result<void> rename(const std::string& from, const std::string& to) override {
        if (::rename(from.c_str(), to.c_str()) != 0) return from_errno("rename", from, errno);
        return ok();
    }

    result<void> unlink(const std::string& path) override {
        if (::unlink(path.c_str()) != 0) return from_errno("unlink", path, errno);
        return ok();
    }

    result<std::vector<std::string>> list(const std::string& dir) override {
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) return from_errno("opendir", dir, errno);
        std::vector<std::string> names;
        while (struct dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            struct stat st {};
            std::string full = dir + "/" + name;
            if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) names.push_back(std::move(name));
        }
        ::closedir(d);
        return names;
    }

    result<uint64_t> file_size(const std::string& path) override {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return from_errno("stat", path, errno);
        return static_cast<uint64_t>(st.st_size);
    }

    result<void> truncate(const std::string& path, uint64_t size) override {
        if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) return from_errno("truncate", path, errno);
        return ok();
    }

    result<void> sync_dir(const std::string& dir) override {
        int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return from_errno("open dir", dir, errno);
        int rc = ::fsync(fd);
        int err = errno;
        ::close(fd);
        if (rc != 0) return from_errno("fsync dir", dir, err);
        return ok();
    }

    result<void> create_dirs(const std::string& dir) override {
        if (dir.empty()) return ok();
        for (size_t pos = 1; pos <= dir.size(); ++pos) {
            if (pos != dir.size() && dir[pos] != '/') continue;
            std::string prefix = dir.substr(0, pos);
            if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return from_errno("mkdir", prefix, errno);
        }
        return ok();
    }
};

}  // namespace

std::shared_ptr<file_system> default_fs() {
    static const std::shared_ptr<file_system> instance = std::make_shared<posix_fs>();
    return instance;
}

result<std::string> read_whole_file(file_system& fs, const std::string& path) {
    auto file = fs.open_readable(path);
    if (!file) return file.error();
    auto size = (*file)->size();
    if (!size) return size.error();
    std::string data(static_cast<size_t>(*size), '\0');
    auto got = (*file)->read_at(0, data.data(), data.size());
    if (!got) return got.error();
    data.resize(*got);
    return data;
}

}  // namespace sluice::bus
