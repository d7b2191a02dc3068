// SPDX-License-Identifier: Apache-2.0
// The op table's cases and inputs, op by op, shared by its rows and CPU runners
// (tests/test_ops.cpp) and its CUDA runners (tests/test_ops_cuda.cpp).
#pragma once

#include "common/dtype.h"
#include "op_table.h"

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace rabbit {
class ThreadPool;
}

namespace rabbit::test {

// ---- what the rows share ---------------------------------------------------------------------
const float k_nan = std::numeric_limits<float>::quiet_NaN();
const DType k_dtypes[] = {DType::f32, DType::f16, DType::bf16};

ThreadPool& test_pool(); // three threads, for the CPU kernels that take a pool

// v as `type` holds it.
inline std::vector<float> rounded(std::vector<float> v, DType type) {
    std::vector<uint8_t> b(v.size() * dtype_size(type));
    convert_elements(v.data(), DType::f32, b.data(), type, v.size());
    convert_elements(b.data(), type, v.data(), DType::f32, v.size());
    return v;
}

// What `write` puts on a stream (a case's description).
template <typename F>
std::string text(F&& write) {
    std::ostringstream s;
    write(s);
    return s.str();
}

// ---- rmsnorm ---------------------------------------------------------------------------------
enum class Residual { none, delta, delta_bias, delta_scaled }; // what is added to x before the norm
struct RmsNormCase {
    int rows, n;
    Residual residual;
    DType out;
    bool beyond_f16 = false; // outputs beyond +-65504: an f16 output saturates
};
struct RmsNormData {
    std::vector<float> x, delta;      // [rows, n]
    std::vector<float> delta_scale;   // [rows] powers of 2
    std::vector<float> bias, weight;  // [n]
};

// ---- qkv bias, q/k norm, rope, cache write -----------------------------------------------------
struct QkvRopeCase {
    int heads, kv_heads, head_dim, tokens;
    bool bias, norm;
    DType cache;
};
constexpr int64_t k_qkv_pos = 5;        // the first new position
constexpr int64_t k_qkv_cache_spare = 7; // positions of the cache after the new ones
struct QkvRopeData {
    std::vector<float> qkv;              // [tokens, (heads + 2 kv_heads) head_dim]
    std::vector<float> bias;             // [that row]
    std::vector<float> q_norm, k_norm;   // [head_dim]
    std::vector<float> cos, sin;         // [tokens, head_dim / 2]
};

// ---- attention -------------------------------------------------------------------------------
struct AttentionCase {
    int heads, kv_heads, head_dim, tokens;
    int64_t pos, window;
    DType cache, out;
    int sm_count = -1;    // -1: the device's
    bool mapped = false;  // the cache in mapped pinned host memory
    float scale_mult = 1; // times 1/sqrt(head_dim): larger makes the softmax peaked
};
struct AttentionData {
    int64_t q_stride, cache_len;
    std::vector<float> qkv;  // [tokens, q_stride]: q, then NaN where k and v would be
    std::vector<float> k, v; // [kv_heads, cache_len, head_dim] as the cache holds them (rounded), NaN past pos + tokens
    float scale;
};

// ---- swiglu ----------------------------------------------------------------------------------
enum class Spread { moderate, tails, beyond_f16 }; // gates in [-8, 8]; some far into both tails; products past 65504
struct SwigluCase {
    int tokens, inter;
    DType out;
    Spread spread;
    bool row_scale = false; // f16 rows scaled by powers of 2 into range
};
struct SwigluData {
    std::vector<float> gate_up; // [tokens, 2 inter]
};

// ---- the embedding lookup --------------------------------------------------------------------
struct EmbedCase {
    int hidden, tokens;
    DType table;
};
constexpr int k_embed_vocab = 1000;
struct EmbedData {
    std::vector<uint8_t> table; // [vocab, hidden] in the table's type
    std::vector<float> values;  // the same as f32
    std::vector<int32_t> ids;   // [tokens], the last row among them
};

// ---- gemm ------------------------------------------------------------------------------------
struct GemmCase {
    int64_t rows, cols, tokens;
    DType w, x;     // x: the activations' type (f32, or the weights' 16-bit type as on the GPU)
    bool bias;
    int64_t ldy_pad; // y's row stride is rows + ldy_pad
};
struct GemmData {
    std::vector<uint8_t> w;   // [rows, cols] in w's type
    std::vector<float> wf, x; // w as f32; x [tokens, cols] as x's type holds it
    std::vector<float> bias;  // [rows]
};

// ---- bf16 -> f16 -----------------------------------------------------------------------------
struct ConvertCase {
    int count, offset; // elements converted, from element `offset` of the buffer
};
constexpr uint16_t k_guard = 0x1234; // the buffer's elements around them, to stay untouched
struct ConvertData {
    std::vector<uint16_t> bits; // [offset + count + 5] bf16, guards around
};

// ---- sampling --------------------------------------------------------------------------------
struct PenaltyCase {
    int64_t n;
    float penalty, temperature;
};
struct PenaltyData {
    std::vector<float> logits; // [n]
    std::vector<int32_t> ids;  // distinct, shuffled
};
enum class MaxAt { random, duplicate, all_equal, last };
struct ArgmaxCase {
    int64_t n;
    MaxAt max;
};
struct TopkCase {
    int64_t n;
    int k;
    bool ties; // seven distinct values, among them +0 and -0
};
struct LogitsData {
    std::vector<float> logits; // [n]
};

// ---- the CUDA runners (tests/test_ops_cuda.cpp) ------------------------------------------------
#ifdef RABBIT_HAVE_CUDA
Outputs cuda_rmsnorm(const RmsNormCase& c, const RmsNormData& d);
Outputs cuda_qkv_rope(const QkvRopeCase& c, const QkvRopeData& d);
Outputs cuda_attention(const AttentionCase& c, const AttentionData& d);
Outputs cuda_swiglu(const SwigluCase& c, const SwigluData& d);
Outputs cuda_embed(const EmbedCase& c, const EmbedData& d);
Outputs cuda_gemm(const GemmCase& c, const GemmData& d);
Outputs cuda_bf16_to_f16(const ConvertCase& c, const ConvertData& d);
Outputs cuda_penalty(const PenaltyCase& c, const PenaltyData& d);
Outputs cuda_argmax(const ArgmaxCase& c, const LogitsData& d);
Outputs cuda_topk(const TopkCase& c, const LogitsData& d);
#define RABBIT_CUDA_RUNNER(f) f
#else
#define RABBIT_CUDA_RUNNER(f) nullptr
#endif

} // namespace rabbit::test
