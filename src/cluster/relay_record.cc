// SPDX-License-Identifier: Apache-2.0
#include "cluster/relay_record.h"

#include "base/endian.h"
#include "broker/persist/errc.h"
#include "bus/wal/crc32c.h"

namespace sluice::cluster {
namespace {

constexpr uint8_t k_version = 1;
constexpr size_t k_header = 1 + 8;

}  // namespace

std::string encode(const relayed_message& m) {
    std::string out;
    out.push_back(static_cast<char>(k_version));
    append_le64(out, m.node);
    out += broker::persist::encode(m.message);
    return out;
}

result<relayed_message> decode_relayed(std::string_view bytes) {
    if (bytes.size() < k_header) return make_error_code(broker::persist::errc::corruption);
    if (static_cast<uint8_t>(bytes[0]) != k_version) return make_error_code(broker::persist::errc::unsupported_version);
    relayed_message m;
    m.node = load_le64(bytes.data() + 1);
    auto r = broker::persist::decode_message_record(bytes.substr(k_header));
    if (!r) return r.error();
    m.message = std::move(r).value();
    return m;
}

std::string encode(const cluster_session& s) {
    std::string out;
    out.push_back(static_cast<char>(k_version));
    append_le64(out, s.owner);
    append_le64(out, s.epoch);
    append_le64(out, static_cast<uint64_t>(s.written_at_ms));
    out.push_back(s.ended ? 1 : 0);
    append_le32(out, static_cast<uint32_t>(s.positions.size()));
    for (int64_t p : s.positions)
        append_le64(out, static_cast<uint64_t>(p));
    if (!s.ended) out += broker::persist::encode(s.session);
    return out;
}

result<cluster_session> decode_cluster_session(std::string_view bytes) {
    constexpr size_t k_fixed = 1 + 8 + 8 + 8 + 1 + 4;
    if (bytes.size() < k_fixed) return make_error_code(broker::persist::errc::corruption);
    if (static_cast<uint8_t>(bytes[0]) != k_version) return make_error_code(broker::persist::errc::unsupported_version);
    cluster_session s;
    const char* p = bytes.data() + 1;
    s.owner = load_le64(p);
    s.epoch = load_le64(p + 8);
    s.written_at_ms = static_cast<int64_t>(load_le64(p + 16));
    s.ended = p[24] != 0;
    const uint32_t n = load_le32(p + 25);
    if ((bytes.size() - k_fixed) / 8 < n) return make_error_code(broker::persist::errc::corruption);
    size_t at = k_fixed;
    for (uint32_t i = 0; i < n; ++i, at += 8)
        s.positions.push_back(static_cast<int64_t>(load_le64(bytes.data() + at)));
    if (s.ended) {
        if (at != bytes.size()) return make_error_code(broker::persist::errc::corruption);
        return s;
    }
    auto r = broker::persist::decode_session_record(bytes.substr(at));
    if (!r) return r.error();
    s.session = std::move(r).value();
    return s;
}

uint32_t partition_of(std::string_view topic, uint32_t partitions) {
    return partitions == 0 ? 0 : bus::wal::crc32c(topic) % partitions;
}

}  // namespace sluice::cluster
