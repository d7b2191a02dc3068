// SPDX-License-Identifier: Apache-2.0
// The VRAM planner: given a budget, what must always be on the GPU (activations, workspace,
// the norms and biases of every layer, the device side of the streaming ring, and the KV
// cache when it fits), which units stay resident beside it, and how many bytes are left to
// stream per decoded token. `rabbit inspect --vram-budget` shows it; the CUDA engine
// allocates by it, with the same size functions.
#pragma once

#include "common/dtype.h"
#include "model/config.h"
#include "model/layout.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

struct PlanUnit {
    std::string name;
    UnitKind kind;
    uint64_t bytes;
};

enum class KvPlace { automatic, gpu, host };

struct MemoryPlanInput {
    ModelConfig config;
    std::vector<PlanUnit> units; // as split: embed, layers, norm, lm_head (absent when tied)
    DType weight_dtype = DType::bf16;
    uint64_t budget = 0;        // bytes of GPU memory rabbit may use
    uint64_t ctx = 4096;        // positions the KV cache holds
    uint32_t ring_slots = 2;
    uint32_t prefill_tokens = 512; // tokens per prefill step: sizes the activations
    KvPlace kv = KvPlace::automatic; // automatic: on the GPU when it fits beside the smallest ring
    uint64_t max_slot = 0;         // a ring slot holds at most this many bytes (0: no cap)
    uint64_t max_resident = UINT64_MAX; // at most this many bytes of weights resident, whatever the budget allows
};

struct MemoryPlan {
    uint64_t kv_cache_bytes = 0;   // [layers, 2, kv_heads, ctx, head_dim]
    bool kv_on_host = false;       // the KV cache is in pinned host memory, not counted in fixed_bytes
    uint64_t activation_bytes = 0;
    uint64_t workspace_bytes = 0;
    uint64_t vector_bytes = 0;     // every layer's norms and biases, kept on the GPU
    uint64_t ring_slot_bytes = 0;  // 0 when everything is resident
    uint64_t ring_bytes = 0;
    bool chunked = false;          // some streamed unit is larger than a slot: it goes in row blocks
    uint64_t fixed_bytes = 0;      // all of the above on the GPU
    std::vector<bool> resident;    // per input unit
    uint64_t resident_bytes = 0;
    uint32_t resident_layers = 0;
    uint64_t streamed_per_token = 0; // bytes of weights copied to the GPU per decoded token
    uint64_t minimum_budget = 0;     // fixed bytes with nothing resident
    bool fits = false;
};

// Bytes of weights every decoded token reads: all layers, the final norm, lm_head (the
// embedding matrix when tied). The embedding lookup itself gathers one row on the host.
uint64_t weight_bytes_per_token(const std::vector<PlanUnit>& units, bool tied);

// Rows of logits the CUDA engine holds at once (more go through in groups).
constexpr uint64_t k_planned_logit_rows = 8;

// Sizes shared by the planner and the CUDA engine, which allocates by them.
// The activations of `tokens` tokens at once: f32 residual stream and matrix outputs, the
// matrix inputs in the compute type (act_size bytes per element), RoPE tables, ids, and one
// k_planned_logit_rows rows of logits.
uint64_t activation_bytes(const ModelConfig& c, uint64_t tokens, size_t act_size);
// Fixed device workspaces: cuBLAS, attention's split partials, sampling.
uint64_t workspace_bytes(const ModelConfig& c);
// The f32 norms and biases of every layer and the final norm.
uint64_t vector_bytes(const ModelConfig& c);
// [layers, 2, kv_heads, ctx, head_dim] in the compute type.
uint64_t kv_cache_bytes(const ModelConfig& c, uint64_t ctx, size_t act_size);
// The smallest ring slot worth having: one row of the widest matrix, or 16 MiB when a unit is
// larger (pieces smaller than that make the copies and products inefficient).
uint64_t minimum_slot_bytes(const ModelConfig& c, DType weight_dtype, uint64_t largest_unit);

MemoryPlan plan_memory(const MemoryPlanInput& in);

} // namespace rabbit
