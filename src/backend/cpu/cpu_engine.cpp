// SPDX-License-Identifier: Apache-2.0
#include "backend/cpu/cpu_engine.h"

#include "backend/cpu/kernels.h"
#include "backend/cpu/kv_attention.h"
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
    : model_(model), pool_(options.threads) {
    const ModelConfig& c = model.config();
    ctx_ = checked_context(c, options.ctx);
    stream_block_ = std::max<size_t>(1, options.stream_block);
    batch_ = std::max<size_t>(1, options.batch);
    act_quant_ = options.act_quant;
    kv_dtype_ = options.kv_dtype;
    if (!is_kv_dtype(kv_dtype_))
        throw Error(ExitCode::usage, std::string("--kv-dtype ") + dtype_name(kv_dtype_) + ": expected f32, bf16, f16 or q8_0");
    kv_row_bytes(kv_dtype_, c.head_dim); // refuses q8_0 for a head_dim that is not whole blocks
    source_ = std::make_unique<MmapUnitSource>(model, options.ram_budget);
    if (c.is_moe()) expert_cache_ = ExpertCache(options.ram_budget - std::min(options.ram_budget, source_->resident_bytes()));
    for (size_t u : roles_.layers) layer_t_.push_back(layer_tensors(model.manifest().units[u]));
    set_slots(1);
}

void CpuEngine::set_slots(size_t n) {
    RABBIT_CHECK(n > 0, "an engine with no sequence slots");
    const ModelConfig& c = config();
    while (slots_.size() > n) slots_.pop_back();
    while (slots_.size() < n) {
        slots_.emplace_back(c);
        // One of the two layouts, as --kv-dtype asks.
        const size_t caches = size_t(c.num_layers) * c.num_kv_heads;
        if (kv_dtype_ == DType::f32) {
            slots_.back().k_cache.resize(caches);
            slots_.back().v_cache.resize(caches);
        } else {
            slots_.back().k_rows.resize(caches);
            slots_.back().v_rows.resize(caches);
        }
    }
}

void CpuEngine::reset_slot(size_t slot) {
    SeqSlot& s = slots_.at(slot);
    s.pos = 0;
    s.rope.reset();
    if (slot == 0) tree_.close();
}

void CpuEngine::grow_cache(size_t slot, size_t positions) {
    SeqSlot& s = slots_[slot];
    if (positions <= s.cache_positions) return;
    // Grow geometrically, in whole key blocks, but never (much) past the context.
    size_t target = std::max<size_t>(positions, std::min<size_t>(size_t(ctx_), std::max<size_t>(256, s.cache_positions * 2)));
    target = (target + k_attn_block - 1) / k_attn_block * k_attn_block;
    const size_t hd = config().head_dim;
    try {
        for (size_t i = 0; i < s.k_cache.size(); ++i) {
            s.k_cache[i].resize(target * hd);
            s.v_cache[i].resize(target * hd);
        }
        for (size_t i = 0; i < s.k_rows.size(); ++i) {
            s.k_rows[i].resize(target * kv_row_bytes(kv_dtype_, hd));
            s.v_rows[i].resize(target * kv_row_bytes(kv_dtype_, hd));
        }
    } catch (const std::bad_alloc&) {
        throw Error(ExitCode::resources, "out of memory for the KV cache at " + std::to_string(target) +
                                             " positions" + (slots_.size() > 1 ? " in each of " + std::to_string(slots_.size()) +
                                             " sequences; lower --parallel or --ctx" : "; lower --ctx"));
    }
    s.cache_positions = target;
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

void CpuEngine::row_attention(size_t layer, size_t n) {
    const ModelConfig& c = config();
    const size_t row = size_t(c.q_dim() + 2 * c.kv_dim()), q_dim = size_t(c.q_dim());
    std::vector<const uint8_t*> k(c.num_kv_heads), v(c.num_kv_heads);
    // Run by run: a pass's tokens of one sequence are consecutive, at consecutive positions.
    for (size_t t = 0, end; t < n; t = end) {
        for (end = t + 1; end < n && tok_slot_[end] == tok_slot_[t]; ++end) {}
        const SeqSlot& s = slots_[tok_slot_[t]];
        for (size_t g = 0; g < c.num_kv_heads; ++g) {
            k[g] = s.k_rows[layer * c.num_kv_heads + g].data();
            v[g] = s.v_rows[layer * c.num_kv_heads + g].data();
        }
        KvAttentionParams p;
        p.q = qkv_.data() + t * row;
        p.q_stride = row;
        p.out = attn_.data() + t * q_dim;
        p.out_stride = q_dim;
        p.k = k.data();
        p.v = v.data();
        p.type = kv_dtype_;
        p.tokens = end - t;
        p.heads = c.num_heads;
        p.kv_heads = c.num_kv_heads;
        p.head_dim = c.head_dim;
        p.pos = tok_pos_[t];
        p.window = c.sliding_window;
        p.scale = 1.0f / std::sqrt(float(c.head_dim));
        kv_attention(pool_, p);
    }
}

void CpuEngine::attention(size_t layer, size_t n) {
    if (kv_dtype_ != DType::f32) return row_attention(layer, n);
    const ModelConfig& c = config();
    const size_t hd = c.head_dim, heads = c.num_heads, kv_heads = c.num_kv_heads, group = heads / kv_heads;
    const size_t q_dim = size_t(c.q_dim()), row = q_dim + 2 * size_t(c.kv_dim());
    const float scale = 1.0f / std::sqrt(float(hd));
    pool_.parallel_for(n * heads, [&](size_t b, size_t e) {
        thread_local std::vector<float> p;
        for (size_t item = b; item < e; ++item) {
            const size_t t = item / heads, h = item % heads, g = h / group;
            const size_t pos = tok_pos_[t], end = pos + 1;
            // Causal, and within the sliding window when the model has one.
            const size_t first = c.sliding_window && end > c.sliding_window ? end - c.sliding_window : 0;
            const size_t cache = layer * kv_heads + g;
            const SeqSlot& s = slots_[tok_slot_[t]];
            p.resize((end + k_attn_block - 1) / k_attn_block * k_attn_block);
            attention_scores(qkv_.data() + t * row + h * hd, s.k_cache[cache].data(), hd, first, end, scale, p.data());
            softmax(p.data() + first, end - first);
            attention_values(p.data(), s.v_cache[cache].data(), hd, first, end, attn_.data() + t * q_dim + h * hd);
        }
    });
}

void CpuEngine::tree_attention(size_t layer, size_t n) {
    const ModelConfig& c = config();
    const size_t hd = c.head_dim, kv_heads = c.num_kv_heads, group = c.num_heads / kv_heads;
    const size_t q_dim = size_t(c.q_dim()), row = q_dim + 2 * size_t(c.kv_dim()), base = tree_.base();
    const float scale = 1.0f / std::sqrt(float(hd));
    constexpr size_t B = k_attn_block;
    const SeqSlot& s = slots_[0];
    pool_.parallel_for(n * kv_heads, [&](size_t b, size_t e) {
        thread_local std::vector<float> p, keys, values; // keys [blocks][hd][B], values [positions][hd]
        thread_local std::vector<size_t> path;
        for (size_t item = b; item < e; ++item) {
            const size_t t = item / kv_heads, g = item % kv_heads, cache = layer * kv_heads + g;
            tree_.path(tok_pos_[t], path);
            // Its positions [first, end): the rows before the tree, then its path.
            const size_t end = base + path.size();
            const size_t first = c.sliding_window && end > c.sliding_window ? end - c.sliding_window : 0;
            const size_t b0 = first / B, blocks = (end + B - 1) / B - b0, plain = std::max(first, std::min(base, end));
            keys.resize(blocks * hd * B);
            const size_t whole = std::min((base + B - 1) / B, b0 + blocks) - std::min((base + B - 1) / B, b0);
            std::copy_n(s.k_cache[cache].begin() + long(b0 * hd * B), whole * hd * B, keys.begin());
            values.resize((end - first) * hd);
            std::copy(s.v_cache[cache].begin() + long(first * hd), s.v_cache[cache].begin() + long(plain * hd), values.begin());
            for (size_t i = 0; i < path.size(); ++i) {
                const size_t at = base + i; // the position row path[i] takes in a plain decode
                if (at < first) continue;
                const size_t src = path[i] / B * hd * B + path[i] % B, dst = (at / B - b0) * hd * B + at % B;
                for (size_t d = 0; d < hd; ++d) keys[dst + d * B] = s.k_cache[cache][src + d * B];
                std::copy_n(s.v_cache[cache].begin() + long(path[i] * hd), hd, values.begin() + long((at - first) * hd));
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
        SeqSlot& s = slots_[tok_slot_[t]];
        const size_t pos = tok_pos_[t];
        if (kv_dtype_ != DType::f32) {
            const size_t rb = kv_row_bytes(kv_dtype_, hd);
            for (size_t g = 0; g < c.num_kv_heads; ++g) {
                store_kv_row(kv_dtype_, k + g * hd, hd, s.k_rows[layer * c.num_kv_heads + g].data() + pos * rb);
                store_kv_row(kv_dtype_, v + g * hd, hd, s.v_rows[layer * c.num_kv_heads + g].data() + pos * rb);
            }
            continue;
        }
        for (size_t g = 0; g < c.num_kv_heads; ++g) {
            float* kc = s.k_cache[layer * c.num_kv_heads + g].data() + key_offset(pos, hd);
            for (size_t d = 0; d < hd; ++d) kc[d * k_attn_block] = k[g * hd + d];
            std::copy(v + g * hd, v + (g + 1) * hd, s.v_cache[layer * c.num_kv_heads + g].begin() + long(pos * hd));
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
    if (tree_pass_) tree_attention(layer, n);
    else attention(layer, n);
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
    forward_slots({SlotTokens{0, tokens, n, n_logits}}, logits);
}

void CpuEngine::forward_slots(const std::vector<SlotTokens>& seqs, std::vector<float>& logits) {
    RABBIT_CHECK(!tree_.open(), "a plain forward over a draft tree; keep_rows first");
    std::vector<size_t> positions;
    for (const SeqSlot& s : slots_) positions.push_back(s.pos);
    // In passes, so that activations stay the size of one pass whatever the prompts' lengths.
    const std::vector<SlotPass> passes = slot_passes(config(), seqs, positions, batch_, ctx_);
    for (const SlotTokens& s : seqs) slots_[s.slot].rope.begin_forward(positions[s.slot] + s.n);
    const size_t total = total_tokens(seqs);
    logits.clear();
    std::vector<float> part;
    for (const SlotPass& p : passes) {
        begin_part(p.first, total);
        pass(p, part);
        if (passes.size() == 1) return logits.swap(part);
        logits.insert(logits.end(), part.begin(), part.end());
    }
}

void CpuEngine::forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) {
    RABBIT_CHECK(n > 0 && n <= batch_, "a draft tree of no tokens, or of more than --batch");
    if (kv_dtype_ != DType::f32) // tree_attention gathers f32 rows
        throw Error(ExitCode::usage, "draft trees need the f32 KV cache on the CPU: drop --kv-dtype, or draft chains (--draft-max)");
    SeqSlot& s = slots_[0];
    const std::vector<SlotPass> passes = slot_passes(config(), {SlotTokens{0, tokens, n, n}}, {s.pos}, batch_, ctx_);
    RABBIT_CHECK(passes.size() == 1, "a draft tree in more than one pass");
    tree_.add(s.pos, parents, n);
    size_t last = 0;
    for (size_t t = 0; t < n; ++t) last = std::max(last, tree_.position(s.pos + t));
    s.rope.begin_forward(last + 1);
    begin_part(0, n);
    tree_pass_ = true;
    try {
        pass(passes[0], logits);
    } catch (...) {
        tree_pass_ = false;
        tree_.cut(s.pos); // an interrupted pass: its rows were not added
        throw;
    }
    tree_pass_ = false;
}

void CpuEngine::keep_rows(size_t base, const std::vector<size_t>& rows) {
    SeqSlot& s = slots_[0];
    const bool moves = tree_.check_keep(base, rows, s.pos);
    const size_t hd = config().head_dim, rb = kv_row_bytes(kv_dtype_, hd);
    for (size_t i = 0; moves && i < rows.size(); ++i) {
        const size_t src = base + rows[i], dst = base + i;
        if (src == dst) continue;
        // Rows move towards the front only (rows[i] >= i), each read before anything lands on it.
        for (size_t cache = 0; cache < s.k_cache.size(); ++cache) {
            float* k = s.k_cache[cache].data();
            const size_t ks = key_offset(src, hd), kd = key_offset(dst, hd);
            for (size_t d = 0; d < hd; ++d) k[kd + d * k_attn_block] = k[ks + d * k_attn_block];
            std::copy_n(s.v_cache[cache].begin() + long(src * hd), hd, s.v_cache[cache].begin() + long(dst * hd));
        }
        for (size_t cache = 0; cache < s.k_rows.size(); ++cache) {
            std::copy_n(s.k_rows[cache].begin() + long(src * rb), rb, s.k_rows[cache].begin() + long(dst * rb));
            std::copy_n(s.v_rows[cache].begin() + long(src * rb), rb, s.v_rows[cache].begin() + long(dst * rb));
        }
    }
    s.pos = base + rows.size();
}

namespace {

// splitmix64: a cheap, well-mixed stream of 64-bit numbers from any state.
uint64_t next_random(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// About normal, mean 0 and variance 1: the sum of three uniforms on [-1, 1), each of
// variance 1/3, from one draw's three 21-bit parts.
float synthetic_value(uint64_t& state) {
    const uint64_t r = next_random(state);
    constexpr float unit = 1.0f / float(1u << 20);
    float sum = 0;
    for (int part = 0; part < 3; ++part) sum += float((r >> (21 * part)) & 0x1FFFFF) * unit - 1.0f;
    return sum;
}

} // namespace

void CpuEngine::fill_cache(size_t n, uint64_t seed) {
    const ModelConfig& c = config();
    check_room(c, 0, n, ctx_);
    reset_slot(0);
    grow_cache(0, n);
    SeqSlot& s = slots_[0];
    const size_t hd = c.head_dim, caches = size_t(c.num_layers) * c.num_kv_heads;
    // One stream per cache and side (keys, values), so that the threads' split of the work
    // does not change the values.
    pool_.parallel_for(2 * caches, [&](size_t b, size_t e) {
        std::vector<float> row(hd);
        for (size_t item = b; item < e; ++item) {
            const size_t cache = item / 2;
            const bool keys = item % 2 == 0;
            uint64_t state = seed * 0xD1B54A32D192ED03ull + item;
            for (size_t pos = 0; pos < n; ++pos) {
                for (float& x : row) x = synthetic_value(state);
                if (kv_dtype_ != DType::f32) {
                    const size_t rb = kv_row_bytes(kv_dtype_, hd);
                    store_kv_row(kv_dtype_, row.data(), hd, (keys ? s.k_rows : s.v_rows)[cache].data() + pos * rb);
                } else if (keys) { // transposed blocks, as rope_and_cache writes them
                    float* k = s.k_cache[cache].data() + key_offset(pos, hd);
                    for (size_t d = 0; d < hd; ++d) k[d * k_attn_block] = row[d];
                } else {
                    std::copy(row.begin(), row.end(), s.v_cache[cache].begin() + long(pos * hd));
                }
            }
        }
    });
    s.pos = n;
}

uint64_t CpuEngine::kv_cache_bytes() const {
    const SeqSlot& s = slots_[0];
    uint64_t bytes = 0;
    for (size_t i = 0; i < s.k_cache.size(); ++i) bytes += (s.k_cache[i].size() + s.v_cache[i].size()) * sizeof(float);
    for (size_t i = 0; i < s.k_rows.size(); ++i) bytes += s.k_rows[i].size() + s.v_rows[i].size();
    return bytes;
}

void CpuEngine::prepare(const SlotPass& p) {
    const ModelConfig& c = config();
    const size_t n = p.tokens.size();
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
    tok_slot_.resize(n);
    tok_pos_.resize(n);
    for (const SlotRun& r : p.runs) {
        grow_cache(r.slot, r.pos + r.n);
        for (size_t i = 0; i < r.n; ++i) {
            const size_t t = r.row + i;
            tok_slot_[t] = r.slot, tok_pos_[t] = r.pos + i;
            // A draft tree's rows take their depth's position (slot 0's only).
            const size_t at = tree_pass_ && r.slot == 0 ? tree_.position(r.pos + i) : r.pos + i;
            slots_[r.slot].rope.cos_sin(int64_t(at), cos_.data() + t * half, sin_.data() + t * half);
        }
    }
}

void CpuEngine::pass(const SlotPass& p, std::vector<float>& logits) {
    const ModelConfig& c = config();
    const size_t hidden = c.hidden_size, n = p.tokens.size(), n_logits = p.logit_rows.size();
    const int32_t* tokens = p.tokens.data();
    prepare(p);
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

    // The final norm and the output projection, for the rows asked for.
    {
        const float* norm = unit_vector(units[roles_.norm], acquire(roles_.norm), "norm");
        trace::Span span(trace::Track::compute, compute(roles_.norm));
        for (size_t i = 0; i < n_logits; ++i)
            rmsnorm(x_.data() + p.logit_rows[i] * hidden, norm, float(c.rms_norm_eps), hidden, xn_.data() + i * hidden);
        source_->release(roles_.norm);
    }
    for (const SlotRun& r : p.runs) slots_[r.slot].pos = r.pos + r.n;
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
