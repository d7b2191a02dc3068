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

void CpuEngine::tree_attention(size_t layer, size_t n) {
    const ModelConfig& c = config();
    const size_t hd = c.head_dim, kv_heads = c.num_kv_heads, group = c.num_heads / kv_heads;
    const size_t q_dim = size_t(c.q_dim()), row = q_dim + 2 * size_t(c.kv_dim()), base = tree_.base();
    const float scale = 1.0f / std::sqrt(float(hd));
    constexpr size_t B = k_attn_block;
    pool_.parallel_for(n * kv_heads, [&](size_t b, size_t e) {
        thread_local std::vector<float> p, keys, values; // keys [blocks][hd][B], values [positions][hd]
        thread_local std::vector<size_t> path;
        for (size_t item = b; item < e; ++item) {
            const size_t t = item / kv_heads, g = item % kv_heads, cache = layer * kv_heads + g;
            tree_.path(pos_ + t, path);
            // Its positions [first, end): the rows before the tree, then its path.
            const size_t end = base + path.size();
            const size_t first = c.sliding_window && end > c.sliding_window ? end - c.sliding_window : 0;
            const size_t b0 = first / B, blocks = (end + B - 1) / B - b0, plain = std::max(first, std::min(base, end));
            keys.resize(blocks * hd * B);
            const size_t whole = std::min((base + B - 1) / B, b0 + blocks) - std::min((base + B - 1) / B, b0);
            std::copy_n(k_cache_[cache].begin() + long(b0 * hd * B), whole * hd * B, keys.begin());
            values.resize((end - first) * hd);
            std::copy(v_cache_[cache].begin() + long(first * hd), v_cache_[cache].begin() + long(plain * hd), values.begin());
            for (size_t i = 0; i < path.size(); ++i) {
                const size_t at = base + i; // the position row path[i] takes in a plain decode
                if (at < first) continue;
                const size_t src = path[i] / B * hd * B + path[i] % B, dst = (at / B - b0) * hd * B + at % B;
                for (size_t d = 0; d < hd; ++d) keys[dst + d * B] = k_cache_[cache][src + d * B];
                std::copy_n(v_cache_[cache].begin() + long(path[i] * hd), hd, values.begin() + long((at - first) * hd));
            }
            p.resize(blocks * B);
            const size_t off = first - b0 * B;
            for (size_t h = g * group; h < (g + 1) * group; ++h) {
                attention_scores(qkv_.data() + t * row + h * hd, keys.data(), hd, off, off + end - first, scale, p.data());
                softmax(p.data() + off, end - first);
                attention_values(p.data() + off, values.data(), hd, 0, end - first, attn_.data() + t * q_dim + h * hd);
            }
        }
    });
}

void CpuEngine::linear(size_t unit, const StackedMatrix& w, const float* bias, const float* x, size_t n, float* y) {
    const size_t ldy = size_t(w.rows());
    for (size_t i = 0, row0 = 0; i < w.parts; row0 += w.part[i].rows, ++i)
        linear(unit, w.part[i], bias ? bias + row0 : nullptr, x, n, y + row0, ldy);
}

void CpuEngine::linear(size_t unit, const Matrix& w, const float* bias, const float* x, size_t n, float* y, size_t ldy) {
    if (!ldy) ldy = size_t(w.rows);
    if (source_->resident(unit)) return matmul(pool_, x, n, w, bias, y, ldy, act_quant_);
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
        source_->done_with(unit, part.data, part.rows * row_bytes);
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

void CpuEngine::run_layer(size_t layer, size_t unit, const LayerWeights& w, size_t n) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size, inter = c.intermediate_size;
    const float eps = float(c.rms_norm_eps);

    // Attention.
    for (size_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * hidden, w.attn_norm, eps, hidden, xn_.data() + t * hidden);
    linear(unit, w.qkv, w.qkv_bias, xn_.data(), n, qkv_.data());
    rope_and_cache(layer, w, n);
    if (tree_pass_) tree_attention(layer, n);
    else attention(layer, n);
    linear(unit, w.o, w.o_bias, attn_.data(), n, out_.data());
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += out_[i];

    // MLP.
    for (size_t t = 0; t < n; ++t) rmsnorm(x_.data() + t * hidden, w.ffn_norm, eps, hidden, xn_.data() + t * hidden);
    linear(unit, w.gate_up, nullptr, xn_.data(), n, gate_up_.data());
    swiglu(pool_, gate_up_.data(), n, inter, act_.data());
    linear(unit, w.down, nullptr, act_.data(), n, out_.data());
    for (size_t i = 0; i < n * hidden; ++i) x_[i] += out_[i];
}

void CpuEngine::forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) {
    RABBIT_CHECK(n > 0 && n_logits <= n, "forward with no tokens or more logits than tokens");
    RABBIT_CHECK(!tree_.open(), "a plain forward over a draft tree; keep_rows first");
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

void CpuEngine::forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) {
    RABBIT_CHECK(n > 0 && n <= batch_, "a draft tree of no tokens, or of more than --batch");
    check_room(config(), pos_, n, ctx_);
    tree_.add(pos_, parents, n);
    size_t last = 0;
    for (size_t t = 0; t < n; ++t) last = std::max(last, tree_.position(pos_ + t));
    rope_.begin_forward(last + 1);
    begin_part(0, n);
    tree_pass_ = true;
    try {
        pass(tokens, n, n, logits);
    } catch (...) {
        tree_pass_ = false;
        tree_.cut(pos_); // an interrupted pass: its rows were not added
        throw;
    }
    tree_pass_ = false;
}

void CpuEngine::keep_rows(size_t base, const std::vector<size_t>& rows) {
    const bool moves = tree_.check_keep(base, rows, pos_);
    const size_t hd = config().head_dim;
    for (size_t i = 0; moves && i < rows.size(); ++i) {
        const size_t src = base + rows[i], dst = base + i;
        if (src == dst) continue;
        // Rows move towards the front only (rows[i] >= i), each read before anything lands on it.
        for (size_t cache = 0; cache < k_cache_.size(); ++cache) {
            float* k = k_cache_[cache].data();
            const size_t ks = src / k_attn_block * hd * k_attn_block + src % k_attn_block;
            const size_t kd = dst / k_attn_block * hd * k_attn_block + dst % k_attn_block;
            for (size_t d = 0; d < hd; ++d) k[kd + d * k_attn_block] = k[ks + d * k_attn_block];
            std::copy_n(v_cache_[cache].begin() + long(src * hd), hd, v_cache_[cache].begin() + long(dst * hd));
        }
    }
    pos_ = base + rows.size();
}

void CpuEngine::prepare(size_t n) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size, half = c.head_dim / 2;
    x_.resize(n * hidden);
    xn_.resize(n * hidden);
    qkv_.resize(n * size_t(c.q_dim() + 2 * c.kv_dim()));
    attn_.resize(n * size_t(c.q_dim()));
    out_.resize(n * hidden);
    gate_up_.resize(n * 2 * size_t(c.intermediate_size));
    act_.resize(n * size_t(c.intermediate_size));
    cos_.resize(n * half);
    sin_.resize(n * half);
    for (size_t t = 0; t < n; ++t) {
        const size_t at = tree_pass_ ? tree_.position(pos_ + t) : pos_ + t;
        rope_.cos_sin(int64_t(at), cos_.data() + t * half, sin_.data() + t * half);
    }
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
        const LayerWeights w = layer_weights(layer_t_[l], acquire(u));
        trace::Span span(trace::Track::compute, compute(u));
        run_layer(l, u, w, n);
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
