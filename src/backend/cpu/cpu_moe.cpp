// SPDX-License-Identifier: Apache-2.0
// The CPU engine's MoE MLP: route the pass's tokens, then run each routed expert once over
// the tokens routed to it. An expert's matrices go through linear(), so a streamed layer
// reads (and then drops) the bytes of the experts this pass uses and no others.
#include "backend/cpu/cpu_engine.h"

#include "engine/moe.h"

#include <algorithm>
#include <cmath>

namespace rabbit {

CpuEngine::Use CpuEngine::expert_use(size_t layer, size_t unit, uint32_t e) {
    if (source_->resident(unit)) return Use::held;
    const LayerTensors::Expert& x = layer_t_[layer].experts[e];
    std::vector<ExpertCache::Key> evicted;
    const bool hit = expert_cache_.use({uint32_t(layer), e}, x.bytes, evicted);
    for (const ExpertCache::Key& k : evicted) { // layers run in order: an evicted expert's unit may be another layer's
        const LayerTensors::Expert& gone = layer_t_[k.layer].experts[k.expert];
        const size_t gone_unit = roles_.layers[k.layer];
        source_->done_with(gone_unit, source_->data(gone_unit) + gone.offset, gone.bytes);
    }
    if (hit) ++stats_.expert_hits;
    return hit ? Use::held : expert_cache_.holds({uint32_t(layer), e}) ? Use::keep : Use::stream;
}

void CpuEngine::moe_mlp(size_t layer, size_t unit, const uint8_t* data, const LayerWeights& w, size_t n) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size, experts = c.num_experts, k = c.experts_per_tok;
    const size_t inter = c.moe_intermediate_size;
    linear(unit, w.router, nullptr, xn_.data(), n, router_.data());
    route_tokens(router_.data(), n, experts, k, c.norm_topk_prob, chosen_.data(), route_w_.data());
    const ExpertBatches batches = group_by_expert(chosen_.data(), route_w_.data(), n, k, experts);

    std::fill(out_.begin(), out_.begin() + long(n * hidden), 0.0f);
    for (size_t i = 0; i < batches.experts.size(); ++i) {
        const size_t first = batches.begin[i], m = batches.begin[i + 1] - first;
        for (size_t j = 0; j < m; ++j) {
            const float* src = xn_.data() + size_t(batches.token[first + j]) * hidden;
            std::copy(src, src + hidden, moe_x_.data() + j * hidden);
        }
        const ExpertWeights e = expert_weights(layer_t_[layer], batches.experts[i], data);
        const Use use = expert_use(layer, unit, batches.experts[i]);
        linear(unit, e.gate_up, nullptr, moe_x_.data(), m, gate_up_.data(), use);
        swiglu(pool_, gate_up_.data(), m, inter, act_.data());
        linear(unit, e.down, nullptr, act_.data(), m, moe_y_.data(), 0, use);
        for (size_t j = 0; j < m; ++j) {
            float* dst = out_.data() + size_t(batches.token[first + j]) * hidden;
            const float* y = moe_y_.data() + j * hidden;
            const float g = batches.weight[first + j];
            for (size_t d = 0; d < hidden; ++d) dst[d] += g * y[d];
        }
        ++stats_.experts_run;
    }

    if (!w.shared_gate.data) return;
    // Qwen2-MoE's shared expert, for every token, scaled by sigmoid of its own gate.
    const size_t shared = c.shared_expert_intermediate_size;
    linear(unit, w.shared_gate_up, nullptr, xn_.data(), n, gate_up_.data());
    swiglu(pool_, gate_up_.data(), n, shared, act_.data());
    linear(unit, w.shared_down, nullptr, act_.data(), n, moe_y_.data());
    linear(unit, w.shared_gate, nullptr, xn_.data(), n, shared_g_.data());
    for (size_t t = 0; t < n; ++t) {
        const float g = 1.0f / (1.0f + std::exp(-shared_g_[t]));
        for (size_t d = 0; d < hidden; ++d) out_[t * hidden + d] += g * moe_y_[t * hidden + d];
    }
}

} // namespace rabbit
