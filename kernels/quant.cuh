// SPDX-License-Identifier: Apache-2.0
// Products with block-quantized weights (GGUF's Q8_0 .. Q6_K, byte for byte as
// src/common/quant.h lays them out), computed on the blocks as they sit in a ring slot or a
// resident buffer:
//   launch_quant_matvec  decode (1..8 tokens): y = x w^T, the blocks decoded in registers and
//                        multiplied in f32 with x (the compute type, widened to f32). The
//                        activations are not quantized: the GPU has the bandwidth to read them
//                        as they are, and f32 products keep the CPU engine's accuracy.
//   launch_dequant       rows of a matrix of any weight type (quantized, f32, f16, bf16) written
//                        out in f32/f16/bf16: prefill dequantizes tiles of rows into a workspace
//                        for cuBLAS; the embedding gathers token rows of a quantized table.
#pragma once

#include "elem.cuh"

#include <cstdint>

namespace rabbit {

// The weight types these kernels read (plain C++: the host maps its DType onto it).
enum class WType : int { f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k };

inline bool wtype_is_quant(WType t) { return int(t) >= int(WType::q8_0) && int(t) <= int(WType::q6_k); }
inline bool valid_wtype(WType t) { return int(t) >= int(WType::f32) && int(t) <= int(WType::q6_k); }
// Elements per block (1 for the float types), and bytes per block.
inline int wtype_block(WType t) { return !wtype_is_quant(t) ? 1 : int(t) >= int(WType::q2_k) ? 256 : 32; }
inline int wtype_block_bytes(WType t) {
    switch (t) {
    case WType::f32: return 4;
    case WType::f16: case WType::bf16: return 2;
    case WType::q8_0: return 34;
    case WType::q4_0: return 18;
    case WType::q4_1: return 20;
    case WType::q5_0: return 22;
    case WType::q5_1: return 24;
    case WType::q2_k: return 84;
    case WType::q3_k: return 110;
    case WType::q4_k: return 144;
    case WType::q5_k: return 176;
    case WType::q6_k: return 210;
    }
    return 0;
}
inline int64_t wtype_row_bytes(WType t, int64_t cols) { return cols / wtype_block(t) * wtype_block_bytes(t); }

constexpr int k_matvec_max_tokens = 8; // more tokens go through launch_dequant and cuBLAS

struct QuantMatvecParams {
    const void* w = nullptr; // [rows, cols] w_type, rows of whole blocks, 2-byte aligned
    WType w_type = WType::q8_0;
    int64_t rows = 0, cols = 0;
    const void* x = nullptr; // [tokens, cols] x_type
    Elem x_type = Elem::f32;
    int tokens = 0;          // 1 .. k_matvec_max_tokens
    float* y = nullptr;      // [tokens, ldy] f32, columns [0, rows) written
    int64_t ldy = 0;
};

// Quantized w_type only; anything else, or a shape out of range, is cudaErrorInvalidValue.
cudaError_t launch_quant_matvec(const QuantMatvecParams& p, cudaStream_t stream);

struct DequantParams {
    const void* w = nullptr;       // [*, cols] w_type, 2-byte aligned
    WType w_type = WType::q8_0;
    int64_t cols = 0;
    int64_t rows = 0;              // rows written to out
    const int32_t* ids = nullptr;  // device [rows]: out row i is w's row ids[i]; null: w's row i
    void* out = nullptr;           // [rows, ldo] out_type
    Elem out_type = Elem::f32;
    int64_t ldo = 0;
};

cudaError_t launch_dequant(const DequantParams& p, cudaStream_t stream);

} // namespace rabbit
