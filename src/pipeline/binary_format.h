// SPDX-License-Identifier: Apache-2.0
//
// Constants of the compact binary edge format, version 1. The byte-by-byte spec is
// docs/payload-formats.md; the encoder is edge/sluice_edge.h, which cannot include
// this file (it must build alone for firmware), so the two copies are compared by
// static_asserts in tests/edge_roundtrip_test.cc.
#pragma once

#include <cstdint>

namespace sluice::pipeline::binary {

constexpr uint8_t magic_v1 = 0xA1;
constexpr uint8_t magic_mask = 0xF0;  // any 0xA_ byte means "compact binary, version _"
constexpr uint8_t magic_family = 0xA0;
constexpr uint8_t flag_seq_restart = 0x01;
constexpr uint8_t flags_known = flag_seq_restart;
constexpr unsigned max_scale = 9;
constexpr uint64_t max_time_ms = (uint64_t{1} << 48) - 1;

enum value_kind : uint8_t { kind_int8 = 0, kind_int16 = 1, kind_int32 = 2, kind_float32 = 3, kind_float64 = 4 };

}  // namespace sluice::pipeline::binary
