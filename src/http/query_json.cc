// SPDX-License-Identifier: Apache-2.0
#include "http/query_json.h"

#include <optional>
#include <string_view>

#include "http/json.h"

namespace sluice::http {

std::string devices_json(const std::vector<store::device_info>& devices) {
    std::string out = "{\"devices\":[";
    for (size_t i = 0; i < devices.size(); ++i) {
        const auto& d = devices[i];
        if (i) out += ',';
        json_object(out)
            .number("id", d.id)
            .string("key", d.key)
            .string("name", d.name)
            .string("site", d.site)
            .string("line", d.line)
            .string_or_null("created_at", d.created_at)
            .string_or_null("last_reading", d.last_reading)
            .close();
    }
    out += "]}";
    return out;
}

std::string metrics_json(const std::vector<store::metric_info>& metrics) {
    std::string out = "{\"metrics\":[";
    for (size_t i = 0; i < metrics.size(); ++i) {
        if (i) out += ',';
        json_object(out)
            .number("id", metrics[i].id)
            .string("name", metrics[i].name)
            .string("unit", metrics[i].unit)
            .close();
    }
    out += "]}";
    return out;
}

std::string series_json(std::string_view device, std::string_view metric, std::string_view resolution,
                        const store::series& s) {
    std::string out;
    out.reserve(256 + (s.readings.size() + s.buckets.size()) * 64);
    json_object top(out);
    top.string("device", device)
        .string("metric", metric)
        .string("resolution", resolution)
        .string_or_null("from", s.from)
        .string_or_null("to", s.to)
        .boolean("truncated", s.truncated)
        .member("points") += '[';
    for (size_t i = 0; i < s.readings.size(); ++i) {
        const auto& r = s.readings[i];
        if (i) out += ',';
        json_object(out).string("time", r.time).number("value", r.value).number("flags", r.flags).close();
    }
    for (size_t i = 0; i < s.buckets.size(); ++i) {
        const auto& b = s.buckets[i];
        if (i) out += ',';
        json_object(out)
            .string("bucket", b.time)
            .number("avg", b.avg)
            .number("min", b.min)
            .number("max", b.max)
            .number("count", static_cast<double>(b.count))
            .close();
    }
    out += ']';
    top.close();
    return out;
}

std::string dead_letters_json(const std::vector<store::dead_letter_info>& letters, int preview_bytes) {
    std::string out = "{\"dead_letters\":[";
    for (size_t i = 0; i < letters.size(); ++i) {
        const auto& d = letters[i];
        if (i) out += ',';
        const bool truncated = d.payload_bytes > preview_bytes;
        // A cut may split a UTF-8 sequence: drop up to 3 trailing bytes until valid.
        const std::string& payload = d.payload_head;
        std::optional<std::string> text;
        for (size_t cut = 0; cut <= (truncated ? 3u : 0u) && cut <= payload.size() && !text; ++cut) {
            std::string_view kept = std::string_view(payload).substr(0, payload.size() - cut);
            if (is_printable_utf8(kept)) text = std::string(kept);
        }
        json_object(out)
            .string_or_null("received_at", d.received_at)
            .string("topic", d.topic)
            .string("client_id", d.client_id)
            .string("reason", d.reason)
            .number("payload_bytes", static_cast<double>(d.payload_bytes))
            .boolean("payload_truncated", truncated)
            .string_or_null("payload_text", text)
            .string("payload_base64", base64_encode(payload))
            .close();
    }
    out += "]}";
    return out;
}

}  // namespace sluice::http
