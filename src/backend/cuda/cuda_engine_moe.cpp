// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's MoE layers. The router's product and the routing (kernels/moe.cuh) run on
// the device; the chosen experts come back to the host, which groups the pass's tokens by
// expert (engine/moe.h, as the CPU engine does) and so learns which experts the layer needs.
// Each expert some token routes to then runs once, over all of its tokens: from the layer's
// resident copy, from the VRAM expert cache, or off the ring, where the layer's dense piece
// is followed by exactly the experts the cache does not hold (Ring::route).
#include "backend/cuda/cuda_engine_impl.h"

#include "convert.cuh"
#include "moe.cuh"
#include "swiglu.cuh"

#include "backend/cuda/check.h"
#include "common/error.h"
#include "engine/moe.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

namespace rabbit {

namespace {

uint64_t cache_key(uint32_t layer, uint32_t expert) { return uint64_t(layer) << 32 | expert; }

} // namespace

bool CudaEngine::Impl::moe_streamed(size_t l) const {
    return layer_t[l].router && !resident[roles.layers[l]].get();
}

uint8_t* CudaEngine::Impl::acquire_piece(size_t unit, uint64_t offset, uint64_t bytes) {
    const RingPiece& p = ring->next_piece();
    RABBIT_CHECK(p.unit == unit && p.offset == offset && p.bytes == bytes && p.tensor.empty(),
                 fmt::format("the ring is out of step with the passes at {} byte {}",
                             model.manifest().units[unit].layout.name, offset));
    uint8_t* dev = ring->acquire();
    // The data section's start, as the piece's tensors' offsets count.
    if (to_f16) convert_unit(unit, dev - offset, offset, offset + bytes);
    return dev;
}

ExpertWeights CudaEngine::Impl::expert_on_device(size_t l, uint32_t e, const uint8_t* data) const {
    const LayerTensors::Expert& x = layer_t[l].experts[e];
    ExpertWeights w;
    w.gate_up.parts = x.gate_up.parts;
    for (size_t i = 0; i < x.gate_up.parts; ++i) w.gate_up.part[i] = matrix_on_device(*x.gate_up.part[i], data);
    w.down = matrix_on_device(*x.down, data);
    return w;
}

void CudaEngine::Impl::moe_layer(size_t l, const SlotPass& p) {
    // The dense piece (attention, norms, router, shared expert) off the ring; moe_block
    // releases it once the shared expert has run, and takes the routed experts after it.
    const size_t u = roles.layers[l];
    const LayerWeights w = device_weights(l, acquire_piece(u, 0, layer_t[l].dense_bytes));
    attention_block(l, w, p);
    moe_block(l, w, p.tokens.size());
}

ExpertBatches CudaEngine::Impl::route(const LayerWeights& w, size_t m) {
    const size_t experts = c.num_experts, k = c.experts_per_tok;
    float* logits = fixed<float>(Fixed::router);
    product(w.router, fixed(Fixed::xn), m, logits, experts);
    MoeRouteParams r;
    r.logits = logits;
    r.tokens = int(m);
    r.experts = int(experts);
    r.k = int(k);
    r.renormalise = c.norm_topk_prob;
    r.chosen = fixed<int32_t>(Fixed::route_ids);
    r.weights = fixed<float>(Fixed::route_weights);
    RABBIT_CUDA_CHECK(launch_moe_route(r, compute));
    // The one point where the host learns which experts run: a small copy, then the wait.
    int32_t* ids = h_route.as<int32_t>();
    float* weights = reinterpret_cast<float*>(ids + batch * k);
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(ids, r.chosen, 4 * m * k, cudaMemcpyDeviceToHost, compute));
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(weights, r.weights, 4 * m * k, cudaMemcpyDeviceToHost, compute));
    wait_compute(); // also: the last layer's upload out of h_moe is done
    ExpertBatches b = group_by_expert(ids, weights, m, k, experts);
    int32_t* rows = h_moe.as<int32_t>();
    float* row_w = reinterpret_cast<float*>(rows + batch * k);
    for (size_t i = 0; i < b.token.size(); ++i) rows[i] = int32_t(b.token[i]), row_w[i] = b.weight[i];
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::moe_rows), rows, 4 * b.token.size(), cudaMemcpyHostToDevice, compute));
    RABBIT_CUDA_CHECK(
        cudaMemcpyAsync(fixed(Fixed::moe_row_weights), row_w, 4 * b.token.size(), cudaMemcpyHostToDevice, compute));
    return b;
}

void CudaEngine::Impl::moe_block(size_t l, const LayerWeights& w, size_t m) {
    const size_t u = roles.layers[l], h = c.hidden_size;
    const bool streamed = moe_streamed(l);
    float* out = fixed<float>(Fixed::out);
    RmsNormParams n = residual_norm(w.ffn_norm, 0, m);
    n.delta = out;
    n.bias = w.o_bias;
    RABBIT_CUDA_CHECK(launch_rmsnorm(n, compute));
    const ExpertBatches b = route(w, m);

    // Where each expert's bytes are: resident with its layer, in the expert cache, or (the
    // rest) named to the ring, in the order they run.
    std::vector<const uint8_t*> from(b.experts.size(), nullptr);
    std::vector<uint8_t*> keep(b.experts.size(), nullptr); // a cache slot the streamed expert is copied to
    if (streamed) {
        cache_experts(l, b, from, keep);
        std::vector<RingPiece> routed;
        for (size_t i = 0; i < b.experts.size(); ++i) {
            if (from[i]) continue;
            const LayerTensors::Expert& x = layer_t[l].experts[b.experts[i]];
            routed.push_back({u, x.offset, x.bytes, "", 0, 0,
                              fmt::format("{} expert {}", model.manifest().units[u].layout.name, b.experts[i])});
        }
        ring->route(std::move(routed));
    }

    RABBIT_CUDA_CHECK(cudaMemsetAsync(out, 0, 4 * m * h, compute));
    if (w.shared_gate.data) shared_expert(w, m); // while the first expert is on its way
    if (streamed) ring->release(); // the dense piece

    for (size_t i = 0; i < b.experts.size(); ++i) {
        const uint32_t e = b.experts[i];
        const LayerTensors::Expert& x = layer_t[l].experts[e];
        const uint8_t* data = !streamed ? resident[u].as<uint8_t>() : from[i] ? from[i] - x.offset : nullptr;
        uint8_t* dev = data ? nullptr : acquire_piece(u, x.offset, x.bytes);
        if (dev) data = dev - x.offset;
        run_expert(expert_on_device(l, e, data), b.begin[i], b.begin[i + 1] - b.begin[i]);
        if (!dev) continue;
        if (keep[i]) RABBIT_CUDA_CHECK(cudaMemcpyAsync(keep[i], dev, x.bytes, cudaMemcpyDeviceToDevice, compute));
        ring->release();
    }
    experts_run += b.experts.size();
    // The sum is not scaled: the next norm's delta_scale must read 1 for these rows.
    if (down_scale()) RABBIT_CUDA_CHECK(launch_fill_f32(down_scale(), int64_t(m), 1.0f, compute));
}

void CudaEngine::Impl::run_expert(const ExpertWeights& e, size_t first, size_t rows) {
    // Its tokens' rows of xn gathered, its SwiGLU MLP over them, and each output row, times
    // the token's routing weight, added to the token's row of out.
    const size_t h = c.hidden_size, inter = c.moe_intermediate_size;
    const int32_t* token = fixed<int32_t>(Fixed::moe_rows) + first;
    GatherRowsParams g;
    g.src = fixed(Fixed::xn);
    g.rows = token;
    g.count = int64_t(rows);
    g.row_bytes = int64_t(h * elem_size(act));
    g.dst = fixed(Fixed::moe_x);
    RABBIT_CUDA_CHECK(launch_gather_rows(g, compute));
    mlp_into_moe_y(e.gate_up, e.down, fixed(Fixed::moe_x), rows, inter);
    ScatterAddParams s;
    s.y = fixed<float>(Fixed::moe_y);
    s.rows = token;
    s.weights = fixed<float>(Fixed::moe_row_weights) + first;
    s.scale = down_scale() ? fixed<float>(Fixed::moe_scale) : nullptr;
    s.count = int64_t(rows);
    s.n = int64_t(h);
    s.out = fixed<float>(Fixed::out);
    RABBIT_CUDA_CHECK(launch_scatter_add(s, compute));
}

void CudaEngine::Impl::shared_expert(const LayerWeights& w, size_t m) {
    // Qwen2-MoE's shared expert over every token, scaled by sigmoid of its own gate (whose
    // logits go where the router's were: they are spent).
    float* gate = fixed<float>(Fixed::router);
    product(w.shared_gate, fixed(Fixed::xn), m, gate, 1);
    mlp_into_moe_y(w.shared_gate_up, w.shared_down, fixed(Fixed::xn), m, c.shared_expert_intermediate_size);
    ScatterAddParams s;
    s.y = fixed<float>(Fixed::moe_y);
    s.weights = gate;
    s.sigmoid = true;
    s.scale = down_scale() ? fixed<float>(Fixed::moe_scale) : nullptr;
    s.count = int64_t(m);
    s.n = int64_t(c.hidden_size);
    s.out = fixed<float>(Fixed::out);
    RABBIT_CUDA_CHECK(launch_scatter_add(s, compute));
}

void CudaEngine::Impl::mlp_into_moe_y(const StackedMatrix& gate_up, const Matrix& down, const void* x, size_t m,
                                      size_t inter) {
    // moe_y [m, hidden] = down(swiglu(gate_up x)), the rows f16 SwiGLU scaled in moe_scale.
    float* gu = fixed<float>(Fixed::gate_up);
    for (size_t i = 0, row0 = 0; i < gate_up.parts; row0 += gate_up.part[i].rows, ++i)
        product(gate_up.part[i], x, m, gu + row0, 2 * inter);
    SwigluParams s;
    s.gate_up = gu;
    s.tokens = int(m);
    s.inter = int(inter);
    s.out = fixed(Fixed::act);
    s.out_type = act;
    s.row_scale = down_scale() ? fixed<float>(Fixed::moe_scale) : nullptr;
    RABBIT_CUDA_CHECK(launch_swiglu(s, compute));
    product(down, fixed(Fixed::act), m, fixed<float>(Fixed::moe_y), c.hidden_size);
}

void CudaEngine::Impl::cache_experts(size_t l, const ExpertBatches& b, std::vector<const uint8_t*>& from,
                                     std::vector<uint8_t*>& keep) {
    // The expert cache's LRU (engine/expert_cache.h) over slots of expert_slot_bytes in
    // expert_buf. The layer's hits first, so that they are the most recent: a miss taken in
    // evicts the least recent, which is then another layer's while fewer than all slots hold
    // this layer's experts; a miss is not taken in when all do (a slot the layer still reads).
    if (!expert_slot_bytes) return;
    size_t this_layer = 0;
    std::vector<ExpertCache::Key> evicted;
    for (size_t i = 0; i < b.experts.size(); ++i) {
        const ExpertCache::Key key{uint32_t(l), b.experts[i]};
        if (!expert_cache.holds(key)) continue;
        expert_cache.use(key, expert_slot_bytes, evicted);
        from[i] = expert_buf.as<uint8_t>() + cache_slot.at(cache_key(key.layer, key.expert)) * expert_slot_bytes;
        ++this_layer;
        ++expert_hits;
    }
    const size_t slots = size_t(expert_cache.capacity() / expert_slot_bytes);
    for (size_t i = 0; i < b.experts.size() && this_layer < slots; ++i) {
        if (from[i]) continue;
        const ExpertCache::Key key{uint32_t(l), b.experts[i]};
        evicted.clear();
        expert_cache.use(key, expert_slot_bytes, evicted);
        for (const ExpertCache::Key& gone : evicted) {
            auto it = cache_slot.find(cache_key(gone.layer, gone.expert));
            free_cache_slots.push_back(it->second);
            cache_slot.erase(it);
        }
        RABBIT_CHECK(!free_cache_slots.empty(), "the expert cache holds more experts than it has slots");
        const size_t slot = free_cache_slots.back();
        free_cache_slots.pop_back();
        cache_slot[cache_key(key.layer, key.expert)] = slot;
        keep[i] = expert_buf.as<uint8_t>() + slot * expert_slot_bytes;
        ++this_layer;
    }
}

void CudaEngine::Impl::start_expert_cache() {
    // Whole slots of the largest expert in the allocation the plan made for it.
    expert_slot_bytes = 0;
    if (!expert_buf.get() || !plan.expert_cache_experts) return;
    expert_slot_bytes = plan.expert_cache_bytes / plan.expert_cache_experts;
    expert_cache = ExpertCache(plan.expert_cache_bytes);
    free_cache_slots.clear();
    for (size_t s = plan.expert_cache_experts; s-- > 0;) free_cache_slots.push_back(s);
    cache_slot.clear();
}

} // namespace rabbit
