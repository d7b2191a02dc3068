// SPDX-License-Identifier: Apache-2.0
// Element types: the ones safetensors can name, of which f32, f16 and bf16 are model weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rabbit {

enum class DType : uint8_t {
    f32,
    f16,
    bf16,
    // Known to safetensors, never a weight rabbit computes with.
    f64,
    f8_e4m3,
    f8_e5m2,
    i64,
    i32,
    i16,
    i8,
    u64,
    u32,
    u16,
    u8,
    boolean,
};

size_t dtype_size(DType t);
bool is_weight_dtype(DType t); // f32, f16 or bf16

// "F32", "BF16", ... as safetensors spells them.
std::optional<DType> dtype_from_safetensors(std::string_view name);
const char* dtype_safetensors_name(DType t);

// "f32", "bf16", "f16" as rabbit's manifest and command line spell them.
std::optional<DType> dtype_from_name(std::string_view name);
const char* dtype_name(DType t);

// Elements in a shape (1 for a scalar). The caller knows it fits: see shape_bytes.
uint64_t shape_numel(const std::vector<uint64_t>& shape);
// Bytes of a tensor of this shape and dtype; nullopt when that overflows 64 bits, which an
// untrusted header can ask for.
std::optional<uint64_t> shape_bytes(const std::vector<uint64_t>& shape, DType t);

// Scalar conversions. f32 -> bf16/f16 round to nearest, ties to even; NaN stays NaN.
inline float bf16_to_f32(uint16_t h) {
    uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x0040u); // quiet NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements between weight dtypes (f32, f16, bf16). Same dtype is a copy.
// f16 -> bf16 goes through f32, which holds every f16 exactly, so it rounds once.
void convert_elements(const void* src, DType src_type, void* dst, DType dst_type, size_t n);

} // namespace rabbit
