// SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for everything the state store decodes from disk: the journal/snapshot
// record scan and the value codecs. Beyond "no crash, no sanitizer report", it checks
// that decoding is exact: a record or value that decodes re-encodes to the same bytes, so
// recovery can never silently reinterpret what it reads. The first input byte picks the
// decoder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "broker/persist/format.h"
#include "broker/persist/records.h"

namespace {

using namespace sluice::broker::persist;

void require(bool ok) {
    if (!ok) std::abort();
}

void fuzz_scan(std::string_view in) {
    size_t pos = 0;
    const auto s = format::scan(in, [&](const format::record_view& r) {
        std::string again;
        format::encode_record(again, r.o, r.kind, r.key, r.value);
        require(in.substr(pos, again.size()) == again);
        pos += again.size();
    });
    require(s.valid_bytes == pos && s.valid_bytes <= in.size());
    require((s.first_damage == format::damage::none) == (s.valid_bytes == in.size()));
}

template <typename Decode>
void fuzz_value(std::string_view in, Decode decode) {
    auto r = decode(in);
    if (r) require(encode(*r) == in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 7) {
        case 0:
            fuzz_scan(in);
            break;
        case 1:
            fuzz_value(in, decode_message_record);
            break;
        case 2:
            fuzz_value(in, decode_session_record);
            break;
        case 3:
            fuzz_value(in, decode_session_message_record);
            break;
        case 4:
            fuzz_value(in, decode_resend_entry_record);
            break;
        case 5:
            fuzz_value(in, decode_resend_checkpoint_record);
            break;
        default:
            fuzz_value(in, decode_spool_record);
            break;
    }
    return 0;
}
