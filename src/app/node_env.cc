// SPDX-License-Identifier: Apache-2.0
#include "app/node_env.h"

#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace sluice::app {

bool write_file_atomically(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        if (!f) return false;
        f << text << '\n';
        if (!f.flush()) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

void remove_port_files(const std::string& data_dir, bool with_http) {
    std::error_code ec;
    for (const char* name : {"mqtt", "mqtts", "ws", "wss"})
        std::filesystem::remove(data_dir + "/" + name + ".port", ec);
    if (with_http) std::filesystem::remove(data_dir + "/http.port", ec);
}

std::string default_web_root() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto candidate = exe.parent_path() / ".." / ".." / "web";
        if (std::filesystem::exists(candidate / "index.html", ec)) {
            return std::filesystem::weakly_canonical(candidate, ec).string();
        }
    }
    return "web";
}

void raise_open_files_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

}  // namespace sluice::app
