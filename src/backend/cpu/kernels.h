// SPDX-License-Identifier: Apache-2.0
// The CPU backend's kernels. Activations are f32; weights f32, bf16 or f16, widened on the fly,
// or block-quantized (q8_0 .. q6_k): dequantized a tile of rows at a time and multiplied in
// f32 (qexact.h, the default), or multiplied in integers with activations quantized to 8-bit
// blocks (qkernels.h, ActQuant::q8).
// The inner loops use AVX-512 or AVX2/FMA/F16C where the processor has them (checked at run
// time) and portable loops elsewhere. They are the CPU backend, not a reference: both
// backends' kernels are tested against the plain loops of tests/reference.h, and the CPU
// engine's whole output is what the CUDA engine's is compared with.
//
// Defined by concern: isa.cpp (cpu_isa, isa_name), matmul.cpp (matmul,
// matmul_rounds_activations), qexact.cpp, qdequant.cpp, qmatmul.cpp, act_quant.cpp, qdot.cpp,
// qdot_x86.cpp (the quantized products), dot.cpp (dot_f32, widen_row), attention.cpp (attention_scores,
// attention_values), ops.cpp (rmsnorm, swiglu, softmax, rope); simd.h holds the vector helpers
// they share.
#pragma once

#include "common/dtype.h"
#include "model/matrix.h"

#include <cstddef>
#include <cstdint>

namespace rabbit {

class ThreadPool;

// The instruction set the kernels use: the best the processor has, capped by RABBIT_ISA
// (portable, avx2, avx512) for tests and comparisons.
enum class Isa { portable, avx2, avx512, avx512bf16 };
Isa cpu_isa();
// Whether the processor has AVX512_VNNI (8-bit dot products, vpdpbusd) and cpu_isa() allows
// AVX-512: the fastest path of quantized products.
bool cpu_vnni();
const char* isa_name(Isa isa);

// How matmul takes the activations of a quantized weight: f32 (the default: weights
// dequantized a tile at a time, f32 sums, the dequantized model's exact product), or q8
// (quantized to 8-bit blocks and multiplied in integers, as llama.cpp does: faster prefill,
// about 0.4 to 1.7 % relative error in y, docs/ARCHITECTURE.md).
enum class ActQuant { f32, q8 };
const char* act_quant_name(ActQuant a);

// Whether matmul rounds the activations for this weight and token count: to bf16 for bf16
// weights on a processor with AVX512_BF16, which multiplies bf16 pairs directly (as a bf16
// model computes in transformers), at twice the rate or more; to 8-bit blocks for quantized
// weights under ActQuant::q8. Otherwise they stay f32.
bool matmul_rounds_activations(const Matrix& w, size_t tokens, ActQuant aq = ActQuant::f32);

// y[t, r] = sum_k x[t, k] * w[r, k] + bias[r]
//   x    [tokens, w.cols] f32
//   bias [w.rows] f32 or null
//   y    [tokens, ldy] f32, of which columns [0, w.rows) are written; ldy 0 means w.rows
//   aq   how a quantized weight takes the activations (ignored for the others)
void matmul(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
            size_t ldy = 0, ActQuant aq = ActQuant::f32);

// One row: y = x / sqrt(mean(x^2) + eps) * weight.   x, y [n] (may alias), weight [n] f32
void rmsnorm(const float* x, const float* weight, float eps, size_t n, float* y);

// out[t, i] = silu(gate_up[t, i]) * gate_up[t, inter + i]
//   gate_up [tokens, 2 * inter], out [tokens, inter]
void swiglu(ThreadPool& pool, const float* gate_up, size_t tokens, size_t inter, float* out);

// In place: x = exp(x - max(x)) / sum.   x [n]
void softmax(float* x, size_t n);

// Rotary embedding in the rotate-half layout, in place, for one head of one position.
//   x [head_dim]; cos, sin [head_dim / 2] for that position
void rope(float* x, const float* cos, const float* sin, size_t head_dim);

// The dot product rmsnorm uses, exposed for the tests.
float dot_f32(const float* a, const float* b, size_t n);

// Attention's two products for one query head, over a cache laid out for them: keys in blocks
// of k_attn_block positions, each transposed ([blocks][head_dim][k_attn_block]), so that a
// block's scores are head_dim multiply-adds of whole vectors with no horizontal sums; values
// row by row ([positions][head_dim]). Both index positions absolutely.
constexpr size_t k_attn_block = 16;
// Where position pos's first key element sits in such a cache; element d is k_attn_block further each.
inline size_t key_offset(size_t pos, size_t head_dim) {
    return pos / k_attn_block * k_attn_block * head_dim + pos % k_attn_block;
}
// scores[j] = scale * (q . key j) for every j in the blocks that cover [first, end)
//   q [head_dim]; scores [round_up(end, k_attn_block)]
void attention_scores(const float* q, const float* k_blocks, size_t head_dim, size_t first, size_t end, float scale,
                      float* scores);
// out = sum over j in [first, end) of p[j] * value j.   out [head_dim]
void attention_values(const float* p, const float* v, size_t head_dim, size_t first, size_t end, float* out);

// Row r of a weight matrix as f32 (a quantized row through common/quant.h's dequantize).
//   out [w.cols]
void widen_row(const Matrix& w, uint64_t r, float* out);

} // namespace rabbit
