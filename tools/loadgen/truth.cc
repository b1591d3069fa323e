// SPDX-License-Identifier: Apache-2.0
//
// Encoding and parsing of the truth carried in load-generator payloads (see truth.h).
// The binary parser only walks the header and reading sizes of the edge format; the
// unit tests check it against src/pipeline's full decoder.
#include "truth.h"

#include <charconv>
#include <cstring>
#include <ctime>

#include "base/endian.h"

namespace sluice::loadgen {
namespace {

bool get_varint(std::string_view in, size_t& at, uint64_t& v) {
    v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (at >= in.size()) return false;
        const auto b = static_cast<uint8_t>(in[at++]);
        v |= uint64_t{b & 0x7Fu} << shift;
        if ((b & 0x80) == 0) return true;
    }
    return false;
}

}  // namespace

int64_t unix_now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void encode_raw(const truth& t, size_t size, std::string& out) {
    const size_t start = out.size();
    out.append("SLG1", 4);
    append_le32(out, t.device);
    append_le64(out, t.seq);
    append_le64(out, static_cast<uint64_t>(t.time_ns));
    const size_t written = out.size() - start;
    if (size > written) out.append(size - written, 'x');
}

std::optional<truth> decode_raw(std::string_view payload) {
    if (payload.size() < raw_header_size || payload.substr(0, 4) != "SLG1") return std::nullopt;
    truth t;
    t.device = load_le32(payload.data() + 4);
    t.seq = load_le64(payload.data() + 8);
    t.time_ns = static_cast<int64_t>(load_le64(payload.data() + 16));
    return t;
}

std::optional<batch_truth> decode_binary_truth(std::string_view p) {
    // magic, flags, seq varint, 6-byte base time, count, then per reading:
    // dt varint, metric id varint, tag byte (kind << 4 | scale), value.
    if (p.size() < 2 || static_cast<uint8_t>(p[0]) != 0xA1) return std::nullopt;
    size_t at = 2;
    batch_truth t;
    if (!get_varint(p, at, t.seq)) return std::nullopt;
    if (at + 7 > p.size()) return std::nullopt;
    uint64_t time = load_le(p.data() + at, 6);
    at += 6;
    t.readings = static_cast<uint8_t>(p[at++]);
    for (uint32_t i = 0; i < t.readings; ++i) {
        uint64_t dt = 0, id = 0;
        if (!get_varint(p, at, dt) || !get_varint(p, at, id) || at >= p.size()) return std::nullopt;
        const auto kind = static_cast<uint8_t>(p[at++]) >> 4;
        static constexpr size_t sizes[] = {1, 2, 4, 4, 8};
        if (kind > 4) return std::nullopt;
        at += sizes[kind];
        if (at > p.size()) return std::nullopt;
        time += dt;
    }
    t.newest_ms = static_cast<int64_t>(time);
    return t;
}

std::optional<batch_truth> decode_json_truth(std::string_view p) {
    // Written by this tool, so a targeted scan is enough: "seq": N and the last "ts": N.
    const size_t s = p.find("\"seq\":");
    if (s == std::string_view::npos) return std::nullopt;
    batch_truth t;
    const char* begin = p.data() + s + 6;
    if (std::from_chars(begin, p.data() + p.size(), t.seq).ec != std::errc{}) return std::nullopt;
    size_t at = 0;
    for (;;) {
        const size_t ts = p.find("\"ts\":", at);
        if (ts == std::string_view::npos) break;
        int64_t v = 0;
        if (std::from_chars(p.data() + ts + 5, p.data() + p.size(), v).ec != std::errc{}) return std::nullopt;
        t.newest_ms = v > t.newest_ms ? v : t.newest_ms;
        ++t.readings;
        at = ts + 5;
    }
    if (t.readings == 0) return std::nullopt;
    return t;
}

topic_template::topic_template(std::string_view tpl, std::string device_prefix)
    : device_prefix_(std::move(device_prefix)) {
    const size_t at = tpl.find("{device}");
    if (at == std::string_view::npos) {
        prefix_ = std::string(tpl);
        return;
    }
    has_device_ = true;
    prefix_ = std::string(tpl.substr(0, at));
    suffix_ = std::string(tpl.substr(at + 8));
}

std::string topic_template::device_name(uint32_t device) const {
    return device_prefix_ + std::to_string(device);
}

std::string topic_template::topic_for(uint32_t device) const {
    if (!has_device_) return prefix_;
    return prefix_ + device_name(device) + suffix_;
}

std::optional<uint32_t> topic_template::device_of(std::string_view topic) const {
    if (!has_device_) return std::nullopt;
    if (topic.size() < prefix_.size() + suffix_.size() + device_prefix_.size() + 1) return std::nullopt;
    if (topic.substr(0, prefix_.size()) != prefix_) return std::nullopt;
    if (topic.substr(topic.size() - suffix_.size()) != suffix_) return std::nullopt;
    std::string_view name = topic.substr(prefix_.size(), topic.size() - prefix_.size() - suffix_.size());
    if (name.substr(0, device_prefix_.size()) != device_prefix_) return std::nullopt;
    name.remove_prefix(device_prefix_.size());
    uint32_t d = 0;
    const auto r = std::from_chars(name.data(), name.data() + name.size(), d);
    if (r.ec != std::errc{} || r.ptr != name.data() + name.size()) return std::nullopt;
    return d;
}

std::string topic_template::filter() const {
    if (!has_device_) return prefix_;
    const bool whole_level = (prefix_.empty() || prefix_.back() == '/') && (suffix_.empty() || suffix_.front() == '/');
    if (whole_level) return prefix_ + "+" + suffix_;
    return "#";
}

}  // namespace sluice::loadgen
