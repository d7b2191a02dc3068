// SPDX-License-Identifier: Apache-2.0
// The VRAM planner: given a budget, what must always be on the GPU (activations, workspaces,
// the norms and biases of every layer, the device side of the streaming ring, and the KV
// cache when it fits), which units stay resident beside it, and how many bytes are left to
// stream per decoded token. It lists the device allocations with their sizes; the CUDA engine
// allocates exactly that list, and `rabbit inspect --vram-budget` shows it.
//
// What a budget pays for is what the device's used memory grows by while the engine runs:
//   - every allocation rounded up to k_device_page (cudaMalloc's granularity);
//   - the runtime's own memory beside rabbit's buffers (`overhead`): cuBLAS's handle and the
//     kernels it loads at its first GEMM, which the engine measures before it plans (and
//     `inspect`, with no GPU to measure, estimates as k_estimated_cublas_bytes), plus
//     k_kernel_code_reserve for rabbit's own kernels, loaded at their first launch;
//   - k_device_reserve, for what the driver takes on its own while the engine runs.
// The context itself is not in the budget: it exists before the engine reads free memory.
#pragma once

#include "common/dtype.h"
#include "model/config.h"
#include "format/unit_file.h"
#include "model/layout.h"

#include <algorithm>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

struct PlanUnit {
    std::string name;
    UnitKind kind;
    uint64_t bytes; // the unit's data section: what streams to the GPU
    // A MoE layer streams as pieces (docs/FORMAT.md): its bytes before the experts (attention,
    // norms, router, shared expert), then each routed expert's byte range. 0 and 0: not one.
    uint64_t dense = 0;  // bytes before the first expert
    uint64_t expert = 0; // the largest expert's bytes
    bool moe() const { return expert != 0; }
    // The largest piece it streams in whole (a dense unit: all of it).
    uint64_t piece() const { return moe() ? std::max(dense, expert) : bytes; }
};
// A unit's planner view from its layout (the experts found by their names, "expert.E.*").
PlanUnit plan_unit(const UnitLayout& layout, UnitKind kind);

// The planner's view of a model's units: from a manifest's units (a split model) or a split
// plan's (a checkpoint not yet split), anything with `layout` (a UnitLayout) and `kind`.
template <class Unit>
std::vector<PlanUnit> plan_units(const std::vector<Unit>& units) {
    std::vector<PlanUnit> out;
    out.reserve(units.size());
    for (const auto& u : units) out.push_back(plan_unit(u.layout, u.kind));
    return out;
}

enum class KvPlace { automatic, gpu, host };

// cudaMalloc hands out memory in pages of 2 MiB; the planner counts every allocation as whole
// pages (small ones may share a page on a GPU, so this is never less than it uses).
constexpr uint64_t k_device_page = 2ull << 20;
inline uint64_t device_pages(uint64_t bytes) { return (bytes + k_device_page - 1) / k_device_page * k_device_page; }

constexpr uint64_t k_kernel_code_reserve = 16ull << 20;     // rabbit's kernels, loaded at their first launch
constexpr uint64_t k_device_reserve = 32ull << 20;          // the driver's own allocations while running
constexpr uint64_t k_estimated_cublas_bytes = 64ull << 20;  // cuBLAS's handle and kernels, unmeasured

// Rows of logits the CUDA engine holds at once (more go through in groups).
constexpr uint64_t k_planned_logit_rows = 8;
// The most rows a draft tree may hold on the CUDA engine (Engine::forward_tree; --draft-budget).
constexpr uint64_t k_tree_rows = 256;

// Every fixed buffer starts at a multiple of this, and so does every vector in `vectors` (the
// CUDA engine packs them so). The workspace sizes are kernels/workspace.h's.
constexpr uint64_t k_fixed_align = 256;
inline uint64_t fixed_aligned(uint64_t bytes) { return (bytes + k_fixed_align - 1) / k_fixed_align * k_fixed_align; }

// The fixed buffers, carved from one device allocation at k_fixed_align offsets.
enum class Fixed : int {
    x,           // [tokens, hidden] f32, the residual stream
    xn,          // [tokens, hidden] compute type, norm outputs (matrix inputs)
    qkv,         // [tokens, q_dim + 2 kv_dim] f32
    attn,        // [tokens, q_dim] compute type
    out,         // [tokens, hidden] f32, matrix outputs added to the residual stream
    gate_up,     // [tokens, 2 inter] f32 (inter: the widest MLP, dense, expert or shared)
    act,         // [tokens, inter] compute type, SwiGLU's output
    row_scale,   // [tokens] f32, the power of 2 each row of `act` was divided by (f16 compute)
    cos,         // [tokens, head_dim / 2] f32
    sin,         // [tokens, head_dim / 2] f32
    ids,         // [tokens] int32
    logits,      // [k_planned_logit_rows, vocab] f32
    topk_values, // [k_topk_max] f32
    topk_ids,    // [k_topk_max] int32
    picked,      // [1] int32
    penalty_ids, // [ctx] int32, the context's distinct ids
    tree,        // [k_tree_rows, k_tree_rows / 32] uint32 then [k_tree_rows] int32: a draft tree's mask and positions
    vectors,     // every layer's norms and biases and the final norm, f32, each k_fixed_align aligned
    cublas_workspace,    // k_cublas_workspace bytes
    attention_workspace, // k_attention_workspace bytes
    sample_workspace,    // sample_workspace_bytes(vocab)
    dequant_workspace,   // k_dequant_workspace bytes when weights are quantized, else none
    // A MoE model's (none in a dense one):
    router,          // [tokens, num_experts] f32, the router's logits
    route_ids,       // [tokens, experts_per_tok] int32, each token's experts
    route_weights,   // [tokens, experts_per_tok] f32, and their weights
    moe_rows,        // [tokens * experts_per_tok] int32: the pass's tokens grouped by expert
    moe_row_weights, // [tokens * experts_per_tok] f32: their routing weights
    moe_x,           // [tokens, hidden] compute type: one expert's tokens' rows of xn
    moe_y,           // [tokens, hidden] f32: its output (or the shared expert's)
    moe_scale,       // [tokens] f32: f16 SwiGLU's row powers of 2 for moe_y's rows
    count
};
const char* fixed_name(Fixed f);

struct FixedLayout {
    uint64_t offset[int(Fixed::count)] = {};
    uint64_t bytes[int(Fixed::count)] = {};
    uint64_t total = 0;
    uint64_t at(Fixed f) const { return offset[int(f)]; }
    uint64_t size(Fixed f) const { return bytes[int(f)]; }
};
// For `tokens` tokens at once, matrix inputs and the KV cache in act_size-byte elements, and a
// context of ctx positions.
// With `dequant`, the workspace prefill dequantizes quantized weights into.
FixedLayout fixed_layout(const ModelConfig& c, uint64_t tokens, size_t act_size, uint64_t ctx, bool dequant = false);

struct MemoryPlanInput {
    ModelConfig config;
    std::vector<PlanUnit> units; // as split: embed, layers, norm, lm_head (absent when tied)
    DType weight_dtype = DType::bf16; // of the matrices (a quantized type: the compute type is bf16)
    bool dequant = false;             // some matrix is not in the compute type (quantized weights)
    uint64_t budget = 0;        // bytes of GPU memory rabbit may use
    uint64_t ctx = 4096;        // positions the KV cache holds
    uint32_t sequences = 1;     // KV caches, one for each sequence in flight (batched generation)
    uint32_t ring_slots = 2;
    uint32_t prefill_tokens = 512; // tokens per prefill step: sizes the activations
    KvPlace kv = KvPlace::automatic; // automatic: on the GPU when it fits beside the smallest ring
    std::optional<DType> kv_dtype;   // the KV cache's type (--kv-dtype); none: the compute type
    uint64_t max_slot = 0;         // a ring slot holds at most this many bytes (0: no cap)
    uint64_t max_resident = UINT64_MAX; // at most this many bytes of weights resident, whatever the budget allows
    // A MoE model: at most this many bytes of the VRAM left over keep experts across passes (0: no cache).
    uint64_t expert_cache = 0;
    // Device memory the runtime takes beside rabbit's allocations (cuBLAS, the kernels' code).
    uint64_t overhead = k_estimated_cublas_bytes + k_kernel_code_reserve;
    // Device memory a draft model's engine holds on the same GPU (speculative decoding, every
    // unit resident): part of `budget`, so the plan is made in budget - draft_bytes.
    uint64_t draft_bytes = 0;
};

// One device allocation of the plan.
enum class AllocationKind { fixed, kv_cache, unit, expert_cache, ring_slot };
struct PlannedAllocation {
    AllocationKind kind;
    size_t unit;      // the input unit (kind unit)
    uint64_t bytes;   // asked for; the device takes device_pages(bytes)
    std::string what; // "fixed buffers", "KV cache", "ring slot", or the unit's name
};

struct MemoryPlan {
    uint64_t kv_cache_bytes = 0;   // [sequences, layers, 2, kv_heads, ctx, head_dim]: every sequence's
    uint64_t kv_sequence_bytes = 0; // [layers, 2, kv_heads, ctx, head_dim]: one sequence's
    // The first kv_gpu_sequences sequences' caches are on the GPU (one allocation), the rest in
    // pinned host memory, not counted in fixed_bytes: all, none, or split when not all fit.
    uint32_t kv_gpu_sequences = 1;
    bool kv_on_host = false;       // no sequence's KV cache is on the GPU
    FixedLayout fixed;             // the fixed buffers' layout
    uint64_t activation_bytes = 0; // of them: the activations of prefill_tokens tokens
    uint64_t workspace_bytes = 0;  // of them: cuBLAS, attention and sampling workspaces
    uint64_t vector_bytes = 0;     // of them: every layer's norms and biases
    uint64_t overhead_bytes = 0;   // the runtime's memory (input) and k_device_reserve
    uint64_t ring_slot_bytes = 0;  // 0 when everything is resident
    uint64_t ring_bytes = 0;       // device memory of the ring's slots (whole pages)
    bool chunked = false;          // some streamed unit is larger than a slot: it goes in row blocks
    // A MoE model: the MoE layers that stream (each as its dense piece, then its routed experts,
    // through the ring), and the experts the VRAM left over keeps (whole experts of the largest).
    uint32_t streamed_moe_layers = 0;
    uint64_t expert_cache_bytes = 0, expert_cache_experts = 0;
    uint64_t fixed_bytes = 0;      // device memory of all of the above (whole pages)
    std::vector<bool> resident;    // per input unit
    uint64_t resident_bytes = 0;   // bytes of weights resident
    uint32_t resident_layers = 0;
    uint64_t device_bytes = 0;     // device memory the plan takes in all: fixed + resident units (whole pages)
    uint64_t streamed_per_token = 0; // bytes of weights copied to the GPU per decoded token (a MoE
                                     // layer's: its dense piece and k experts, before the expert cache)
    uint64_t minimum_budget = 0;     // fixed bytes with nothing resident, and the draft's share
    uint64_t draft_bytes = 0;        // the input's draft_bytes: the budget's share that is not the plan's
    bool fits = false;
    std::vector<PlannedAllocation> allocations; // what the engine allocates, in order (ring slots last)
};

// Bytes of weights every decoded token reads: all layers, the final norm, lm_head (the
// embedding matrix when tied). The embedding lookup itself gathers one row on the host.
uint64_t weight_bytes_per_token(const std::vector<PlanUnit>& units, bool tied);

// The f32 norms and biases of every layer and the final norm, each k_fixed_align aligned.
uint64_t vector_bytes(const ModelConfig& c);
// [layers, 2, kv_heads, ctx, head_dim] in the compute type.
uint64_t kv_cache_bytes(const ModelConfig& c, uint64_t ctx, size_t act_size);
// The same in type kv (engine/kv_cache.h's types; q8_0 in blocks along head_dim).
uint64_t kv_cache_bytes(const ModelConfig& c, uint64_t ctx, DType kv);
// The KV cache's type a plan counts: in.kv_dtype, else the compute type of in.weight_dtype.
DType planned_kv_dtype(const MemoryPlanInput& in);
// The smallest ring slot worth having: one row of the widest matrix, or 16 MiB when a unit is
// larger (pieces smaller than that make the copies and products inefficient).
uint64_t minimum_slot_bytes(const ModelConfig& c, DType weight_dtype, uint64_t largest_unit);

MemoryPlan plan_memory(const MemoryPlanInput& in);

} // namespace rabbit
