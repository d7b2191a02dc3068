// SPDX-License-Identifier: Apache-2.0
#include "backend/cpu/cpu_engine.h"

#include "backend/cpu/kernels.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/timing.h"
#include "common/trace.h"
#include "engine/rope.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rabbit {

CpuEngine::CpuEngine(const SplitModel& model, const EngineOptions& options)
    : model_(model), pool_(options.threads), rope_(model.config()) {
    const ModelConfig& c = model.config();
    ctx_ = checked_context(c, options.ctx);
    stream_block_ = std::max<size_t>(1, options.stream_block);
    batch_ = std::max<size_t>(1, options.batch);
    act_quant_ = options.act_quant;
    source_ = std::make_unique<MmapUnitSource>(model, options.ram_budget);
    if (c.is_moe()) expert_cache_ = ExpertCache(options.ram_budget - std::min(options.ram_budget, source_->resident_bytes()));
    for (size_t u : roles_.layers) layer_t_.push_back(layer_tensors(model.manifest().units[u]));
    k_cache_.resize(size_t(c.num_layers) * c.num_kv_heads);
    v_cache_.resize(size_t(c.num_layers) * c.num_kv_heads);
}

void CpuEngine::grow_cache(size_t positions) {
    if (positions <= cache_positions_) return;
    // Grow geometrically, in whole key blocks, but never (much) past the context.
    size_t target = std::max<size_t>(positions, std::min<size_t>(size_t(ctx_), std::max<size_t>(256, cache_positions_ * 2)));
    target = (target + k_attn_block - 1) / k_attn_block * k_attn_block;
    const size_t hd = config().head_dim;
    try {
        for (size_t i = 0; i < k_cache_.size(); ++i) {
            k_cache_[i].resize(target * hd);
            v_cache_[i].resize(target * hd);
        }
    } catch (const std::bad_alloc&) {
        throw Error(ExitCode::resources, "out of memory for the KV cache at " + std::to_string(target) +
                                             " positions; lower --ctx");
    }
    cache_positions_ = target;
}

void CpuEngine::embed(const int32_t* tokens, size_t n) {
    const ModelConfig& c = config();
    const ManifestUnit& u = model_.manifest().units[roles_.embed];
    const uint8_t* data = source_->acquire(roles_.embed, Access::sparse);
    const Matrix table = unit_matrix(u, data, "embed");
    check_token_ids(tokens, n, table.rows, model_.dir());
    for (size_t t = 0; t < n; ++t) widen_row(table, uint64_t(tokens[t]), x_.data() + t * c.hidden_size);
    source_->release(roles_.embed);
}

void CpuEngine::attention(size_t layer, size_t n) {
    const ModelConfig& c = config();
    const size_t hd = c.head_dim, heads = c.num_heads, kv_heads = c.num_kv_heads, group = heads / kv_heads;
    const size_t q_dim = size_t(c.q_dim()), row = q_dim + 2 * size_t(c.kv_dim());
    const float scale = 1.0f / std::sqrt(float(hd));
    pool_.parallel_for(n * heads, [&](size_t b, size_t e) {
        thread_local std::vector<float> p;
        for (size_t item = b; item < e; ++item) {
            const size_t t = item / heads, h = item % heads, g = h / group;
            const size_t pos = pos_ + t, end = pos + 1;
            // Causal, and within the sliding window when the model has one.
            const size_t first = c.sliding_window && end > c.sliding_window ? end - c.sliding_window : 0;
            const size_t cache = layer * kv_heads + g;
            p.resize((end + k_attn_block - 1) / k_attn_block * k_attn_block);
            attention_scores(qkv_.data() + t * row + h * hd, k_cache_[cache].data(), hd, first, end, scale, p.data());
            softmax(p.data() + first, end - first);
            attention_values(p.data(), v_cache_[cache].data(), hd, first, end, attn_.data() + t * q_dim + h * hd);
        }
    });
}

void CpuEngine::linear(size_t unit, const StackedMatrix& w, const float* bias, const float* x, size_t n, float* y,
                       Use use) {
    const size_t ldy = size_t(w.rows());
    for (size_t i = 0, row0 = 0; i < w.parts; row0 += w.part[i].rows, ++i)
        linear(unit, w.part[i], bias ? bias + row0 : nullptr, x, n, y + row0, ldy, use);
}

void CpuEngine::linear(size_t unit, const Matrix& w, const float* bias, const float* x, size_t n, float* y, size_t ldy,
                       Use use) {
    if (!ldy) ldy = size_t(w.rows);
    if (use == Use::held || source_->resident(unit)) return matmul(pool_, x, n, w, bias, y, ldy, act_quant_);
    // A streamed weight is in memory only while its rows are used: resident memory grows by
    // one block, not by the unit (a 72B model's lm_head is 2.5 GB).
    const size_t row_bytes = size_t(w.row_bytes());
    const size_t rows_per_block = std::max<size_t>(1, stream_block_ / row_bytes);
    for (size_t r0 = 0; r0 < w.rows; r0 += rows_per_block) {
        Matrix part = w;
        part.rows = std::min<uint64_t>(rows_per_block, w.rows - r0);
        part.data = static_cast<const uint8_t*>(w.data) + r0 * row_bytes;
        // Read the block in before the product, so that its threads do not stop on page
        // faults; the time it takes is the disk's share of the token (read ahead by
        // acquire() or not, the compute waits for it).
        const auto t0 = Clock::now();
        read_in(&pool_, part.data, part.rows * row_bytes);
        const double took = seconds_since(t0);
        stats_.disk_s += took;
        stats_.wait_s += took;
        stats_.file_bytes += part.rows * row_bytes;
        matmul(pool_, x, n, part, bias ? bias + r0 : nullptr, y + r0, ldy, act_quant_);
        if (use == Use::stream) source_->done_with(unit, part.data, part.rows * row_bytes);
    }
}

void CpuEngine::rope_and_cache(size_t layer, const LayerWeights& w, size_t n) {
    const ModelConfig& c = config();
    const size_t hd = c.head_dim, q_dim = size_t(c.q_dim()), kv = size_t(c.kv_dim()), row = q_dim + 2 * kv;
    const size_t half = hd / 2;
    const float eps = float(c.rms_norm_eps);
    for (size_t t = 0; t < n; ++t) {
        float* q = qkv_.data() + t * row;
        float* k = q + q_dim;
        const float* v = k + kv;
        const float* cs = cos_.data() + t * half;
        const float* sn = sin_.data() + t * half;
        for (size_t h = 0; h < c.num_heads; ++h) {
            if (w.q_norm) rmsnorm(q + h * hd, w.q_norm, eps, hd, q + h * hd);
            rope(q + h * hd, cs, sn, hd);
        }
        for (size_t h = 0; h < c.num_kv_heads; ++h) {
            if (w.k_norm) rmsnorm(k + h * hd, w.k_norm, eps, hd, k + h * hd);
            rope(k + h * hd, cs, sn, hd);
        }
        const size_t pos = pos_ + t, blk = pos / k_attn_block * k_attn_block * hd, col = pos % k_attn_block;
        for (size_t g = 0; g < c.num_kv_heads; ++g) {
            float* kc = k_cache_[layer * c.num_kv_heads + g].data() + blk + col;
            for (size_t d = 0; d < hd; ++d) kc[d * k_attn_block] = k[g * hd + d];
            std::copy(v + g * hd, v + (g + 1) * hd, v_cache_[layer * c.num_kv_heads + g].begin() + long(pos * hd));
        }
    }
}

void CpuEngine::run_layer(size_t layer, size_t unit, const uint8_t* data, const LayerWeights& w, size_t n) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size, inter = c.intermediate_size;
    const float eps = float(c.rms_norm_eps);

    // Attention.
    for (size_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * hidden, w.attn_norm, eps, hidden, xn_.data() + t * hidden);
    linear(unit, w.qkv, w.qkv_bias, xn_.data(), n, qkv_.data());
    rope_and_cache(layer, w, n);
    attention(layer, n);
    linear(unit, w.o, w.o_bias, attn_.data(), n, out_.data());
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += out_[i];

    // MLP.
    for (size_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * hidden, w.ffn_norm, eps, hidden, xn_.data() + t * hidden);
    if (w.router.data) {
        moe_mlp(layer, unit, data, w, n);
    } else {
        linear(unit, w.gate_up, nullptr, xn_.data(), n, gate_up_.data());
        swiglu(pool_, gate_up_.data(), n, inter, act_.data());
        linear(unit, w.down, nullptr, act_.data(), n, out_.data());
    }
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += out_[i];
}

void CpuEngine::forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) {
    RABBIT_CHECK(n > 0 && n_logits <= n, "forward with no tokens or more logits than tokens");
    check_room(config(), pos_, n, ctx_);
    rope_.begin_forward(pos_ + n);
    if (n <= batch_) {
        begin_part(0, n);
        return pass(tokens, n, n_logits, logits);
    }
    // In parts, so that activations stay the size of one part whatever the prompt's length.
    logits.clear();
    std::vector<float> part;
    for_each_part(n, n_logits, batch_, [&](size_t first, size_t m, size_t rows) {
        begin_part(first, n);
        pass(tokens + first, m, rows, part);
        logits.insert(logits.end(), part.begin(), part.end());
    });
}

void CpuEngine::prepare(size_t n) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size, half = c.head_dim / 2;
    x_.resize(n * hidden);
    xn_.resize(n * hidden);
    qkv_.resize(n * size_t(c.q_dim() + 2 * c.kv_dim()));
    attn_.resize(n * size_t(c.q_dim()));
    out_.resize(n * hidden);
    gate_up_.resize(n * 2 * size_t(c.max_intermediate()));
    act_.resize(n * size_t(c.max_intermediate()));
    if (c.is_moe()) {
        router_.resize(n * c.num_experts);
        route_w_.resize(n * c.experts_per_tok);
        chosen_.resize(n * c.experts_per_tok);
        moe_x_.resize(n * hidden);
        moe_y_.resize(n * hidden);
        shared_g_.resize(n);
    }
    cos_.resize(n * half);
    sin_.resize(n * half);
    for (size_t t = 0; t < n; ++t) rope_.cos_sin(int64_t(pos_ + t), cos_.data() + t * half, sin_.data() + t * half);
    grow_cache(pos_ + n);
}

void CpuEngine::pass(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size;
    prepare(n);
    const auto& units = model_.manifest().units;
    // The trace's spans: the unit files' mapping (and reading, under a RAM budget) on the
    // loader track, each unit's work on compute.
    auto acquire = [&](size_t u) {
        trace::Span span(trace::Track::loader, trace::enabled() ? units[u].layout.name : std::string());
        return source_->acquire(u);
    };
    auto compute = [&](size_t u) { return trace::enabled() ? units[u].layout.name : std::string(); };
    {
        trace::Span span(trace::Track::compute, compute(roles_.embed));
        embed(tokens, n);
    }
    for (size_t l = 0; l < roles_.layers.size(); ++l) {
        throw_if_interrupted(); // a long prompt on a big model takes minutes
        const size_t u = roles_.layers[l];
        const uint8_t* data = acquire(u);
        const LayerWeights w = layer_weights(layer_t_[l], data);
        trace::Span span(trace::Track::compute, compute(u));
        run_layer(l, u, data, w, n);
        source_->release(u);
        layer_done(n, l, roles_.layers.size());
    }

    // The final norm and the output projection, for the positions asked for.
    const size_t first = n - n_logits;
    {
        const float* norm = unit_vector(units[roles_.norm], acquire(roles_.norm), "norm");
        trace::Span span(trace::Track::compute, compute(roles_.norm));
        for (size_t t = first; t < n; ++t)
            rmsnorm(x_.data() + t * hidden, norm, float(c.rms_norm_eps), hidden, xn_.data() + (t - first) * hidden);
        source_->release(roles_.norm);
    }
    pos_ += n;
    logits.clear();
    if (n_logits == 0) return;
    const Matrix head = unit_matrix(units[roles_.head], acquire(roles_.head), roles_.head == roles_.embed ? "embed" : "lm_head");
    trace::Span span(trace::Track::compute, roles_.head == roles_.embed && trace::enabled() ? std::string("lm_head (tied embed)")
                                                                                            : compute(roles_.head));
    logits.resize(n_logits * size_t(head.rows));
    linear(roles_.head, head, nullptr, xn_.data(), n_logits, logits.data());
    source_->release(roles_.head);
}

} // namespace rabbit
