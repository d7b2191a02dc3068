// SPDX-License-Identifier: Apache-2.0
#include "engine/memory_plan.h"

#include "engine/kv_cache.h"

#include "workspace.h"

#include <algorithm>

namespace rabbit {

namespace {

constexpr uint64_t k_slot_floor = 16ull << 20;

// Is this unit read by every decoded token (and so worth keeping resident)?
bool per_token(const PlanUnit& u, bool tied) { return streams_per_token(u.kind, tied); }

size_t act_size_of(DType weights) { return weights == DType::f32 ? 4 : 2; }
bool needs_dequant(const MemoryPlanInput& in) { return in.dequant || is_quant_dtype(in.weight_dtype); }

// Device memory a resident unit takes: whole pages; none for the final norm, whose vector is
// among the fixed buffers' (`vectors`).
uint64_t unit_pages(const PlanUnit& u) { return u.kind == UnitKind::final_norm ? 0 : device_pages(u.bytes); }

// The bytes a decoded token streams of a unit that is not resident: all of it, but of a MoE
// layer only its dense piece and k experts.
uint64_t streamed_bytes(const PlanUnit& u, const ModelConfig& c) {
    return u.moe() ? u.dense + uint64_t(c.experts_per_tok) * u.expert : u.bytes;
}

// The units every decoded token reads, by kind, and what they come to.
struct PerTokenUnits {
    std::vector<size_t> layers, others; // indices in the input: the layers in order, then the rest
    uint64_t bytes = 0, pages = 0;
    uint64_t largest = 0;     // the largest piece that streams whole (a unit, or a MoE layer's piece)
    uint64_t largest_moe = 0; // of a MoE layer's pieces: a slot holds at least this (they never go in row blocks)
    uint64_t expert = 0;      // the largest expert
};

PerTokenUnits per_token_units(const MemoryPlanInput& in) {
    PerTokenUnits u;
    for (size_t i = 0; i < in.units.size(); ++i) {
        if (!per_token(in.units[i], in.config.tie_word_embeddings)) continue;
        (in.units[i].kind == UnitKind::layer ? u.layers : u.others).push_back(i);
        u.bytes += in.units[i].bytes;
        u.pages += unit_pages(in.units[i]);
        u.largest = std::max(u.largest, in.units[i].piece());
        if (in.units[i].moe()) u.largest_moe = std::max(u.largest_moe, in.units[i].piece());
        u.expert = std::max(u.expert, in.units[i].expert);
    }
    return u;
}

// Step 1: the fixed buffers, the KV cache's size and the runtime's memory: what any plan holds.
void plan_fixed(const MemoryPlanInput& in, MemoryPlan& p) {
    const ModelConfig& c = in.config;
    const size_t act = act_size_of(in.weight_dtype);
    p.resident.assign(in.units.size(), false);
    p.kv_sequence_bytes = kv_cache_bytes(c, in.ctx, planned_kv_dtype(in));
    p.kv_cache_bytes = std::max<uint32_t>(1, in.sequences) * p.kv_sequence_bytes;
    p.fixed = fixed_layout(c, in.prefill_tokens, act, in.ctx, needs_dequant(in));
    p.vector_bytes = p.fixed.size(Fixed::vectors);
    p.workspace_bytes = p.fixed.size(Fixed::cublas_workspace) + p.fixed.size(Fixed::attention_workspace) +
                        p.fixed.size(Fixed::sample_workspace) + p.fixed.size(Fixed::dequant_workspace);
    p.activation_bytes = p.fixed.total - p.vector_bytes - p.workspace_bytes;
    p.overhead_bytes = in.overhead + k_device_reserve;
}

// Step 2: where the KV caches live. On the GPU when asked, or (automatic) when they fit beside
// the smallest ring; otherwise as many sequences' as fit there on the GPU and the rest in
// pinned host memory, where attention reads them. Returns the device memory every plan takes
// before units and ring: the fixed buffers, the runtime's memory and the caches on the GPU.
uint64_t place_kv_cache(const MemoryPlanInput& in, uint64_t smallest_ring, uint64_t all_pages, MemoryPlan& p) {
    const uint64_t base_no_kv = device_pages(p.fixed.total) + p.overhead_bytes;
    const uint32_t seqs = std::max<uint32_t>(1, in.sequences);
    auto kv_pages = [&](uint64_t n) { return device_pages(n * p.kv_sequence_bytes); };
    const bool all_fit = base_no_kv + kv_pages(seqs) + smallest_ring <= in.budget ||
                         base_no_kv + kv_pages(seqs) + all_pages <= in.budget;
    if (in.kv == KvPlace::host) p.kv_gpu_sequences = 0;
    else if (in.kv == KvPlace::gpu || all_fit) p.kv_gpu_sequences = seqs;
    else {
        const uint64_t room = in.budget > base_no_kv + smallest_ring ? in.budget - base_no_kv - smallest_ring : 0;
        uint32_t n = 0;
        while (n < seqs && kv_pages(n + 1) <= room) ++n;
        p.kv_gpu_sequences = n;
    }
    p.kv_on_host = p.kv_gpu_sequences == 0;
    const uint64_t base = base_no_kv + kv_pages(p.kv_gpu_sequences);
    p.minimum_budget = base + smallest_ring;
    return base;
}

// Step 3: which units stay resident, and the slot size, together. A slot as large as the
// largest streamed unit sends each unit in one copy; a smaller one sends the larger units in
// row blocks, which costs no bandwidth and can leave room for more resident units. Every
// per-token byte costs the same to stream, so keep the most bytes resident: for each candidate
// slot, try each subset of the few non-layer units, then add layers in order while they fit.
class ResidentSearch {
public:
    ResidentSearch(const MemoryPlanInput& in, const PerTokenUnits& units, uint64_t base, uint64_t slots)
        : in_(in), units_(units), base_(base), slots_(slots) {}

    // Fills `resident` and `slot` with the best choice; the slot is at least min_slot.
    void best(uint64_t min_slot, std::vector<bool>& resident, uint64_t& slot) const {
        uint64_t best_bytes = 0, best_slot = 0;
        std::vector<bool> best(in_.units.size(), false);
        bool found = false;
        for (uint64_t candidate : candidates(min_slot)) {
            if (base_ + slots_ * device_pages(candidate) > in_.budget) continue;
            for (size_t mask = 0; mask < (size_t(1) << units_.others.size()); ++mask) {
                std::vector<bool> res;
                if (!fill(candidate, mask, res)) continue;
                const uint64_t bytes = resident_bytes(res, false);
                const uint64_t need = slot_for(res, candidate);
                // More resident bytes win; between equals, the larger slot (fewer, larger copies).
                if (!found || bytes > best_bytes || (bytes == best_bytes && need > best_slot)) {
                    found = true;
                    best_bytes = bytes;
                    best_slot = need;
                    best = res;
                }
            }
        }
        resident = best;
        slot = best_slot;
    }

private:
    // Each unit's size, the largest slot the budget allows and the smallest useful one, each
    // within [min_slot, max_slot], largest first.
    std::vector<uint64_t> candidates(uint64_t min_slot) const {
        std::vector<uint64_t> c;
        for (size_t i : units_.layers) c.push_back(in_.units[i].piece());
        for (size_t i : units_.others) c.push_back(in_.units[i].piece());
        c.push_back((in_.budget - base_) / slots_ / k_device_page * k_device_page);
        c.push_back(min_slot);
        for (auto& s : c) {
            if (in_.max_slot) s = std::min(s, in_.max_slot);
            s = std::max(s, min_slot);
        }
        std::sort(c.begin(), c.end(), std::greater<uint64_t>());
        c.erase(std::unique(c.begin(), c.end()), c.end());
        return c;
    }

    // The non-layer units of `mask` resident, then the first layers while they fit; false when
    // the non-layer units alone do not.
    bool fill(uint64_t slot, size_t mask, std::vector<bool>& res) const {
        res.assign(in_.units.size(), false);
        for (size_t k = 0; k < units_.others.size(); ++k) res[units_.others[k]] = (mask >> k) & 1;
        if (!fits(res, slot)) return false;
        for (size_t i : units_.layers) { // layers in order: the first ones resident, the rest streamed
            res[i] = true;
            if (!fits(res, slot)) {
                res[i] = false;
                break;
            }
        }
        return true;
    }

    bool fits(const std::vector<bool>& res, uint64_t slot) const {
        return used(res, slot) <= in_.budget && resident_bytes(res, false) <= in_.max_resident;
    }

    // The slot a resident set needs: the largest streamed piece, at most `slot`.
    uint64_t slot_for(const std::vector<bool>& res, uint64_t slot) const {
        uint64_t need = 0;
        for (size_t i : units_.layers) need = res[i] ? need : std::max(need, in_.units[i].piece());
        for (size_t i : units_.others) need = res[i] ? need : std::max(need, in_.units[i].piece());
        return std::min(need, slot);
    }

    uint64_t resident_bytes(const std::vector<bool>& res, bool pages) const {
        uint64_t bytes = 0;
        for (size_t i = 0; i < res.size(); ++i)
            if (res[i]) bytes += pages ? unit_pages(in_.units[i]) : in_.units[i].bytes;
        return bytes;
    }

    uint64_t used(const std::vector<bool>& res, uint64_t slot) const {
        return base_ + slots_ * device_pages(slot_for(res, slot)) + resident_bytes(res, true);
    }

    const MemoryPlanInput& in_;
    const PerTokenUnits& units_;
    uint64_t base_, slots_;
};

// Step 4a: a MoE model with streamed MoE layers keeps the experts it used last in the VRAM the
// plan leaves over, up to in.expert_cache bytes, in whole experts of the largest size.
void plan_expert_cache(const MemoryPlanInput& in, const PerTokenUnits& units, MemoryPlan& p) {
    p.expert_cache_bytes = p.expert_cache_experts = 0;
    if (!p.streamed_moe_layers || !units.expert || in.budget <= p.device_bytes) return;
    const uint64_t spare = in.budget - p.device_bytes;
    uint64_t n = std::min(in.expert_cache, spare) / units.expert;
    while (n && device_pages(n * units.expert) > spare) --n;
    p.expert_cache_experts = n;
    p.expert_cache_bytes = n * units.expert;
    p.device_bytes += device_pages(p.expert_cache_bytes) * (n ? 1 : 0);
}

// Step 4: the plan's totals for the chosen resident set and slot (0: no ring), and the list of
// device allocations the engine makes from it.
void finish(const MemoryPlanInput& in, const PerTokenUnits& units, uint64_t base, uint64_t slots,
            const std::vector<bool>& res, uint64_t slot, MemoryPlan& p) {
    const bool tied = in.config.tie_word_embeddings;
    p.resident = res;
    p.resident_bytes = 0;
    uint64_t resident_pages = 0;
    for (size_t i = 0; i < res.size(); ++i)
        if (res[i]) {
            p.resident_bytes += in.units[i].bytes;
            resident_pages += unit_pages(in.units[i]);
        }
    for (size_t i : units.layers) p.resident_layers += res[i] ? 1 : 0;
    p.ring_slot_bytes = slot;
    p.ring_bytes = slots * device_pages(slot) * (slot ? 1 : 0);
    p.streamed_per_token = 0;
    for (size_t i = 0; i < in.units.size(); ++i) {
        if (!per_token(in.units[i], tied) || res[i]) continue;
        if (slot && in.units[i].piece() > slot) p.chunked = true;
        p.streamed_per_token += streamed_bytes(in.units[i], in.config);
        if (in.units[i].moe()) ++p.streamed_moe_layers;
    }
    p.fixed_bytes = base + p.ring_bytes;
    p.device_bytes = p.fixed_bytes + resident_pages;
    plan_expert_cache(in, units, p);

    p.allocations.push_back({AllocationKind::fixed, 0, p.fixed.total, "fixed buffers"});
    if (!p.kv_on_host)
        p.allocations.push_back({AllocationKind::kv_cache, 0, p.kv_gpu_sequences * p.kv_sequence_bytes, "KV cache"});
    for (size_t i = 0; i < res.size(); ++i)
        if (res[i] && in.units[i].kind != UnitKind::final_norm)
            p.allocations.push_back({AllocationKind::unit, i, in.units[i].bytes, in.units[i].name});
    if (p.expert_cache_bytes)
        p.allocations.push_back({AllocationKind::expert_cache, 0, p.expert_cache_bytes, "expert cache"});
    for (uint64_t s = 0; slot && s < slots; ++s) p.allocations.push_back({AllocationKind::ring_slot, 0, slot, "ring slot"});
}

} // namespace

const char* fixed_name(Fixed f) {
    static const char* names[] = {"x", "xn", "qkv", "attn", "out", "gate_up", "act", "row_scale", "cos", "sin", "ids",
                                  "logits", "topk_values", "topk_ids", "picked", "penalty_ids", "tree", "vectors",
                                  "cublas_workspace", "attention_workspace", "sample_workspace",
                                  "dequant_workspace", "router", "route_ids", "route_weights", "moe_rows",
                                  "moe_row_weights", "moe_x", "moe_y", "moe_scale"};
    static_assert(sizeof(names) / sizeof(names[0]) == size_t(Fixed::count), "a name for every fixed buffer");
    return names[int(f)];
}

uint64_t weight_bytes_per_token(const std::vector<PlanUnit>& units, bool tied) {
    uint64_t n = 0;
    for (const auto& u : units)
        if (per_token(u, tied)) n += u.bytes;
    return n;
}

FixedLayout fixed_layout(const ModelConfig& c, uint64_t t, size_t act, uint64_t ctx, bool dequant) {
    const uint64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim();
    const uint64_t inter = std::max({uint64_t(c.intermediate_size), uint64_t(c.moe_intermediate_size),
                                     uint64_t(c.shared_expert_intermediate_size)});
    uint64_t bytes[int(Fixed::count)] = {};
    auto set = [&](Fixed f, uint64_t b) { bytes[int(f)] = b; };
    set(Fixed::x, 4 * t * h);
    set(Fixed::xn, act * t * h);
    set(Fixed::qkv, 4 * t * (q + 2 * kv));
    set(Fixed::attn, act * t * q);
    set(Fixed::out, 4 * t * h);
    set(Fixed::gate_up, 4 * t * 2 * inter);
    set(Fixed::act, act * t * inter);
    set(Fixed::row_scale, 4 * t);
    set(Fixed::cos, 4 * t * (c.head_dim / 2));
    set(Fixed::sin, 4 * t * (c.head_dim / 2));
    set(Fixed::ids, 4 * t);
    set(Fixed::logits, 4 * k_planned_logit_rows * c.vocab_size);
    set(Fixed::topk_values, 4 * k_topk_max);
    set(Fixed::topk_ids, 4 * k_topk_max);
    set(Fixed::picked, 4);
    set(Fixed::penalty_ids, 4 * std::max<uint64_t>(ctx, 1));
    set(Fixed::tree, 4 * k_tree_rows * (k_tree_rows / 32 + 1));
    set(Fixed::vectors, vector_bytes(c));
    set(Fixed::cublas_workspace, k_cublas_workspace);
    set(Fixed::attention_workspace, k_attention_workspace);
    set(Fixed::sample_workspace, sample_workspace_bytes(int64_t(c.vocab_size)));
    set(Fixed::dequant_workspace, dequant ? k_dequant_workspace : 0);
    if (c.is_moe()) {
        const uint64_t e = c.num_experts, k = c.experts_per_tok;
        set(Fixed::router, 4 * t * e);
        set(Fixed::route_ids, 4 * t * k);
        set(Fixed::route_weights, 4 * t * k);
        set(Fixed::moe_rows, 4 * t * k);
        set(Fixed::moe_row_weights, 4 * t * k);
        set(Fixed::moe_x, act * t * h);
        set(Fixed::moe_y, 4 * t * h);
        set(Fixed::moe_scale, 4 * t);
    }
    FixedLayout l;
    for (int i = 0; i < int(Fixed::count); ++i) {
        l.offset[i] = l.total;
        l.bytes[i] = bytes[i];
        l.total += fixed_aligned(bytes[i]);
    }
    return l;
}

uint64_t vector_bytes(const ModelConfig& c) {
    auto padded = [](uint64_t n) { return fixed_aligned(4 * n); };
    const uint64_t per_layer = 2 * padded(c.hidden_size) + (c.qkv_bias ? padded(c.q_dim() + 2ull * c.kv_dim()) : 0) +
                               (c.qk_norm ? 2 * padded(c.head_dim) : 0) + (c.o_bias ? padded(c.hidden_size) : 0);
    return per_layer * c.num_layers + padded(c.hidden_size);
}

uint64_t kv_cache_bytes(const ModelConfig& c, uint64_t ctx, size_t act) {
    return 2ull * c.num_layers * ctx * c.kv_dim() * act;
}

uint64_t kv_cache_bytes(const ModelConfig& c, uint64_t ctx, DType kv) { return ctx * kv_bytes_per_position(c, kv); }

DType planned_kv_dtype(const MemoryPlanInput& in) {
    if (in.kv_dtype) return *in.kv_dtype;
    return act_size_of(in.weight_dtype) == 4 ? DType::f32 : DType::bf16;
}

uint64_t minimum_slot_bytes(const ModelConfig& c, DType weight_dtype, uint64_t largest_unit) {
    const uint64_t widest = std::max(c.hidden_size, c.intermediate_size), block = dtype_block(weight_dtype);
    const uint64_t widest_row = (widest + block - 1) / block * dtype_block_bytes(weight_dtype);
    return std::min(largest_unit, std::max(widest_row, k_slot_floor));
}

PlanUnit plan_unit(const UnitLayout& layout, UnitKind kind) {
    PlanUnit u{layout.name, kind, layout.data_size};
    if (kind != UnitKind::layer) return u;
    // Expert E's byte range: from its first tensor to the end of its last ("expert.E.*").
    std::vector<std::pair<uint64_t, uint64_t>> range; // per expert: begin, end
    uint64_t first = layout.data_size;
    for (const UnitTensor& t : layout.tensors) {
        if (t.name.compare(0, 7, "expert.") != 0) continue;
        const size_t e = size_t(std::stoul(t.name.substr(7)));
        if (range.size() <= e) range.resize(e + 1, {UINT64_MAX, 0});
        range[e].first = std::min(range[e].first, t.offset);
        range[e].second = std::max(range[e].second, t.offset + t.nbytes);
        first = std::min(first, t.offset);
    }
    if (range.empty()) return u;
    u.dense = first;
    for (const auto& r : range) u.expert = std::max(u.expert, r.second - r.first);
    return u;
}

MemoryPlan plan_memory(const MemoryPlanInput& in) {
    if (in.draft_bytes) { // a resident draft model takes its share off the top
        MemoryPlanInput rest = in;
        rest.draft_bytes = 0;
        rest.budget = in.budget > in.draft_bytes ? in.budget - in.draft_bytes : 0;
        MemoryPlan p = plan_memory(rest);
        p.draft_bytes = in.draft_bytes;
        p.minimum_budget += in.draft_bytes;
        return p;
    }
    const uint64_t slots = std::max<uint32_t>(1, in.ring_slots);
    MemoryPlan p;
    plan_fixed(in, p);
    const PerTokenUnits units = per_token_units(in);
    uint64_t min_slot = minimum_slot_bytes(in.config, in.weight_dtype, units.largest);
    if (in.max_slot) min_slot = std::min(min_slot, in.max_slot);
    min_slot = std::max(min_slot, units.largest_moe); // a MoE layer's pieces go whole
    const uint64_t base = place_kv_cache(in, slots * device_pages(min_slot), units.pages, p);

    // Everything resident: no ring at all.
    if (base + units.pages <= in.budget && units.bytes <= in.max_resident) {
        std::vector<bool> everything(in.units.size(), false);
        for (size_t i : units.layers) everything[i] = true;
        for (size_t i : units.others) everything[i] = true;
        p.fits = true;
        finish(in, units, base, slots, everything, 0, p);
        return p;
    }
    p.fits = p.minimum_budget <= in.budget;
    if (!p.fits) {
        finish(in, units, base, slots, std::vector<bool>(in.units.size(), false), min_slot, p);
        return p;
    }
    std::vector<bool> resident;
    uint64_t slot = 0;
    ResidentSearch(in, units, base, slots).best(min_slot, resident, slot);
    finish(in, units, base, slots, resident, slot, p);
    return p;
}

} // namespace rabbit
