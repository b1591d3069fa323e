// SPDX-License-Identifier: Apache-2.0
//
// Encoder for PostgreSQL's binary COPY format (PGCOPY, "COPY ... FROM STDIN WITH
// (FORMAT binary)"): a signature header, then per tuple an int16 field count and per
// field an int32 length (-1 = NULL) and the type's binary send representation, all
// big-endian, then an int16 -1 trailer. See the PostgreSQL manual, "COPY", "Binary
// Format", and the *send functions of each type. No I/O: store/pg.cc ships the bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sluice::store {

// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
inline constexpr int64_t k_pg_epoch_offset_us = 946'684'800'000'000;

class copy_encoder {
public:
    // Appends the 19-byte PGCOPY header.
    void header();
    void begin_tuple(int16_t fields);
    void null_field();
    void int2(int16_t v);
    void int4(int32_t v);
    void int8(int64_t v);
    void float8(double v);
    // Unix microseconds, encoded as timestamptz (microseconds since 2000-01-01 UTC).
    void timestamptz(int64_t unix_us);
    void text(std::string_view v);  // REQUIRES: valid UTF-8 without NUL (see repair_utf8)
    void bytea(std::string_view v);
    void int2_array(std::span<const int16_t> v);
    void int4_array(std::span<const int32_t> v);
    void float8_array(std::span<const double> v);
    void trailer();

    std::string& data() { return buf_; }
    size_t size() const { return buf_.size(); }
    void clear() { buf_.clear(); }

private:
    void put16(uint16_t v);
    void put32(uint32_t v);
    void put64(uint64_t v);
    void array_header(uint32_t element_oid, size_t count, uint32_t element_size);
    std::string buf_;
};

}  // namespace sluice::store
