// SPDX-License-Identifier: Apache-2.0
//
// Helpers shared by the bus tests: a self-deleting temporary directory, deterministic
// messages, and a blocking append for tests that do not exercise concurrency.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "bus/bus.h"
#include "bus/wal/wal.h"

namespace sluice::bus::test {

class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-bus-XXXXXX").string();
        char* made = ::mkdtemp(tmpl.data());
        if (made == nullptr) std::abort();
        path_ = made;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }
    std::string wal() const { return path_ + "/wal"; }

private:
    std::string path_;
};

inline message make_message(uint64_t i, size_t payload_size = 100) {
    message m;
    m.receive_time_ms = 1732212345000 + static_cast<int64_t>(i);
    m.client_id = "device-" + std::to_string(i % 7);
    m.topic = "devices/d" + std::to_string(i % 7) + "/telemetry";
    m.payload.assign(payload_size, static_cast<char>('a' + i % 26));
    if (payload_size >= 8) m.payload.replace(0, std::to_string(i).size(), std::to_string(i));
    m.qos = static_cast<uint8_t>(1 + i % 2);
    return m;
}

inline result<uint64_t> append_wait(bus& b, uint32_t partition, message m) {
    std::promise<result<uint64_t>> done;
    auto f = done.get_future();
    b.append(partition, std::move(m), [&done](result<uint64_t> r) { done.set_value(r); });
    return f.get();
}

// Reads every record from `from` to the durable end.
inline std::vector<record> read_all(bus& b, uint32_t partition, uint64_t from = 0) {
    std::vector<record> out;
    auto r = b.open_reader(partition, from);
    if (!r) return out;
    for (;;) {
        auto n = (*r)->poll(out, 1000, std::chrono::milliseconds(0));
        if (!n || *n == 0) break;
    }
    return out;
}

inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline void spit(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

}  // namespace sluice::bus::test
