// SPDX-License-Identifier: Apache-2.0
#include "engine/memory_plan.h"

#include <algorithm>

namespace rabbit {

namespace {

constexpr uint64_t k_cublas_workspace = 32ull << 20;

// Is this unit read by every decoded token (and so worth keeping resident)?
bool per_token(const PlanUnit& u, bool tied) {
    return u.kind == UnitKind::layer || u.kind == UnitKind::final_norm || u.kind == UnitKind::lm_head ||
           (tied && u.kind == UnitKind::embed);
}

} // namespace

uint64_t weight_bytes_per_token(const std::vector<PlanUnit>& units, bool tied) {
    uint64_t n = 0;
    for (const auto& u : units)
        if (per_token(u, tied)) n += u.bytes;
    return n;
}

MemoryPlan plan_memory(const MemoryPlanInput& in) {
    const ModelConfig& c = in.config;
    const bool tied = c.tie_word_embeddings;
    MemoryPlan p;
    p.resident.assign(in.units.size(), false);

    // KV cache in the activation dtype: f32 for f32 weights, else 16-bit.
    const uint64_t kv_elem = in.weight_dtype == DType::f32 ? 4 : 2;
    p.kv_cache_bytes = 2ull * c.num_layers * in.ctx * c.kv_dim() * kv_elem;
    // Per prefill step, in f32: residual, normed input, attention output, qkv, gate/up, down,
    // plus one row of logits.
    const uint64_t t = in.prefill_tokens;
    p.activation_bytes = 4ull * (t * (3ull * c.hidden_size + c.q_dim() + c.q_dim() + 2 * c.kv_dim() +
                                      2ull * c.intermediate_size + c.hidden_size) +
                                 c.vocab_size);
    p.workspace_bytes = k_cublas_workspace;
    const uint64_t base = p.kv_cache_bytes + p.activation_bytes + p.workspace_bytes;

    std::vector<size_t> layers, others; // per-token units by kind
    for (size_t i = 0; i < in.units.size(); ++i) {
        if (!per_token(in.units[i], tied)) continue;
        (in.units[i].kind == UnitKind::layer ? layers : others).push_back(i);
    }
    uint64_t max_unit = 0;
    for (size_t i : layers) max_unit = std::max(max_unit, in.units[i].bytes);
    for (size_t i : others) max_unit = std::max(max_unit, in.units[i].bytes);
    p.minimum_budget = base + uint64_t(in.ring_slots) * max_unit;

    // Everything resident: no ring at all.
    uint64_t all = 0;
    for (size_t i : layers) all += in.units[i].bytes;
    for (size_t i : others) all += in.units[i].bytes;
    if (base + all <= in.budget) {
        for (size_t i : layers) p.resident[i] = true;
        for (size_t i : others) p.resident[i] = true;
        p.resident_bytes = all;
        p.resident_layers = uint32_t(layers.size());
        p.fixed_bytes = base;
        p.fits = true;
        return p;
    }

    // Otherwise the ring holds the largest streamed unit per slot, and as many units as fit
    // stay resident. Every per-token byte costs the same to stream, so keep the most bytes:
    // try each subset of the few non-layer units, then fill with layers.
    p.fits = p.minimum_budget <= in.budget;
    if (!p.fits) {
        p.ring_slot_bytes = max_unit;
        p.ring_bytes = uint64_t(in.ring_slots) * max_unit;
        p.fixed_bytes = base + p.ring_bytes;
        p.streamed_per_token = all;
        return p;
    }
    auto slot_for = [&](const std::vector<bool>& res) {
        uint64_t slot = 0;
        for (size_t i : layers) slot = res[i] ? slot : std::max(slot, in.units[i].bytes);
        for (size_t i : others) slot = res[i] ? slot : std::max(slot, in.units[i].bytes);
        return slot;
    };
    auto used = [&](const std::vector<bool>& res) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < res.size(); ++i) bytes += res[i] ? in.units[i].bytes : 0;
        return base + uint64_t(in.ring_slots) * slot_for(res) + bytes;
    };
    uint64_t best_bytes = 0;
    std::vector<bool> best(in.units.size(), false);
    for (size_t mask = 0; mask < (size_t(1) << others.size()); ++mask) {
        std::vector<bool> res(in.units.size(), false);
        for (size_t k = 0; k < others.size(); ++k) res[others[k]] = (mask >> k) & 1;
        if (used(res) > in.budget) continue;
        for (size_t i : layers) { // layers in order: the first ones resident, the rest streamed
            res[i] = true;
            if (used(res) > in.budget) {
                res[i] = false;
                break;
            }
        }
        uint64_t bytes = 0;
        for (size_t i = 0; i < res.size(); ++i) bytes += res[i] ? in.units[i].bytes : 0;
        if (bytes > best_bytes) {
            best_bytes = bytes;
            best = res;
        }
    }
    const uint64_t best_ring = slot_for(best);
    p.resident = best;
    p.resident_bytes = best_bytes;
    for (size_t i : layers) p.resident_layers += best[i] ? 1 : 0;
    p.ring_slot_bytes = best_ring;
    p.ring_bytes = uint64_t(in.ring_slots) * best_ring;
    p.fixed_bytes = base + p.ring_bytes;
    p.streamed_per_token = all - best_bytes;
    return p;
}

} // namespace rabbit
