// SPDX-License-Identifier: Apache-2.0
//
// Format detection and the JSON decoder (simdjson On-Demand). The payload is copied
// into a reused buffer with SIMDJSON_PADDING spare bytes (simdjson reads past the end
// in 64-byte blocks); the copy costs far less than the parse. Accepted shapes and the
// reasons we give for rejecting others are listed in docs/payload-formats.md.
#include "pipeline/decoder.h"

#include <cstring>
#include <utility>

#include <climits>
#include <simdjson.h>

#include "pipeline/reason.h"

namespace sluice::pipeline {

namespace od = simdjson::ondemand;
using detail::name_len;
using detail::set_reason;

std::optional<payload_format> parse_payload_format(std::string_view name) {
    if (name == "auto") return payload_format::auto_detect;
    if (name == "json") return payload_format::json;
    if (name == "binary") return payload_format::binary;
    return std::nullopt;
}

std::string_view to_string(payload_format f) {
    switch (f) {
        case payload_format::auto_detect:
            return "auto";
        case payload_format::json:
            return "json";
        case payload_format::binary:
            return "binary";
    }
    return "?";
}

namespace {

bool is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) {
    if (pos + n > s.size()) return false;
    unsigned v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    out = v;
    return true;
}

constexpr int64_t max_ts_ms = 253402300799999;  // 9999-12-31T23:59:59.999Z
constexpr int64_t no_time = INT64_MIN;          // "this reading had no ts" during a parse

}  // namespace

std::optional<int64_t> parse_rfc3339_ms(std::string_view s) noexcept {
    unsigned year, month, day, hour, minute, second;
    if (!digits(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, month) || s[7] != '-' ||
        !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, hour) ||
        s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' || !digits(s, 17, 2, second)) {
        return std::nullopt;
    }
    static constexpr unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] || (month == 2 && day == 29 && !leap) ||
        hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }
    std::size_t pos = 19;
    int64_t ms = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        const std::size_t start = pos;
        int64_t scale = 100;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            ms += (s[pos] - '0') * scale;
            scale /= 10;
            ++pos;
        }
        if (pos == start) return std::nullopt;
    }
    if (pos >= s.size()) return std::nullopt;  // RFC 3339 requires an offset
    int64_t offset_min = 0;
    if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
        unsigned oh, om;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om) ||
            oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset_min = static_cast<int64_t>(oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
    const int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                         (second == 60 ? 59 : second) - offset_min * 60;
    return secs * 1000 + ms;
}

std::optional<payload_format> detect_format(std::string_view payload) noexcept {
    if (payload.empty()) return std::nullopt;
    if ((static_cast<unsigned char>(payload[0]) & 0xF0) == 0xA0) return payload_format::binary;
    for (const char c : payload) {
        if (is_json_space(c)) continue;
        if (c == '{' || c == '[') return payload_format::json;
        return std::nullopt;
    }
    return std::nullopt;
}

struct payload_decoder::json_state {
    od::parser parser;
    std::unique_ptr<char[]> buf;
    std::size_t capacity = 0;  // usable bytes of buf, SIMDJSON_PADDING excluded
};

namespace {

const char* json_error_text(simdjson::error_code e) {
    switch (e) {
        case simdjson::UNCLOSED_STRING:
            return "unclosed string";
        case simdjson::STRING_ERROR:
            return "bad string escape";
        case simdjson::UTF8_ERROR:
            return "invalid UTF-8";
        case simdjson::NUMBER_ERROR:
            return "bad number";
        case simdjson::T_ATOM_ERROR:
        case simdjson::F_ATOM_ERROR:
        case simdjson::N_ATOM_ERROR:
            return "bad literal";
        case simdjson::EMPTY:
            return "no JSON value";
        case simdjson::DEPTH_ERROR:
            return "nested too deeply";
        case simdjson::UNESCAPED_CHARS:
            return "unescaped control character in string";
        case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
            return "unbalanced braces or brackets";
        case simdjson::TRAILING_CONTENT:
            return "trailing content";
        default:
            return "syntax error";
    }
}

const char* json_type_name(od::json_type t) {
    switch (t) {
        case od::json_type::array:
            return "array";
        case od::json_type::object:
            return "object";
        case od::json_type::number:
            return "number";
        case od::json_type::string:
            return "string";
        case od::json_type::boolean:
            return "boolean";
        case od::json_type::null:
            return "null";
    }
    return "unknown";
}

// One JSON parse: walks the document once, appending readings to out.
class json_walk {
public:
    json_walk(od::document& doc, const char* base, std::string& reason, decoded_payload& out)
        : doc_(doc), base_(base), reason_(reason), out_(out) {}

    result<void> run(int64_t receive_time_ms) {
        od::json_type type;
        if (auto e = doc_.type().get(type)) return fail_json(e);
        if (type == od::json_type::object) {
            od::object obj;
            if (auto e = doc_.get_object().get(obj)) return fail_json(e);
            if (auto r = envelope(obj); !r) return r;
        } else if (type == od::json_type::array) {
            od::array arr;
            if (auto e = doc_.get_array().get(arr)) return fail_json(e);
            if (auto r = readings_array(arr); !r) return r;
        } else {
            return set_reason(reason_, errc::bad_json_shape, "JSON top level is a %s; expected an object or an array",
                              json_type_name(type));
        }
        if (const char* rest = nullptr; doc_.current_location().get(rest) == simdjson::SUCCESS) {
            return fail_json(simdjson::TRAILING_CONTENT);
        }
        const int64_t fallback = envelope_ts_ != no_time ? envelope_ts_ : receive_time_ms;
        for (auto& r : out_.readings) {
            if (r.time_ms == no_time) r.time_ms = fallback;
        }
        return ok();
    }

private:
    // The top-level object: either one reading, or a batch envelope with "readings".
    result<void> envelope(od::object& obj) {
        bool seen_readings = false, seen_seq = false, seen_device = false, seen_ts = false;
        std::size_t metrics = 0;
        std::string_view first_metric;
        for (auto field_r : obj) {
            od::field field;
            if (auto e = std::move(field_r).get(field)) return fail_json(e);
            std::string_view key;
            if (auto e = field.unescaped_key().get(key)) return fail_json(e);
            od::value v = field.value();
            if (key == "ts") {
                if (seen_ts) return set_reason(reason_, errc::bad_json_shape, "duplicate 'ts'");
                seen_ts = true;
                if (auto r = timestamp(v, envelope_ts_); !r) return r;
            } else if (key == "seq") {
                if (seen_seq) return set_reason(reason_, errc::bad_json_shape, "duplicate 'seq'");
                seen_seq = true;
                uint64_t seq;
                if (auto e = v.get_uint64().get(seq)) {
                    if (e != simdjson::INCORRECT_TYPE && e != simdjson::NUMBER_OUT_OF_RANGE) return fail_json(e);
                    return set_reason(reason_, errc::bad_json_shape, "'seq' must be an unsigned 64-bit integer");
                }
                out_.seq = seq;
            } else if (key == "device") {
                if (seen_device) return set_reason(reason_, errc::bad_json_shape, "duplicate 'device'");
                seen_device = true;
                std::string_view device;
                if (auto e = v.get_string().get(device)) {
                    if (e != simdjson::INCORRECT_TYPE) return fail_json(e);
                    return set_reason(reason_, errc::bad_json_shape, "'device' must be a string");
                }
                out_.device = device;
            } else if (key == "readings") {
                if (seen_readings) return set_reason(reason_, errc::bad_json_shape, "duplicate 'readings'");
                seen_readings = true;
                od::array arr;
                if (auto e = v.get_array().get(arr)) {
                    if (e != simdjson::INCORRECT_TYPE) return fail_json(e);
                    return set_reason(reason_, errc::bad_json_shape, "'readings' must be an array");
                }
                if (auto r = readings_array(arr); !r) return r;
            } else {
                if (metrics++ == 0) first_metric = key;
                if (auto r = metric(key, v, no_time); !r) return r;
            }
        }
        if (seen_readings && metrics > 0) {
            return set_reason(reason_, errc::bad_json_shape, "batch has metric '%.*s' beside 'readings'",
                              name_len(first_metric.size()), first_metric.data());
        }
        if (!seen_readings && metrics == 0) {
            return set_reason(reason_, errc::bad_json_shape, "JSON object has no metric members");
        }
        return ok();
    }

    result<void> readings_array(od::array& arr) {
        std::size_t index = 0;
        for (auto elem_r : arr) {
            od::value elem;
            if (auto e = std::move(elem_r).get(elem)) return fail_json(e);
            od::object obj;
            if (auto e = elem.get_object().get(obj)) {
                if (e != simdjson::INCORRECT_TYPE) return fail_json(e);
                return set_reason(reason_, errc::bad_json_shape, "readings[%zu] is not an object", index);
            }
            index_ = index;
            if (auto r = reading_object(obj); !r) return r;
            ++index;
        }
        index_ = npos;
        return ok();
    }

    // One element of a batch: {"ts": ..., "metric": number, ...}.
    result<void> reading_object(od::object& obj) {
        const std::size_t start = out_.readings.size();
        int64_t ts = no_time;
        bool seen_ts = false;
        for (auto field_r : obj) {
            od::field field;
            if (auto e = std::move(field_r).get(field)) return fail_json(e);
            std::string_view key;
            if (auto e = field.unescaped_key().get(key)) return fail_json(e);
            od::value v = field.value();
            if (key == "ts") {
                if (seen_ts) return set_reason(reason_, errc::bad_json_shape, "readings[%zu]: duplicate 'ts'", index_);
                seen_ts = true;
                if (auto r = timestamp(v, ts); !r) return r;
            } else if (key == "seq" || key == "device" || key == "readings") {
                return set_reason(reason_, errc::bad_json_shape,
                                  "readings[%zu]: '%.*s' is only allowed at the top level", index_,
                                  name_len(key.size()), key.data());
            } else {
                if (auto r = metric(key, v, no_time); !r) return r;
            }
        }
        if (out_.readings.size() == start) {
            return set_reason(reason_, errc::bad_json_shape, "readings[%zu] has no metric members", index_);
        }
        if (ts != no_time) {
            for (std::size_t i = start; i < out_.readings.size(); ++i)
                out_.readings[i].time_ms = ts;
        }
        return ok();
    }

    result<void> metric(std::string_view name, od::value& v, int64_t ts) {
        od::json_type type;
        if (auto e = v.type().get(type)) return fail_json(e);
        double value;
        if (type == od::json_type::number) {
            if (auto e = v.get_double().get(value)) return fail_json(e);
        } else if (type == od::json_type::boolean) {
            bool b;
            if (auto e = v.get_bool().get(b)) return fail_json(e);
            value = b ? 1.0 : 0.0;
        } else {
            return set_reason(reason_, errc::non_numeric_metric, "%smetric '%.*s' is not a number (%s)", prefix(),
                              name_len(name.size()), name.data(), json_type_name(type));
        }
        if (name.empty()) {
            return set_reason(reason_, errc::bad_json_shape, "%smetric with an empty name", prefix());
        }
        out_.readings.push_back(reading{ts, name, 0, value});
        return ok();
    }

    result<void> timestamp(od::value& v, int64_t& out) {
        od::json_type type;
        if (auto e = v.type().get(type)) return fail_json(e);
        if (type == od::json_type::number) {
            int64_t ms;
            if (auto e = v.get_int64().get(ms)) {
                if (e != simdjson::INCORRECT_TYPE && e != simdjson::NUMBER_OUT_OF_RANGE) return fail_json(e);
                return set_reason(reason_, errc::bad_timestamp,
                                  "%s'ts' must be integer Unix milliseconds or an RFC 3339 string", prefix());
            }
            if (ms < 0 || ms > max_ts_ms) {
                return set_reason(reason_, errc::bad_timestamp, "%s'ts' %lld is out of range", prefix(),
                                  static_cast<long long>(ms));
            }
            out = ms;
            return ok();
        }
        if (type == od::json_type::string) {
            std::string_view text;
            if (auto e = v.get_string().get(text)) return fail_json(e);
            const auto ms = parse_rfc3339_ms(text);
            if (!ms || *ms < 0 || *ms > max_ts_ms) {
                return set_reason(reason_, errc::bad_timestamp, "%s'ts' \"%.*s\" is not an RFC 3339 timestamp",
                                  prefix(), name_len(text.size()), text.data());
            }
            out = *ms;
            return ok();
        }
        return set_reason(reason_, errc::bad_timestamp,
                          "%s'ts' must be integer Unix milliseconds or an RFC 3339 string, not %s", prefix(),
                          json_type_name(type));
    }

    std::error_code fail_json(simdjson::error_code e) {
        const char* where = nullptr;
        if (doc_.current_location().get(where) == simdjson::SUCCESS && where >= base_) {
            return set_reason(reason_, errc::invalid_json, "invalid JSON at byte %zu: %s",
                              static_cast<std::size_t>(where - base_), json_error_text(e));
        }
        return set_reason(reason_, errc::invalid_json, "invalid JSON: %s", json_error_text(e));
    }

    const char* prefix() {
        if (index_ == npos) return "";
        std::snprintf(prefix_, sizeof prefix_, "readings[%zu]: ", index_);
        return prefix_;
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    od::document& doc_;
    const char* base_;
    std::string& reason_;
    decoded_payload& out_;
    int64_t envelope_ts_ = no_time;
    std::size_t index_ = npos;
    char prefix_[40] = {};
};

}  // namespace

payload_decoder::payload_decoder() : json_(std::make_unique<json_state>()) {
    reason_.reserve(320);
    json_->capacity = 1024;
    json_->buf = std::make_unique<char[]>(json_->capacity + simdjson::SIMDJSON_PADDING);
}
payload_decoder::~payload_decoder() = default;

result<void> payload_decoder::decode(std::string_view payload, payload_format f, int64_t receive_time_ms,
                                     decoded_payload& out) {
    out.clear();
    reason_.clear();
    if (f == payload_format::auto_detect) {
        const auto detected = detect_format(payload);
        if (!detected) {
            bool blank = true;
            for (const char c : payload)
                blank = blank && is_json_space(c);
            if (blank) return set_reason(reason_, errc::empty_payload, "empty payload");
            return set_reason(reason_, errc::unknown_format,
                              "unrecognized payload: first byte 0x%02x is neither JSON ('{' or '[') nor a "
                              "compact binary magic byte (0xA1)",
                              static_cast<unsigned char>(payload[0]));
        }
        f = *detected;
    }
    if (f == payload_format::binary) return decode_binary(payload, out);
    return decode_json(payload, receive_time_ms, out);
}

result<void> payload_decoder::decode_json(std::string_view payload, int64_t receive_time_ms, decoded_payload& out) {
    json_state& js = *json_;
    if (payload.size() > js.capacity) {
        const std::size_t cap = std::max(payload.size(), js.capacity * 2);
        js.buf = std::make_unique<char[]>(cap + simdjson::SIMDJSON_PADDING);
        js.capacity = cap;
    }
    if (!payload.empty()) std::memcpy(js.buf.get(), payload.data(), payload.size());
    std::memset(js.buf.get() + payload.size(), 0, simdjson::SIMDJSON_PADDING);
    od::document doc;
    if (auto e =
            js.parser.iterate(js.buf.get(), payload.size(), payload.size() + simdjson::SIMDJSON_PADDING).get(doc)) {
        if (e == simdjson::EMPTY) return set_reason(reason_, errc::empty_payload, "empty payload");
        return set_reason(reason_, errc::invalid_json, "invalid JSON: %s", json_error_text(e));
    }
    json_walk walk(doc, js.buf.get(), reason_, out);
    return walk.run(receive_time_ms);
}

}  // namespace sluice::pipeline
