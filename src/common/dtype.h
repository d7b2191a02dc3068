// SPDX-License-Identifier: Apache-2.0
// Element types: the ones safetensors can name, of which f32, f16 and bf16 are model weights,
// and the block-quantized weight types of GGUF (common/quant.h holds their block layouts).
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
    // Block-quantized weights, as GGUF (ggml) lays them out: `block` elements in `block_bytes`
    // bytes (dtype_block, dtype_block_bytes). A row of a quantized matrix is whole blocks.
    q8_0,
    q4_0,
    q4_1,
    q5_0,
    q5_1,
    q2_k,
    q3_k,
    q4_k,
    q5_k,
    q6_k,
};

// Bytes of one element of an unquantized type. A quantized type has no element size: asking
// for one is a bug (RABBIT_CHECK); use dtype_row_bytes.
size_t dtype_size(DType t);
bool is_weight_dtype(DType t);       // f32, f16, bf16 or a quantized type
bool is_float_weight_dtype(DType t); // f32, f16 or bf16
bool is_quant_dtype(DType t);        // q8_0 ... q6_k

// Elements per block (1 for unquantized types, 32 for q8_0..q5_1, 256 for the k-quants) and
// the bytes of one block (the element size for unquantized types).
size_t dtype_block(DType t);
size_t dtype_block_bytes(DType t);
// Bytes of `cols` consecutive elements, cols a multiple of dtype_block(t) (checked).
uint64_t dtype_row_bytes(DType t, uint64_t cols);

// GGML's type ids (the GGUF tensor info's type field): the rabbit type, nullopt for a type
// rabbit does not keep (IQ*, Q8_1, TQ*, MXFP4, ...), and its name for messages ("IQ2_XXS",
// or "type 42" for an id GGML never had).
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
uint32_t dtype_ggml_id(DType t); // RABBIT_CHECK: a type GGUF can hold
std::string ggml_type_name(uint32_t ggml_type);

// "F32", "BF16", ... as safetensors spells them; the quantized types have no safetensors name
// (dtype_safetensors_name gives their rabbit name in capitals, "Q4_K", for messages).
std::optional<DType> dtype_from_safetensors(std::string_view name);
const char* dtype_safetensors_name(DType t);

// "f32", "bf16", "f16", "q4_k" as rabbit's manifest and command line spell them.
std::optional<DType> dtype_from_name(std::string_view name);
const char* dtype_name(DType t);

// Elements in a shape (1 for a scalar). The caller knows it fits: see shape_bytes.
uint64_t shape_numel(const std::vector<uint64_t>& shape);
// Bytes of a tensor of this shape and dtype; nullopt when that overflows 64 bits, which an
// untrusted header can ask for, or when the last dimension of a quantized tensor is not a
// whole number of blocks (see shape_fits_blocks).
std::optional<uint64_t> shape_bytes(const std::vector<uint64_t>& shape, DType t);
// Whether a tensor of this shape can be of type t: rows (the last dimension) of whole blocks.
bool shape_fits_blocks(const std::vector<uint64_t>& shape, DType t);

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

// Converts n elements between unquantized weight dtypes (f32, f16, bf16). Same dtype is a
// copy. Quantized types go through common/quant.h (dequantize, quantize).
// f16 -> bf16 goes through f32, which holds every f16 exactly, so it rounds once.
void convert_elements(const void* src, DType src_type, void* dst, DType dst_type, size_t n);

} // namespace rabbit
