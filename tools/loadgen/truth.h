// SPDX-License-Identifier: Apache-2.0
//
// The "truth" every load-generator message carries (device, per-device sequence number,
// send time) and how a subscriber gets it back. Three payload kinds:
//   raw    - fixed-size payloads for broker benchmarks: a 24-byte header
//            "SLG1" | device u32 LE | seq u64 LE | send time ns u64 LE (CLOCK_REALTIME),
//            then filler bytes up to the requested size.
//   binary - the compact edge format (edge/sluice_edge.h, docs/payload-formats.md): seq in
//            the header; the device comes from the topic; the time is the newest reading's.
//   json   - the batched JSON format {"seq":N,"readings":[{"ts":...,...},...]}.
// For binary and JSON the latency measured is "age of the newest reading at receipt",
// in milliseconds resolution (an upper bound on publish->receive). Pure code, unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::loadgen {

enum class payload_kind : uint8_t { raw, binary, json };

inline constexpr size_t raw_header_size = 24;

struct truth {
    uint32_t device = 0;
    uint64_t seq = 0;
    int64_t time_ns = 0;  // send time (raw) or newest reading time (binary, json), Unix ns
};

// Appends a raw payload of max(size, raw_header_size) bytes to out.
void encode_raw(const truth& t, size_t size, std::string& out);
std::optional<truth> decode_raw(std::string_view payload);

// The per-device sequence number and newest reading time (Unix ms) of a compact binary
// payload; nullopt when it is not a well-formed v1 payload.
struct batch_truth {
    uint64_t seq = 0;
    int64_t newest_ms = 0;
    uint32_t readings = 0;
};
std::optional<batch_truth> decode_binary_truth(std::string_view payload);
std::optional<batch_truth> decode_json_truth(std::string_view payload);

// Topic templates: "devices/{device}/telemetry" with device names "<prefix><index>".
class topic_template {
public:
    explicit topic_template(std::string_view tpl, std::string device_prefix = "lg-");
    std::string topic_for(uint32_t device) const;
    std::string device_name(uint32_t device) const;
    // The device index of a topic built by topic_for(), nullopt for any other topic.
    std::optional<uint32_t> device_of(std::string_view topic) const;
    // The subscription filter matching every device's topic: {device} replaced by '+'
    // when it is a whole topic level, else '#'.
    std::string filter() const;
    bool has_device() const { return has_device_; }

private:
    std::string prefix_;
    std::string suffix_;
    std::string device_prefix_;
    bool has_device_ = false;
};

// Unix time now, in ns (CLOCK_REALTIME: comparable across processes on one machine).
int64_t unix_now_ns();

}  // namespace sluice::loadgen
