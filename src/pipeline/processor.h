// SPDX-License-Identifier: Apache-2.0
//
// The pure pipeline for one bus message: topic rule -> decode -> device -> transforms.
// The worker that polls the bus feeds each message here and hands the rows and dead
// letters to the store; everything that needs I/O (the device registry) comes in as a
// callback, so this runs in unit tests exactly as in production.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "pipeline/decoder.h"
#include "pipeline/errc.h"
#include "pipeline/topic_rules.h"
#include "pipeline/transforms.h"

namespace sluice::pipeline {

// One bus message as the pipeline sees it (views into bus::message).
struct message_view {
    std::string_view topic;
    std::string_view client_id;
    std::string_view payload;
    int64_t receive_time_ms = 0;
};

// Lifecycle: one per pipeline worker thread, after the rule set and dictionary are
// loaded; both must outlive it. Not thread-safe (owns decoder and per-series state).
class processor {
public:
    // Maps a device key to its device id, e.g. store::registry::ensure_device with the
    // rule's captures ("site", "line"). nullopt refuses the message (errc::unknown_device).
    using device_fn = std::function<std::optional<uint32_t>(std::string_view device_key, const topic_match& match)>;

    struct counters {
        uint64_t messages = 0;
        uint64_t dead_letters = 0;  // whole messages refused
        uint64_t rows = 0;
        uint64_t rejected_readings = 0;  // single readings refused
        uint64_t duplicates = 0;         // payloads dropped by the sequence filter
    };

    processor(const rule_set& rules, const metric_dictionary& metrics, device_fn devices, anomaly_config cfg = {},
              sequence_tracker::config seq_cfg = {});

    // Processes one message: the device key is the rule's {device} capture, else the
    // MQTT client id; a payload "device" member must equal it. Appends the accepted
    // rows to `rows` and refused readings to `rejected` (the call still succeeds).
    // `now_ms` is the wall clock for the future-time flag.
    // Returns, with reason() as the dead-letter reason: errc::no_matching_rule,
    // unknown_device, device_mismatch, or any decode error (see payload_decoder).
    result<void> process(const message_view& m, int64_t now_ms, std::vector<telemetry_row>& rows,
                         std::vector<rejected_reading>& rejected);

    std::string_view reason() const noexcept { return reason_; }
    const counters& totals() const noexcept { return totals_; }
    transformer& transforms() noexcept { return transformer_; }

    // Decides, for a payload with a sequence number, whether it is new (true) or a
    // resend of one already taken (false: the payload is dropped and counted in
    // totals().duplicates). Called after the device is resolved, before transforms.
    using sequence_filter_fn = std::function<bool(uint32_t device_id, uint64_t seq, bool restart)>;
    void on_sequence(sequence_filter_fn fn) { sequence_filter_ = std::move(fn); }

private:
    result<void> refuse(std::error_code ec);

    const rule_set& rules_;
    device_fn devices_;
    sequence_filter_fn sequence_filter_;
    payload_decoder decoder_;
    decoded_payload decoded_;
    transformer transformer_;
    std::string reason_;
    counters totals_;
};

}  // namespace sluice::pipeline
