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

uint32_t partition_of(std::string_view topic, uint32_t partitions) {
    return partitions == 0 ? 0 : bus::wal::crc32c(topic) % partitions;
}

}  // namespace sluice::cluster
