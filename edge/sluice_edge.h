// SPDX-License-Identifier: Apache-2.0
//
// sluice_edge: the device side of Sluice's compact binary telemetry format. Firmware
// batches readings into a caller-owned buffer (280 bytes by default, flushed at 140)
// and publishes each finished payload over MQTT; the broker's pipeline decodes it with
// src/pipeline/decoder.cc. The byte layout is specified in docs/payload-formats.md;
// this file and src/pipeline/binary.cc must change together.
//
// Header-only, C++17, no heap allocation, no exceptions, no iostreams: it is meant to
// build unchanged for a microcontroller.
#ifndef SLUICE_EDGE_H
#define SLUICE_EDGE_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice_edge {

// --- Wire constants (docs/payload-formats.md, "Compact binary v1") ----------------------
constexpr uint8_t magic_v1 = 0xA1;          // high nibble 0xA: Sluice binary; low nibble: version
constexpr uint8_t flag_seq_restart = 0x01;  // first payload since the device (re)started
constexpr uint8_t flags_known = flag_seq_restart;
constexpr std::size_t max_readings = 255;                  // the count is one byte
constexpr uint64_t max_time_ms = (uint64_t{1} << 48) - 1;  // base time is 48 bits
constexpr unsigned max_scale = 9;                          // decimal exponent carried by integer kinds

enum value_kind : uint8_t { kind_int8 = 0, kind_int16 = 1, kind_int32 = 2, kind_float32 = 3, kind_float64 = 4 };

constexpr std::size_t default_capacity = 280;
constexpr std::size_t default_flush_threshold = 140;
// Largest possible header: magic + flags + 10-byte seq varint + 6-byte time + count.
constexpr std::size_t max_header_size = 1 + 1 + 10 + 6 + 1;
// Largest possible reading: dt varint (7, since dt < 2^48) + id varint (5) + tag + float64.
constexpr std::size_t max_reading_size = 7 + 5 + 1 + 8;

// Powers of ten used by both sides; the decoder divides by exactly these values.
constexpr double pow10_table[max_scale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

// Writes v as LEB128 (7 bits per byte, low group first). Returns bytes written (1..10).
inline std::size_t put_varint(uint8_t* out, uint64_t v) {
    std::size_t n = 0;
    while (v >= 0x80) {
        out[n++] = static_cast<uint8_t>(v | 0x80);
        v >>= 7;
    }
    out[n++] = static_cast<uint8_t>(v);
    return n;
}

// Encodes one value as tag byte + payload into out (at most 9 bytes); returns the size.
// Lossless: a value is stored as the smallest integer kind (with a decimal scale 0..4)
// that reproduces it exactly when divided by 10^scale, else float32 if exact, else float64.
inline std::size_t put_value(uint8_t* out, double v) {
    if (std::isfinite(v)) {
        for (unsigned s = 0; s <= 4; ++s) {
            const double scaled = v * pow10_table[s];
            if (!(std::fabs(scaled) <= 2147483647.0)) break;
            const auto i = static_cast<int32_t>(std::lround(scaled));
            if (static_cast<double>(i) / pow10_table[s] != v) continue;
            uint8_t kind;
            std::size_t len;
            if (i >= -128 && i <= 127) {
                kind = kind_int8;
                len = 1;
            } else if (i >= -32768 && i <= 32767) {
                kind = kind_int16;
                len = 2;
            } else {
                kind = kind_int32;
                len = 4;
            }
            out[0] = static_cast<uint8_t>((static_cast<unsigned>(kind) << 4) | s);
            const auto u = static_cast<uint32_t>(i);
            for (std::size_t b = 0; b < len; ++b)
                out[1 + b] = static_cast<uint8_t>(u >> (8 * b));
            return 1 + len;
        }
    }
    const auto f = static_cast<float>(v);
    if (static_cast<double>(f) == v || (std::isnan(v))) {
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof bits);
        out[0] = static_cast<uint8_t>(kind_float32 << 4);
        for (std::size_t b = 0; b < 4; ++b)
            out[1 + b] = static_cast<uint8_t>(bits >> (8 * b));
        return 5;
    }
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    out[0] = static_cast<uint8_t>(kind_float64 << 4);
    for (std::size_t b = 0; b < 8; ++b)
        out[1 + b] = static_cast<uint8_t>(bits >> (8 * b));
    return 9;
}

// Encodes round(v * 10^decimals) as an integer kind when it fits in 32 bits (lossy by
// design: the caller chose the precision); falls back to put_value otherwise.
inline std::size_t put_value_rounded(uint8_t* out, double v, unsigned decimals) {
    if (decimals > max_scale || !std::isfinite(v)) return put_value(out, v);
    const double scaled = std::round(v * pow10_table[decimals]);
    if (!(std::fabs(scaled) <= 2147483647.0)) return put_value(out, v);
    const auto i = static_cast<int32_t>(scaled);
    if (static_cast<double>(i) / pow10_table[decimals] == v) return put_value(out, v);  // may pack smaller
    std::size_t len = (i >= -128 && i <= 127) ? 1 : (i >= -32768 && i <= 32767) ? 2 : 4;
    const uint8_t kind = len == 1 ? kind_int8 : len == 2 ? kind_int16 : kind_int32;
    out[0] = static_cast<uint8_t>((static_cast<unsigned>(kind) << 4) | decimals);
    const auto u = static_cast<uint32_t>(i);
    for (std::size_t b = 0; b < len; ++b)
        out[1 + b] = static_cast<uint8_t>(u >> (8 * b));
    return 1 + len;
}

// What add() did with a reading.
enum class add_status : uint8_t {
    added,        // stored; the payload is still below the flush threshold
    added_flush,  // stored; the payload reached the flush threshold: finish() and publish now
    full,         // NOT stored: it does not fit (bytes or 255 readings). finish(), publish, add again
    bad_time,     // NOT stored: earlier than the previous reading of this batch, or >= 2^48 ms.
                  // finish(), publish, add again (a new batch has a new base time)
};

// A finished payload. Points into the encoder's buffer: valid until the next add().
struct payload {
    const uint8_t* data;
    std::size_t size;
};

// Batches readings into the compact binary format, in a buffer the caller owns.
//
// Lifecycle: construct once per device with the buffer; add() readings in time order;
// when add() says added_flush/full/bad_time, or should_flush() says a batch is old enough
// (1 s by default), call finish() and publish the returned bytes, then keep adding.
// Each finished payload carries a sequence number one higher than the previous one; the
// first payload after construction carries the "sequence restart" flag so the pipeline
// does not count the reboot as a gap. Persist next_seq() across reboots if you can and
// pass it as first_seq (the flag is still set, which is harmless).
//
// REQUIRES: capacity >= max_header_size + max_reading_size (40 bytes), flush_threshold
// <= capacity. Not thread-safe: one encoder per publishing task.
class batch_encoder {
public:
    batch_encoder(uint8_t* buffer, std::size_t capacity, std::size_t flush_threshold, uint64_t first_seq = 0)
        : buf_(buffer), capacity_(capacity), threshold_(flush_threshold), seq_(first_seq) {}
    batch_encoder(uint8_t* buffer, std::size_t capacity) : batch_encoder(buffer, capacity, capacity / 2) {}

    // Adds one reading, encoded losslessly (see put_value).
    add_status add(uint32_t metric_id, uint64_t time_ms, double value) {
        uint8_t tmp[9];
        return add_encoded(metric_id, time_ms, tmp, put_value(tmp, value));
    }
    // Adds one reading rounded to `decimals` decimal places (0..9): typical sensor values
    // then take 1-2 value bytes (e.g. 21.37 degC at 2 decimals -> int16 2137).
    add_status add_rounded(uint32_t metric_id, uint64_t time_ms, double value, unsigned decimals) {
        uint8_t tmp[9];
        return add_encoded(metric_id, time_ms, tmp, put_value_rounded(tmp, value, decimals));
    }

    // True when the open batch is non-empty and its first reading is max_age_ms old.
    bool should_flush(uint64_t now_ms, uint64_t max_age_ms = 1000) const {
        return count_ > 0 && now_ms >= base_time_ && now_ms - base_time_ >= max_age_ms;
    }

    // Closes the batch. Returns the payload bytes (size 0 when nothing was added, and
    // then the sequence number is not consumed). The bytes stay valid until the next add().
    payload finish() {
        if (count_ == 0) return payload{buf_, 0};
        buf_[count_pos_] = static_cast<uint8_t>(count_);
        const payload p{buf_, size_};
        ++seq_;
        restart_ = false;
        count_ = 0;
        size_ = 0;
        return p;
    }

    std::size_t size() const { return size_; }    // bytes of the open batch, header included
    std::size_t count() const { return count_; }  // readings in the open batch
    bool empty() const { return count_ == 0; }
    uint64_t next_seq() const { return seq_; }  // sequence number of the next payload

private:
    add_status add_encoded(uint32_t metric_id, uint64_t time_ms, const uint8_t* value, std::size_t value_len) {
        if (time_ms > max_time_ms) return add_status::bad_time;
        if (count_ > 0 && time_ms < last_time_) return add_status::bad_time;
        if (count_ >= max_readings) return add_status::full;
        uint8_t head[max_header_size];
        std::size_t head_len = 0;
        uint64_t dt = 0;
        if (count_ == 0) {
            head[0] = magic_v1;
            head[1] = restart_ ? flag_seq_restart : 0;
            head_len = 2 + put_varint(head + 2, seq_);
            for (std::size_t b = 0; b < 6; ++b)
                head[head_len + b] = static_cast<uint8_t>(time_ms >> (8 * b));
            head_len += 6;
            head[head_len++] = 0;  // count, written by finish()
        } else {
            dt = time_ms - last_time_;
        }
        uint8_t rec[max_reading_size];
        std::size_t rec_len = put_varint(rec, dt);
        rec_len += put_varint(rec + rec_len, metric_id);
        std::memcpy(rec + rec_len, value, value_len);
        rec_len += value_len;
        if (size_ + head_len + rec_len > capacity_) return add_status::full;
        if (count_ == 0) {
            std::memcpy(buf_, head, head_len);
            count_pos_ = head_len - 1;
            size_ = head_len;
            base_time_ = time_ms;
        }
        std::memcpy(buf_ + size_, rec, rec_len);
        size_ += rec_len;
        last_time_ = time_ms;
        ++count_;
        return size_ >= threshold_ ? add_status::added_flush : add_status::added;
    }

    uint8_t* buf_;
    std::size_t capacity_;
    std::size_t threshold_;
    uint64_t seq_;
    bool restart_ = true;
    std::size_t size_ = 0;
    std::size_t count_ = 0;
    std::size_t count_pos_ = 0;
    uint64_t base_time_ = 0;
    uint64_t last_time_ = 0;
};

}  // namespace sluice_edge

#endif  // SLUICE_EDGE_H
