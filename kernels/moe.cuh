// SPDX-License-Identifier: Apache-2.0
// A MoE layer's device side: the routing of each token (softmax over the router's logits, the
// k most probable experts, their weights renormalised where the model asks) by the rule of
// engine/moe.h's route_tokens, and the moves around each expert's product: its tokens' rows
// gathered, its weighted output added back to theirs.
#pragma once

#include "elem.cuh"

#include <cstdint>

namespace rabbit {

// The most experts a router may have (Qwen3-MoE 128, DeepSeek-style 256).
constexpr int k_moe_max_experts = 1024;

struct MoeRouteParams {
    const float* logits = nullptr; // [tokens, experts] f32, the router's
    int tokens = 0, experts = 0, k = 0;
    bool renormalise = false;      // the k weights divided by their sum (norm_topk_prob; Mixtral)
    int32_t* chosen = nullptr;     // [tokens, k]: most probable first, ties to the lower index
    float* weights = nullptr;      // [tokens, k] f32
};
cudaError_t launch_moe_route(const MoeRouteParams& p, cudaStream_t stream);

// dst row j = src row rows[j], for j < count; rows of row_bytes bytes (a multiple of 4).
struct GatherRowsParams {
    const void* src = nullptr;     // [*, row_bytes]
    const int32_t* rows = nullptr; // [count]
    int64_t count = 0, row_bytes = 0;
    void* dst = nullptr;           // [count, row_bytes]
};
cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream);

// out row rows[j] (+)= gate_j * y row j, gate_j = weights[j] * (scale ? scale[j] : 1), or with
// `sigmoid` (Qwen2-MoE's shared expert) sigmoid(weights[j]) * (scale ? scale[j] : 1). The rows
// must be distinct (a token routes to an expert once). rows null: row j itself.
struct ScatterAddParams {
    const float* y = nullptr;        // [count, n] f32, an expert's output
    const int32_t* rows = nullptr;   // [count], or null
    const float* weights = nullptr;  // [count] f32
    const float* scale = nullptr;    // [count] f32 or null: the power of 2 f16 SwiGLU divided row j by
    bool sigmoid = false;
    int64_t count = 0, n = 0;
    float* out = nullptr;            // [*, n] f32
};
cudaError_t launch_scatter_add(const ScatterAddParams& p, cudaStream_t stream);

// x[i] = value for i < count.
cudaError_t launch_fill_f32(float* x, int64_t count, float value, cudaStream_t stream);

} // namespace rabbit
