// SPDX-License-Identifier: Apache-2.0
//
// Implementation of the crash-simulating, fault-injecting file system used by the WAL
// tests (see fault_injection_fs.h for the model).
#include "bus/fault_injection_fs.h"

#include <algorithm>

namespace sluice::bus {
namespace {
std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}
std::error_code io_error() {
    return make_error_code(errc::io_error);
}
}  // namespace

class fault_file final : public writable_file {
public:
    fault_file(fault_injection_fs* fs, std::string path, std::unique_ptr<writable_file> base)
        : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}

    result<void> append(std::string_view data) override {
        fs_->writes_.fetch_add(1);
        if (fs_->crashed() || fs_->should_fail(fault_injection_fs::op::write, path_)) return io_error();
        return base_->append(data);
    }
    result<void> pwrite(uint64_t offset, std::string_view data) override {
        fs_->writes_.fetch_add(1);
        if (fs_->crashed() || fs_->should_fail(fault_injection_fs::op::write, path_)) return io_error();
        return base_->pwrite(offset, data);
    }
    result<void> sync() override {
        if (fs_->crashed() || fs_->should_fail(fault_injection_fs::op::sync, path_)) return io_error();
        auto r = base_->sync();
        if (r) {
            fs_->syncs_.fetch_add(1);
            fs_->on_synced(path_, base_->size());
        }
        return r;
    }
    result<void> truncate(uint64_t size) override {
        if (fs_->crashed() || fs_->should_fail(fault_injection_fs::op::truncate, path_)) return io_error();
        auto r = base_->truncate(size);
        if (r) fs_->on_truncated(path_, size);
        return r;
    }
    uint64_t size() const override { return base_->size(); }

private:
    fault_injection_fs* fs_;
    std::string path_;
    std::unique_ptr<writable_file> base_;
};

fault_injection_fs::fault_injection_fs(std::shared_ptr<file_system> base) : base_(std::move(base)) {}

void fault_injection_fs::inject(op o, std::string path_substring, int count) {
    sluice::mutex_lock lock(mu_);
    faults_.push_back({o, std::move(path_substring), count});
}

void fault_injection_fs::clear_faults() {
    sluice::mutex_lock lock(mu_);
    faults_.clear();
}

void fault_injection_fs::crash() {
    crashed_.store(true);
}

bool fault_injection_fs::should_fail(op o, const std::string& path) {
    sluice::mutex_lock lock(mu_);
    for (auto& f : faults_) {
        if (f.o != o || f.count == 0 || path.find(f.substring) == std::string::npos) continue;
        if (f.count > 0) --f.count;
        return true;
    }
    return false;
}

void fault_injection_fs::on_synced(const std::string& path, uint64_t size) {
    sluice::mutex_lock lock(mu_);
    files_[path].synced_size = size;
}

void fault_injection_fs::on_truncated(const std::string& path, uint64_t size) {
    sluice::mutex_lock lock(mu_);
    auto& st = files_[path];
    st.synced_size = std::min(st.synced_size, size);
}

void fault_injection_fs::drop_unsynced_data() {
    sluice::mutex_lock lock(mu_);
    for (auto& [path, st] : files_) {
        if (st.unsynced_create) {
            (void)base_->unlink(path);
            continue;
        }
        auto size = base_->file_size(path);
        if (size && *size > st.synced_size) (void)base_->truncate(path, st.synced_size);
    }
    files_.clear();
}

result<std::unique_ptr<writable_file>> fault_injection_fs::open_writable(const std::string& path) {
    if (crashed() || should_fail(op::open, path)) return io_error();
    auto existing = base_->file_size(path);
    auto file = base_->open_writable(path);
    if (!file) return file.error();
    {
        sluice::mutex_lock lock(mu_);
        if (!files_.count(path)) {
            file_state st;
            st.synced_size = existing ? *existing : 0;  // what existed before we watched is durable
            st.unsynced_create = !existing;
            files_[path] = st;
        }
    }
    return std::unique_ptr<writable_file>(std::make_unique<fault_file>(this, path, std::move(*file)));
}

result<std::unique_ptr<readable_file>> fault_injection_fs::open_readable(const std::string& path) {
    if (should_fail(op::open, path)) return io_error();
    return base_->open_readable(path);
}

result<void> fault_injection_fs::rename(const std::string& from, const std::string& to) {
    if (crashed() || should_fail(op::rename, from)) return io_error();
    auto r = base_->rename(from, to);
    if (!r) return r;
    sluice::mutex_lock lock(mu_);
    auto it = files_.find(from);
    if (it != files_.end()) {
        file_state st = it->second;
        files_.erase(it);
        files_[to] = st;
    } else {
        files_.erase(to);
    }
    return r;
}

result<void> fault_injection_fs::unlink(const std::string& path) {
    if (crashed()) return io_error();
    auto r = base_->unlink(path);
    if (r) {
        sluice::mutex_lock lock(mu_);
        files_.erase(path);
    }
    return r;
}

result<std::vector<std::string>> fault_injection_fs::list(const std::string& dir) {
    return base_->list(dir);
}

result<uint64_t> fault_injection_fs::file_size(const std::string& path) {
    return base_->file_size(path);
}

result<void> fault_injection_fs::truncate(const std::string& path, uint64_t size) {
    if (crashed() || should_fail(op::truncate, path)) return io_error();
    auto r = base_->truncate(path, size);
    if (r) on_truncated(path, size);
    return r;
}

result<void> fault_injection_fs::sync_dir(const std::string& dir) {
    if (crashed() || should_fail(op::sync_dir, dir)) return io_error();
    auto r = base_->sync_dir(dir);
    if (!r) return r;
    dir_syncs_.fetch_add(1);
    sluice::mutex_lock lock(mu_);
    for (auto& [path, st] : files_) {
        if (parent_dir(path) == dir) st.unsynced_create = false;
    }
    return r;
}

result<void> fault_injection_fs::create_dirs(const std::string& dir) {
    if (crashed()) return io_error();
    return base_->create_dirs(dir);
}

}  // namespace sluice::bus
