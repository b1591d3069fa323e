// SPDX-License-Identifier: Apache-2.0
//
// Fixed-width unsigned integers read from and written to bytes in a stated byte order,
// never the host's: little-endian for Sluice's own files (WAL, cursors, state store, the
// edge binary format), big-endian for the wire formats of others (MQTT, PostgreSQL COPY,
// WebSocket). Byte by byte so that any alignment works; compilers fold the loops into
// one load or store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice {
namespace endian_detail {

template <typename T>
T load_le(const void* p) {
    const auto* b = static_cast<const unsigned char*>(p);
    T v = 0;
    for (size_t i = sizeof(T); i-- > 0;)
        v = static_cast<T>((v << 8) | b[i]);
    return v;
}
template <typename T>
T load_be(const void* p) {
    const auto* b = static_cast<const unsigned char*>(p);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
        v = static_cast<T>((v << 8) | b[i]);
    return v;
}
template <typename T>
void store_le(void* p, T v) {
    auto* b = static_cast<unsigned char*>(p);
    for (size_t i = 0; i < sizeof(T); ++i)
        b[i] = static_cast<unsigned char>(v >> (8 * i));
}
template <typename T>
void store_be(void* p, T v) {
    auto* b = static_cast<unsigned char*>(p);
    for (size_t i = 0; i < sizeof(T); ++i)
        b[i] = static_cast<unsigned char>(v >> (8 * (sizeof(T) - 1 - i)));
}

}  // namespace endian_detail

// REQUIRES (loads and stores): p points at sizeof(value) bytes.
inline uint16_t load_le16(const void* p) {
    return endian_detail::load_le<uint16_t>(p);
}
inline uint32_t load_le32(const void* p) {
    return endian_detail::load_le<uint32_t>(p);
}
inline uint64_t load_le64(const void* p) {
    return endian_detail::load_le<uint64_t>(p);
}
inline uint16_t load_be16(const void* p) {
    return endian_detail::load_be<uint16_t>(p);
}
inline uint32_t load_be32(const void* p) {
    return endian_detail::load_be<uint32_t>(p);
}
inline uint64_t load_be64(const void* p) {
    return endian_detail::load_be<uint64_t>(p);
}

inline void store_le16(void* p, uint16_t v) {
    endian_detail::store_le(p, v);
}
inline void store_le32(void* p, uint32_t v) {
    endian_detail::store_le(p, v);
}
inline void store_le64(void* p, uint64_t v) {
    endian_detail::store_le(p, v);
}
inline void store_be16(void* p, uint16_t v) {
    endian_detail::store_be(p, v);
}
inline void store_be32(void* p, uint32_t v) {
    endian_detail::store_be(p, v);
}
inline void store_be64(void* p, uint64_t v) {
    endian_detail::store_be(p, v);
}

// The n (0 to 8) bytes at p as an unsigned integer, for fields of other widths (the edge
// format's 48-bit times, its 1- to 8-byte values; WebSocket's 2- or 8-byte lengths).
inline uint64_t load_le(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | b[i];
    return v;
}
inline uint64_t load_be(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
        v = (v << 8) | b[i];
    return v;
}
// Appends the low n (0 to 8) bytes of v.
inline void append_le(std::string& out, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i)
        out.push_back(static_cast<char>(static_cast<unsigned char>(v >> (8 * i))));
}

inline void append_le16(std::string& out, uint16_t v) {
    char b[2];
    store_le16(b, v);
    out.append(b, sizeof b);
}
inline void append_le32(std::string& out, uint32_t v) {
    char b[4];
    store_le32(b, v);
    out.append(b, sizeof b);
}
inline void append_le64(std::string& out, uint64_t v) {
    char b[8];
    store_le64(b, v);
    out.append(b, sizeof b);
}
inline void append_be16(std::string& out, uint16_t v) {
    char b[2];
    store_be16(b, v);
    out.append(b, sizeof b);
}
inline void append_be32(std::string& out, uint32_t v) {
    char b[4];
    store_be32(b, v);
    out.append(b, sizeof b);
}
inline void append_be64(std::string& out, uint64_t v) {
    char b[8];
    store_be64(b, v);
    out.append(b, sizeof b);
}

}  // namespace sluice
