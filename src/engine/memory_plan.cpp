// SPDX-License-Identifier: Apache-2.0
#include "engine/memory_plan.h"

#include <algorithm>

namespace rabbit {

namespace {

constexpr uint64_t k_cublas_workspace = 32ull << 20;
constexpr uint64_t k_attention_partials = 16ull << 20; // kernels/attention.cuh k_attention_workspace
constexpr uint64_t k_slot_floor = 16ull << 20;

// Is this unit read by every decoded token (and so worth keeping resident)?
bool per_token(const PlanUnit& u, bool tied) {
    return u.kind == UnitKind::layer || u.kind == UnitKind::final_norm || u.kind == UnitKind::lm_head ||
           (tied && u.kind == UnitKind::embed);
}

size_t act_size_of(DType weights) { return weights == DType::f32 ? 4 : 2; }

} // namespace

uint64_t weight_bytes_per_token(const std::vector<PlanUnit>& units, bool tied) {
    uint64_t n = 0;
    for (const auto& u : units)
        if (per_token(u, tied)) n += u.bytes;
    return n;
}

uint64_t activation_bytes(const ModelConfig& c, uint64_t t, size_t act) {
    const uint64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
    const uint64_t f32 = 4 * t * (h /* x */ + (q + 2 * kv) /* qkv */ + h /* out */ + 2 * inter /* gate_up */ +
                                  c.head_dim /* cos, sin */ + 1 /* ids */);
    const uint64_t compute = act * t * (h /* xn */ + q /* attn */ + inter /* act */);
    return f32 + compute + 4ull * k_planned_logit_rows * c.vocab_size;
}

uint64_t workspace_bytes(const ModelConfig& c) {
    // Sampling: per-block candidates of the top-k and the argmax, a little over the vocabulary.
    return k_cublas_workspace + k_attention_partials + 8ull * c.vocab_size + (1ull << 20);
}

uint64_t vector_bytes(const ModelConfig& c) {
    // Each vector starts 256-byte aligned (64 floats) in the engine's buffer.
    auto padded = [](uint64_t n) { return (n + 63) / 64 * 64; };
    const uint64_t per_layer = 2 * padded(c.hidden_size) + (c.qkv_bias ? padded(c.q_dim() + 2ull * c.kv_dim()) : 0) +
                               (c.qk_norm ? 2 * padded(c.head_dim) : 0) + (c.o_bias ? padded(c.hidden_size) : 0);
    return 4 * (per_layer * c.num_layers + padded(c.hidden_size));
}

uint64_t kv_cache_bytes(const ModelConfig& c, uint64_t ctx, size_t act) {
    return 2ull * c.num_layers * ctx * c.kv_dim() * act;
}

uint64_t minimum_slot_bytes(const ModelConfig& c, DType weight_dtype, uint64_t largest_unit) {
    const uint64_t widest_row = uint64_t(std::max(c.hidden_size, c.intermediate_size)) * dtype_size(weight_dtype);
    return std::min(largest_unit, std::max(widest_row, k_slot_floor));
}

MemoryPlan plan_memory(const MemoryPlanInput& in) {
    const ModelConfig& c = in.config;
    const bool tied = c.tie_word_embeddings;
    const size_t act = act_size_of(in.weight_dtype);
    const uint64_t slots = std::max<uint32_t>(1, in.ring_slots);
    MemoryPlan p;
    p.resident.assign(in.units.size(), false);
    p.kv_cache_bytes = kv_cache_bytes(c, in.ctx, act);
    p.activation_bytes = activation_bytes(c, in.prefill_tokens, act);
    p.workspace_bytes = workspace_bytes(c) + 4 * in.ctx; // + the context's ids, for the repetition penalty
    p.vector_bytes = vector_bytes(c);

    std::vector<size_t> layers, others; // per-token units by kind
    uint64_t all = 0, largest = 0;
    for (size_t i = 0; i < in.units.size(); ++i) {
        if (!per_token(in.units[i], tied)) continue;
        (in.units[i].kind == UnitKind::layer ? layers : others).push_back(i);
        all += in.units[i].bytes;
        largest = std::max(largest, in.units[i].bytes);
    }
    uint64_t min_slot = minimum_slot_bytes(c, in.weight_dtype, largest);
    if (in.max_slot) min_slot = std::min(min_slot, in.max_slot);

    // The KV cache goes on the GPU when asked, or (automatic) when it fits beside the
    // smallest ring; otherwise it stays in pinned host memory and attention reads it there.
    const uint64_t base_no_kv = p.activation_bytes + p.workspace_bytes + p.vector_bytes;
    const uint64_t smallest_ring = slots * min_slot;
    p.kv_on_host = in.kv == KvPlace::host ||
                   (in.kv == KvPlace::automatic && base_no_kv + p.kv_cache_bytes + smallest_ring > in.budget &&
                    base_no_kv + p.kv_cache_bytes + all > in.budget);
    const uint64_t base = base_no_kv + (p.kv_on_host ? 0 : p.kv_cache_bytes);
    p.minimum_budget = base + smallest_ring;

    // Everything resident: no ring at all.
    if (base + all <= in.budget && all <= in.max_resident) {
        for (size_t i : layers) p.resident[i] = true;
        for (size_t i : others) p.resident[i] = true;
        p.resident_bytes = all;
        p.resident_layers = uint32_t(layers.size());
        p.fixed_bytes = base;
        p.fits = true;
        return p;
    }
    p.fits = p.minimum_budget <= in.budget;
    if (!p.fits) {
        p.ring_slot_bytes = min_slot;
        p.ring_bytes = smallest_ring;
        p.chunked = min_slot < largest;
        p.fixed_bytes = base + p.ring_bytes;
        p.streamed_per_token = all;
        return p;
    }

    // Otherwise choose the slot size and the resident units together. A slot as large as
    // the largest streamed unit sends each unit in one copy; a smaller one sends the larger
    // units in row blocks, which costs no bandwidth and can leave room for more resident
    // units. Every per-token byte costs the same to stream, so keep the most bytes resident:
    // for each candidate slot, try each subset of the few non-layer units, then add layers
    // in order while they fit.
    std::vector<uint64_t> candidates;
    for (size_t i : layers) candidates.push_back(in.units[i].bytes);
    for (size_t i : others) candidates.push_back(in.units[i].bytes);
    candidates.push_back((in.budget - base) / slots / 4096 * 4096); // the largest slot the budget allows
    candidates.push_back(min_slot);
    for (auto& s : candidates) {
        s = std::max(s, min_slot);
        if (in.max_slot) s = std::min(s, in.max_slot);
    }
    std::sort(candidates.begin(), candidates.end(), std::greater<uint64_t>());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());

    // The slot a resident set needs: the largest streamed unit, at most `slot`.
    auto slot_for = [&](const std::vector<bool>& res, uint64_t slot) {
        uint64_t need = 0;
        for (size_t i : layers) need = res[i] ? need : std::max(need, in.units[i].bytes);
        for (size_t i : others) need = res[i] ? need : std::max(need, in.units[i].bytes);
        return std::min(need, slot);
    };
    auto resident_bytes = [&](const std::vector<bool>& res) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < res.size(); ++i) bytes += res[i] ? in.units[i].bytes : 0;
        return bytes;
    };
    auto used = [&](const std::vector<bool>& res, uint64_t slot) {
        return base + slots * slot_for(res, slot) + resident_bytes(res);
    };
    uint64_t best_bytes = 0, best_slot = 0;
    std::vector<bool> best(in.units.size(), false);
    bool found = false;
    for (uint64_t slot : candidates) {
        if (base + slots * slot > in.budget) continue;
        for (size_t mask = 0; mask < (size_t(1) << others.size()); ++mask) {
            std::vector<bool> res(in.units.size(), false);
            for (size_t k = 0; k < others.size(); ++k) res[others[k]] = (mask >> k) & 1;
            if (used(res, slot) > in.budget || resident_bytes(res) > in.max_resident) continue;
            for (size_t i : layers) { // layers in order: the first ones resident, the rest streamed
                res[i] = true;
                if (used(res, slot) > in.budget || resident_bytes(res) > in.max_resident) {
                    res[i] = false;
                    break;
                }
            }
            const uint64_t bytes = resident_bytes(res);
            const uint64_t need = slot_for(res, slot);
            // More resident bytes win; between equals, the larger slot (fewer, larger copies).
            if (!found || bytes > best_bytes || (bytes == best_bytes && need > best_slot)) {
                found = true;
                best_bytes = bytes;
                best_slot = need;
                best = res;
            }
        }
    }
    p.resident = best;
    p.resident_bytes = best_bytes;
    for (size_t i : layers) p.resident_layers += best[i] ? 1 : 0;
    p.ring_slot_bytes = best_slot;
    p.ring_bytes = slots * best_slot;
    for (size_t i = 0; i < in.units.size(); ++i)
        if (per_token(in.units[i], tied) && !best[i] && in.units[i].bytes > best_slot) p.chunked = true;
    p.fixed_bytes = base + p.ring_bytes;
    p.streamed_per_token = all - best_bytes;
    return p;
}

} // namespace rabbit
