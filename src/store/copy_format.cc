// SPDX-License-Identifier: Apache-2.0
//
// Binary COPY encoding; see store/copy_format.h. Array layout follows PostgreSQL's
// array_send: ndim, has-nulls flag, element type OID, then (length, lower bound) per
// dimension, then each element as (int32 length, bytes).
#include "store/copy_format.h"

#include <bit>
#include <cstring>

#include "base/assert.h"
#include "base/endian.h"

namespace sluice::store {
namespace {
constexpr uint32_t k_int2_oid = 21;
constexpr uint32_t k_int4_oid = 23;
constexpr uint32_t k_float8_oid = 701;
}  // namespace

void copy_encoder::put16(uint16_t v) {
    append_be16(buf_, v);
}

void copy_encoder::put32(uint32_t v) {
    append_be32(buf_, v);
}

void copy_encoder::put64(uint64_t v) {
    append_be64(buf_, v);
}

void copy_encoder::header() {
    static constexpr char k_signature[] = "PGCOPY\n\377\r\n";  // 11 bytes incl. the NUL
    buf_.append(k_signature, 11);
    put32(0);  // flags: no OIDs
    put32(0);  // header extension length
}

void copy_encoder::begin_tuple(int16_t fields) {
    put16(static_cast<uint16_t>(fields));
}

void copy_encoder::null_field() {
    put32(0xFFFFFFFFu);
}

void copy_encoder::int2(int16_t v) {
    put32(2);
    put16(static_cast<uint16_t>(v));
}

void copy_encoder::int4(int32_t v) {
    put32(4);
    put32(static_cast<uint32_t>(v));
}

void copy_encoder::int8(int64_t v) {
    put32(8);
    put64(static_cast<uint64_t>(v));
}

void copy_encoder::float8(double v) {
    put32(8);
    put64(std::bit_cast<uint64_t>(v));
}

void copy_encoder::timestamptz(int64_t unix_us) {
    int8(unix_us - k_pg_epoch_offset_us);
}

void copy_encoder::text(std::string_view v) {
    bytea(v);
}

void copy_encoder::bytea(std::string_view v) {
    SLUICE_CHECK(v.size() < (1u << 30), "field too large for COPY: %zu bytes", v.size());
    put32(static_cast<uint32_t>(v.size()));
    buf_.append(v);
}

void copy_encoder::array_header(uint32_t element_oid, size_t count, uint32_t element_size) {
    SLUICE_CHECK(count < (1u << 26), "array too large for COPY: %zu elements", count);
    const size_t body = 20 + count * (4 + element_size);
    put32(static_cast<uint32_t>(body));
    put32(1);  // ndim
    put32(0);  // no NULL elements
    put32(element_oid);
    put32(static_cast<uint32_t>(count));
    put32(1);  // lower bound
}

void copy_encoder::int2_array(std::span<const int16_t> v) {
    array_header(k_int2_oid, v.size(), 2);
    for (int16_t x : v)
        int2(x);
}

void copy_encoder::int4_array(std::span<const int32_t> v) {
    array_header(k_int4_oid, v.size(), 4);
    for (int32_t x : v)
        int4(x);
}

void copy_encoder::float8_array(std::span<const double> v) {
    array_header(k_float8_oid, v.size(), 8);
    for (double x : v)
        float8(x);
}

void copy_encoder::trailer() {
    put16(0xFFFFu);
}

}  // namespace sluice::store
