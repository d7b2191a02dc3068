// SPDX-License-Identifier: Apache-2.0
// The plain-loop references of the op table (tests/test_ops.cpp): each op as its definition,
// one element at a time, accumulated in double. Inputs are f32 values as the kernel sees them
// (already rounded where the kernel reads a 16-bit type); the results are exact or double.
// Kernels of both backends are checked against these, never against each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rabbit::ref {

// ---- norms and elementwise -------------------------------------------------------------------

// out[r, i] = weight[i] * x[r, i] / sqrt(mean_i(x[r, :]^2) + eps)
//   x [rows, n], weight [n]; out [rows, n]
std::vector<double> rmsnorm(const std::vector<float>& x, const std::vector<float>& weight, size_t n, double eps);

// The residual stream after the add that precedes a norm: x + (delta * delta_scale[r] + bias),
// one f32 operation at a time as both engines do it, so exact.
//   x, delta [rows, n]; delta_scale [rows] or empty; bias [n] or empty
std::vector<float> residual_add(const std::vector<float>& x, const std::vector<float>& delta,
                                const std::vector<float>& delta_scale, const std::vector<float>& bias, size_t n);

// out[t, i] = silu(gate_up[t, i]) * gate_up[t, inter + i], silu(g) = g / (1 + exp(-g))
//   gate_up [tokens, 2 inter]; out [tokens, inter]
std::vector<double> swiglu(const std::vector<float>& gate_up, size_t inter);

// In place, rotate-half rotary embedding of one head: for i < d/2,
//   x[i] = x[i] cos[i] - x[i + d/2] sin[i],  x[i + d/2] = x[i + d/2] cos[i] + x[i] sin[i]
//   x [head_dim]; cos, sin [head_dim / 2]
void rope(double* x, const float* cos, const float* sin, size_t head_dim);

// y = exp(x - max x) / sum.   x [n]
std::vector<double> softmax(const std::vector<float>& x);

double dot(const std::vector<float>& a, const std::vector<float>& b);

// ---- the qkv projection's output before attention ---------------------------------------------

// Each head of each token: bias added; q and k heads RMS-normed with q_norm / k_norm (when
// given) and rotated by the token's cos/sin; v as it is.
//   qkv [tokens, (heads + 2 kv_heads) head_dim]; bias [that row] or empty;
//   q_norm, k_norm [head_dim] or empty; cos, sin [tokens, head_dim / 2]
struct QkvRope {
    std::vector<double> q;    // [tokens, heads, head_dim]
    std::vector<double> k, v; // [tokens, kv_heads, head_dim]
};
QkvRope qkv_rope(const std::vector<float>& qkv, const std::vector<float>& bias, const std::vector<float>& q_norm,
                 const std::vector<float>& k_norm, const std::vector<float>& cos, const std::vector<float>& sin,
                 double eps, int tokens, int heads, int kv_heads, int head_dim);

// ---- attention ---------------------------------------------------------------------------------

// Causal grouped-query attention: token t (at position pos + t) of head h attends to the
// positions [max(0, pos + t + 1 - window), pos + t] (window 0: from 0) of kv head
// h / (heads / kv_heads), with softmax(scale * q.k) over them weighting v.
struct AttentionShape {
    int tokens, heads, kv_heads, head_dim;
    int64_t pos, window, cache_len;
    double scale;
};
//   q: token t, head h at q[t * q_stride + h * head_dim]; k, v [kv_heads, cache_len, head_dim]
//   returns [tokens, heads, head_dim]
std::vector<double> attention(const std::vector<float>& q, int64_t q_stride, const std::vector<float>& k,
                              const std::vector<float>& v, const AttentionShape& s);

// scale * (q . key j) for j in [first, end).   q [head_dim], keys [positions, head_dim]
std::vector<double> attention_scores(const std::vector<float>& q, const std::vector<float>& keys, size_t head_dim,
                                     size_t first, size_t end, double scale);
// sum over j in [first, end) of p[j] * value j.   p [positions], values [positions, head_dim]
std::vector<double> attention_values(const std::vector<float>& p, const std::vector<float>& values,
                                     size_t head_dim, size_t first, size_t end);

// ---- matrix products and lookups -----------------------------------------------------------------

// y[t, r] = sum_k x[t, k] w[r, k] (+ bias[r])
//   x [tokens, cols], w [rows, cols], bias [rows] or empty; y [tokens, rows]
std::vector<double> matmul(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                           size_t rows, size_t cols);

// ---- quantized products ------------------------------------------------------------------------

// n elements (whole blocks) of a GGUF block type to f32, as gguf-py's dequantize defines them:
// each element from the block layout, one at a time (f32 operations in its order).
std::vector<float> dequantize(int ggml_type, const uint8_t* blocks, size_t n);

// Activations as the CPU's quantized products round them: per block of `block` (32 or 256),
// d = max|x| / 127 (0 below 1e-30), q = nearest-even(x * (1 / d)) in f32.
//   x [tokens, cols]; q [tokens, cols], d [tokens, cols / block]
struct Q8Act {
    std::vector<int8_t> q;
    std::vector<float> d;
    size_t block;
};
Q8Act quantize_q8(const std::vector<float>& x, size_t block);

// y[t, r] = sum over blocks b of d[t, b] * sum_{k in b} w[r, k] q[t, k] (+ bias[r]), in double
// (exact but for the products d * sum); `mag` gets the same sum of absolute values, the scale
// a kernel's f32 rounding is relative to.
//   w [rows, cols] (dequantized), bias [rows] or empty; y, mag [tokens, rows]
std::vector<double> matmul_q8(const Q8Act& x, const std::vector<float>& w, const std::vector<float>& bias,
                              size_t rows, size_t cols, std::vector<double>* mag);

// out[t] = table row ids[t], exactly.   table [vocab, hidden]; out [tokens, hidden]
std::vector<float> embed(const std::vector<float>& table, const std::vector<int32_t>& ids, size_t hidden);

// bf16 -> f16 as the CPU's scalar conversions round it (overflow to +-inf).   bits [n]
std::vector<uint16_t> bf16_to_f16(const std::vector<uint16_t>& bits);

// ---- sampling ----------------------------------------------------------------------------------

// The CPU sampler's f32 operations: each id's logit divided by the penalty when positive,
// multiplied when not; then every logit divided by the temperature.
std::vector<float> penalize_and_scale(const std::vector<float>& logits, const std::vector<int32_t>& ids,
                                      float penalty, float temperature);
// The first index of the largest value (torch.argmax).
int32_t argmax(const std::vector<float>& logits);
// The first k of a stable descending sort: ids, larger first, the lower id first among equals.
std::vector<int32_t> topk(const std::vector<float>& logits, size_t k);

} // namespace rabbit::ref
