// SPDX-License-Identifier: Apache-2.0
//
// processor: the order of the pure pipeline stages and the dead-letter reasons of the
// message-level refusals (see processor.h).
#include "pipeline/processor.h"

#include "pipeline/reason.h"

namespace sluice::pipeline {

using detail::name_len;
using detail::set_reason;

processor::processor(const rule_set& rules, const metric_dictionary& metrics, device_fn devices, anomaly_config cfg,
                     sequence_tracker::config seq_cfg)
    : rules_(rules), devices_(std::move(devices)), transformer_(metrics, cfg, seq_cfg) {
    reason_.reserve(320);
}

result<void> processor::refuse(std::error_code ec) {
    ++totals_.dead_letters;
    return ec;
}

result<void> processor::process(const message_view& m, int64_t now_ms, std::vector<telemetry_row>& rows,
                                std::vector<rejected_reading>& rejected) {
    ++totals_.messages;
    reason_.clear();
    const auto match = rules_.match(m.topic);
    if (!match) {
        return refuse(set_reason(reason_, errc::no_matching_rule, "topic '%.*s' matches no ingest rule",
                                 name_len(m.topic.size()), m.topic.data()));
    }
    if (auto r = decoder_.decode(m.payload, match->format, m.receive_time_ms, decoded_); !r) {
        reason_.assign(decoder_.reason());
        return refuse(r.error());
    }
    const std::string_view key = match->device.empty() ? m.client_id : match->device;
    if (key.empty()) {
        return refuse(set_reason(reason_, errc::unknown_device,
                                 "no device key: the rule has no {device} and the "
                                 "client id is empty"));
    }
    if (!decoded_.device.empty() && decoded_.device != key) {
        return refuse(set_reason(reason_, errc::device_mismatch, "payload device '%.*s' differs from device '%.*s'",
                                 name_len(decoded_.device.size()), decoded_.device.data(), name_len(key.size()),
                                 key.data()));
    }
    const auto device_id = devices_(key, *match);
    if (!device_id) {
        return refuse(
            set_reason(reason_, errc::unknown_device, "unknown device '%.*s'", name_len(key.size()), key.data()));
    }
    if (decoded_.seq && sequence_filter_ && !sequence_filter_(*device_id, *decoded_.seq, decoded_.seq_restart)) {
        // A resend of a payload already taken (QoS 1 retransmission after a lost PUBACK):
        // dropped, not a dead letter.
        ++totals_.duplicates;
        return ok();
    }
    const std::size_t rows_before = rows.size(), rejected_before = rejected.size();
    transformer_.apply(*device_id, key, decoded_, now_ms, rows, rejected);
    totals_.rows += rows.size() - rows_before;
    totals_.rejected_readings += rejected.size() - rejected_before;
    return ok();
}

}  // namespace sluice::pipeline
