// SPDX-License-Identifier: Apache-2.0
// The VRAM planner: given a budget, what must always be on the GPU (KV cache, activations,
// workspace, the device side of the streaming ring), which units fit resident beside it, and
// how many bytes are left to stream per decoded token. `rabbit inspect --vram-budget` shows
// it; the CUDA engine will place memory by it.
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

struct MemoryPlanInput {
    ModelConfig config;
    std::vector<PlanUnit> units; // as split: embed, layers, norm, lm_head (absent when tied)
    DType weight_dtype = DType::bf16;
    uint64_t budget = 0;        // bytes of GPU memory rabbit may use
    uint64_t ctx = 4096;        // positions the KV cache holds
    uint32_t ring_slots = 2;
    uint32_t prefill_tokens = 512; // tokens per prefill step: sizes the activations
};

struct MemoryPlan {
    uint64_t kv_cache_bytes = 0;   // [layers, 2, ctx, kv_heads, head_dim]
    uint64_t activation_bytes = 0;
    uint64_t workspace_bytes = 0;
    uint64_t ring_slot_bytes = 0;  // 0 when everything is resident
    uint64_t ring_bytes = 0;
    uint64_t fixed_bytes = 0;      // all of the above
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

MemoryPlan plan_memory(const MemoryPlanInput& in);

} // namespace rabbit
