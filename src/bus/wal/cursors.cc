// SPDX-License-Identifier: Apache-2.0
//
// Encoding and atomic storage of the WAL cursor file (docs/wal-format.md).
#include "bus/wal/cursors.h"

#include "base/endian.h"
#include "bus/wal/crc32c.h"

namespace sluice::bus::wal {
namespace {
constexpr char k_magic[4] = {'S', 'L', 'C', 'U'};
constexpr uint16_t k_version = 1;

std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}
}  // namespace

std::string encode_cursors(const cursor_map& cursors) {
    std::string out(k_magic, 4);
    append_le16(out, k_version);
    append_le32(out, static_cast<uint32_t>(cursors.size()));
    for (const auto& [key, offset] : cursors) {
        append_le32(out, key.second);
        append_le16(out, static_cast<uint16_t>(key.first.size()));
        out.append(key.first);
        append_le64(out, offset);
    }
    append_le32(out, crc32c(out));
    return out;
}

result<cursor_map> decode_cursors(std::string_view bytes) {
    auto bad = make_error_code(errc::corruption);
    if (bytes.size() < 14 || bytes.substr(0, 4) != std::string_view(k_magic, 4)) return bad;
    if (load_le32(bytes.data() + bytes.size() - 4) != crc32c(bytes.data(), bytes.size() - 4)) return bad;
    if (load_le16(bytes.data() + 4) != k_version) return bad;
    const uint64_t count = load_le32(bytes.data() + 6);
    size_t at = 10;
    const size_t end = bytes.size() - 4;
    cursor_map out;
    for (uint64_t i = 0; i < count; ++i) {
        if (end - at < 6) return bad;
        const uint32_t partition = load_le32(bytes.data() + at);
        const size_t len = load_le16(bytes.data() + at + 4);
        at += 6;
        if (end - at < len + 8) return bad;
        std::string name(bytes.substr(at, len));
        at += len;
        out[{std::move(name), partition}] = load_le64(bytes.data() + at);
        at += 8;
    }
    if (at != end) return bad;
    return out;
}

result<void> store_cursors(file_system& fs, const std::string& path, const cursor_map& cursors) {
    const std::string tmp = path + ".tmp";
    (void)fs.unlink(tmp);
    {
        auto file = fs.open_writable(tmp);
        if (!file) return file.error();
        if (auto r = (*file)->append(encode_cursors(cursors)); !r) return r;
        if (auto r = (*file)->sync(); !r) return r;
    }
    if (auto r = fs.rename(tmp, path); !r) return r;
    return fs.sync_dir(parent_dir(path));
}

result<cursor_map> load_cursors(file_system& fs, const std::string& path) {
    auto data = read_whole_file(fs, path);
    if (!data) {
        if (data.error() == make_error_code(errc::not_found)) return cursor_map{};
        return data.error();
    }
    return decode_cursors(*data);
}

}  // namespace sluice::bus::wal
