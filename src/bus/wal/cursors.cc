// SPDX-License-Identifier: Apache-2.0
//
// Encoding and atomic storage of the WAL cursor file (docs/wal-format.md).
#include "bus/wal/cursors.h"

#include "bus/wal/crc32c.h"

namespace sluice::bus::wal {
namespace {
constexpr char k_magic[4] = {'S', 'L', 'C', 'U'};
constexpr uint16_t k_version = 1;

void put(std::string& out, uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
uint64_t get(std::string_view s, size_t at, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
    return v;
}
std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}
}  // namespace

std::string encode_cursors(const cursor_map& cursors) {
    std::string out(k_magic, 4);
    put(out, k_version, 2);
    put(out, cursors.size(), 4);
    for (const auto& [key, offset] : cursors) {
        put(out, key.second, 4);
        put(out, key.first.size(), 2);
        out.append(key.first);
        put(out, offset, 8);
    }
    put(out, crc32c(out), 4);
    return out;
}

result<cursor_map> decode_cursors(std::string_view bytes) {
    auto bad = make_error_code(errc::corruption);
    if (bytes.size() < 14 || bytes.substr(0, 4) != std::string_view(k_magic, 4)) return bad;
    if (get(bytes, bytes.size() - 4, 4) != crc32c(bytes.data(), bytes.size() - 4)) return bad;
    if (get(bytes, 4, 2) != k_version) return bad;
    uint64_t count = get(bytes, 6, 4);
    size_t at = 10;
    const size_t end = bytes.size() - 4;
    cursor_map out;
    for (uint64_t i = 0; i < count; ++i) {
        if (end - at < 6) return bad;
        auto partition = static_cast<uint32_t>(get(bytes, at, 4));
        auto len = static_cast<size_t>(get(bytes, at + 4, 2));
        at += 6;
        if (end - at < len + 8) return bad;
        std::string name(bytes.substr(at, len));
        at += len;
        out[{std::move(name), partition}] = get(bytes, at, 8);
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
