// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's forward pass: the inputs staged, then for each layer: its weights (resident,
// or off the ring) -> the attention and MLP blocks -> the slot released; then the final norm
// and lm_head for the rows whose logits are wanted.
#include "backend/cuda/cuda_engine_impl.h"

#include "attention.cuh"
#include "convert.cuh"
#include "embed.cuh"
#include "quant.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "swiglu.cuh"

#include "backend/cuda/check.h"
#include "backend/cuda/gemm.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/quant.h"
#include "engine/rope.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace rabbit {

void CudaEngine::Impl::forward_passes(const std::vector<SlotTokens>& seqs, float* host,
                                      const std::function<void(size_t, size_t)>& begin) {
    std::vector<size_t> positions;
    for (size_t s = 0; s < used_slots; ++s) positions.push_back(seq[s].pos);
    const std::vector<SlotPass> passes = slot_passes(c, seqs, positions, batch, ctx);
    for (const SlotTokens& s : seqs) seq[s.slot].rope.begin_forward(positions[s.slot] + s.n);
    const size_t total = total_tokens(seqs);
    for (const SlotPass& p : passes) {
        begin(p.first, total);
        pass(p, host);
        if (host) host += p.logit_rows.size() * c.vocab_size;
    }
}

void CudaEngine::Impl::pass(const SlotPass& p, float* host) {
    const size_t m = p.tokens.size(), rows = p.logit_rows.size();
    if (in_pass)
        throw Error(ExitCode::internal, "the CUDA engine was interrupted in the middle of a pass and cannot go on; "
                                        "make a new one");
    in_pass = true;
    // The staging buffers are reused: wait until the last pass's copies out of them are done
    // (long since, as a rule: a whole pass of the model ran after them).
    RABBIT_CUDA_CHECK(cudaEventSynchronize(staged.get()));
    upload_rope(p);
    if (tree_pass) upload_tree(m);
    traced(roles.embed, [&] { embed(p.tokens.data(), m); });
    RABBIT_CUDA_CHECK(cudaEventRecord(staged.get(), compute));

    for (size_t l = 0; l < roles.layers.size(); ++l) {
        throw_if_interrupted();
        traced(roles.layers[l], [&] { layer(l, p); });
        if (on_layer) on_layer(m, l, roles.layers.size());
    }
    for (const SlotRun& r : p.runs) seq[r.slot].pos = r.pos + r.n;

    // The final norm (with the last residual add) and lm_head, for the rows asked for.
    if (rows == 0) {
        if (ring) skip_unit(roles.head);
        in_pass = false;
        return;
    }
    traced(roles.norm, [&] { final_norm(p.logit_rows); });
    traced(roles.head, [&] { head(rows, host); });
    in_pass = false;
}

void CudaEngine::Impl::upload_rope(const SlotPass& p) {
    // RoPE's cos and sin for the pass's positions, each from its sequence's tables, computed
    // on the host.
    const size_t half = c.head_dim / 2, m = p.tokens.size();
    float* cs = h_rope.as<float>();
    float* sn = cs + m * half;
    for (const SlotRun& r : p.runs)
        for (size_t i = 0; i < r.n; ++i) {
            // A draft tree's rows take their depth's position (slot 0's only).
            const size_t at = tree_pass && r.slot == 0 ? tree.position(r.pos + i) : r.pos + i;
            seq[r.slot].rope.cos_sin(int64_t(at), cs + (r.row + i) * half, sn + (r.row + i) * half);
        }
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::cos), cs, 4 * m * half, cudaMemcpyHostToDevice, compute));
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::sin), sn, 4 * m * half, cudaMemcpyHostToDevice, compute));
}

void CudaEngine::Impl::upload_tree(size_t m) {
    // Row t: bit r - tree.base() set for each tree row r that token t attends to (its path, those
    // of its ancestors within the sliding window); then each token's position.
    const size_t base = tree.base(), words = (tree.end() - base + 31) / 32;
    uint32_t* mask = h_tree.as<uint32_t>();
    int* at = reinterpret_cast<int*>(mask + m * words);
    std::fill(mask, mask + m * words, 0u);
    std::vector<size_t> path;
    for (size_t t = 0; t < m; ++t) {
        const size_t p = tree.position(seq[0].pos + t);
        tree.path(seq[0].pos + t, path);
        for (size_t r : path)
            if (!c.sliding_window || tree.position(r) + c.sliding_window > p) mask[t * words + (r - base) / 32] |= 1u << ((r - base) % 32);
        at[t] = int(p);
    }
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::tree), mask, 4 * m * (words + 1), cudaMemcpyHostToDevice, compute));
}

void CudaEngine::Impl::move_kv_row(size_t src, size_t dst) {
    // [kv_heads, ctx, head_dim] per layer: one strided copy per layer and cache, a row of every kv head.
    const size_t row = c.head_dim * elem_size(kv_elem), pitch = ctx * row;
    for (uint8_t* cache : {seq[0].k, seq[0].v})
        for (size_t l = 0; l < c.num_layers; ++l) {
            uint8_t* layer = cache + l * kv_layer_bytes;
            RABBIT_CUDA_CHECK(cudaMemcpy2DAsync(layer + dst * row, pitch, layer + src * row, pitch, row, c.num_kv_heads,
                                                cudaMemcpyDefault, compute));
        }
}

void CudaEngine::Impl::embed(const int32_t* tokens, size_t m) {
    check_token_ids(tokens, m, embed_host.rows, model.dir());
    if (embed_dev.data) {
        // A tied embedding that is resident (as the output projection): gather on the GPU,
        // dequantizing the rows of a quantized table.
        std::memcpy(h_ids.get(), tokens, 4 * m);
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::ids), h_ids.get(), 4 * m, cudaMemcpyHostToDevice, compute));
        if (is_quant_dtype(embed_dev.dtype)) {
            DequantParams d;
            d.w = embed_dev.data;
            d.w_type = wtype_of(embed_dev.dtype);
            d.cols = int64_t(embed_dev.cols);
            d.rows = int64_t(m);
            d.ids = fixed<int32_t>(Fixed::ids);
            d.out = fixed<float>(Fixed::x);
            d.out_type = Elem::f32;
            d.ldo = int64_t(embed_dev.cols);
            RABBIT_CUDA_CHECK(launch_dequant(d, compute));
            return;
        }
        EmbedParams p;
        p.table = embed_dev.data;
        p.table_type = elem_of(embed_dev.dtype);
        p.vocab = int64_t(embed_dev.rows);
        p.hidden = int64_t(embed_dev.cols);
        p.ids = fixed<int32_t>(Fixed::ids);
        p.tokens = int(m);
        p.out = fixed<float>(Fixed::x);
        RABBIT_CUDA_CHECK(launch_embed(p, compute));
        return;
    }
    // Otherwise gather the rows on the host, from the mapped file (widened or dequantized to
    // f32, as the CPU engine reads them), and copy only them.
    float* rows = h_embed.as<float>();
    for (size_t t = 0; t < m; ++t)
        dequantize(embed_host.dtype, embed_host.row(uint64_t(tokens[t])), rows + t * c.hidden_size, c.hidden_size);
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::x), rows, 4 * m * c.hidden_size, cudaMemcpyHostToDevice, compute));
}

uint8_t* CudaEngine::Impl::acquire_whole(size_t unit) {
    RABBIT_CHECK(ring->next_piece().unit == unit,
                 "the ring is out of step with the passes at " + model.manifest().units[unit].layout.name);
    uint8_t* dev = ring->acquire();
    if (to_f16) convert_unit(unit, dev);
    return dev;
}

template <typename Product>
void CudaEngine::Impl::by_row_blocks(size_t unit, const std::string& tensor, const Matrix& w, Product&& product) {
    if (w.data) return product(w, uint64_t(0));
    for (uint64_t done = 0; done < w.rows;) {
        const RingPiece& p = ring->next_piece();
        RABBIT_CHECK(p.unit == unit && p.tensor == tensor && p.row0 == done,
                     fmt::format("the ring is out of step with {}.{} at row {}",
                                 model.manifest().units[unit].layout.name, tensor, done));
        uint8_t* dev = ring->acquire();
        if (converted(unit, tensor)) RABBIT_CUDA_CHECK(launch_bf16_to_f16(dev, int64_t(p.bytes / 2), compute));
        Matrix part = w;
        part.data = dev;
        part.rows = p.rows;
        product(part, p.row0);
        ring->release();
        done += part.rows;
    }
}

void CudaEngine::Impl::linear(size_t unit, const std::string& tensor, const Matrix& w, const void* x, size_t m, float* y,
                              size_t ldy) {
    by_row_blocks(unit, tensor, w, [&](const Matrix& part, uint64_t row0) { product(part, x, m, y + row0, ldy); });
}

void CudaEngine::Impl::linear(size_t unit, const TensorStack& tensors, const StackedMatrix& w, const void* x, size_t m,
                              float* y, size_t ldy) {
    for (size_t i = 0, row0 = 0; i < w.parts; row0 += w.part[i].rows, ++i)
        linear(unit, tensors.part[i]->name, w.part[i], x, m, y + row0, ldy);
}

void CudaEngine::Impl::product(const Matrix& w, const void* x, size_t m, float* y, size_t ldy) {
    weight_product(blas, compute, w, x, act, m, y, ldy,
                   {fixed(Fixed::dequant_workspace), plan.fixed.size(Fixed::dequant_workspace)});
}

void CudaEngine::Impl::skip_unit(size_t unit) {
    // A pass that wants no logits still takes lm_head's pieces off the ring, to stay in step.
    if (resident[unit].get()) return;
    do {
        ring->acquire();
        ring->release();
    } while (ring->next_piece().unit == unit && !streamed_whole[unit] && ring->next_piece().row0 != 0);
}

void CudaEngine::Impl::layer(size_t l, const SlotPass& p) {
    // Its weights: resident (built at load), or its unit whole in the ring's next slot (built
    // here, once for the layer), or its matrices streamed in row blocks (by linear).
    // A streamed MoE layer: its dense piece, then its routed experts (moe_layer).
    const size_t u = roles.layers[l];
    if (moe_streamed(l)) return moe_layer(l, p);
    const bool whole = !resident[u].get() && streamed_whole[u];
    const LayerWeights w = whole ? device_weights(l, acquire_whole(u)) : layer_w[l];
    attention_block(l, w, p);
    if (layer_t[l].router) moe_block(l, w, p.tokens.size());
    else mlp_block(l, w, p.tokens.size());
    if (whole) ring->release();
}

void CudaEngine::Impl::attention_block(size_t l, const LayerWeights& w, const SlotPass& p) {
    const size_t u = roles.layers[l];
    const LayerTensors& t = layer_t[l];
    const size_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), m = p.tokens.size();
    float* qkv = fixed<float>(Fixed::qkv);
    void* xn = fixed(Fixed::xn);
    void* attn = fixed(Fixed::attn);

    // The residual add of the previous layer's MLP is fused into this norm.
    RmsNormParams n = residual_norm(w.attn_norm, 0, m);
    n.delta = l > 0 ? fixed<float>(Fixed::out) : nullptr;
    n.delta_scale = l > 0 ? down_scale() : nullptr;
    RABBIT_CUDA_CHECK(launch_rmsnorm(n, compute));
    linear(u, t.qkv, w.qkv, xn, m, qkv, q + 2 * kv);

    // The rotation, the cache and attention per sequence: each run of the pass's rows in
    // its own slot's cache, at its own positions.
    for (const SlotRun& run : p.runs) sequence_attention(l, w, run);
    linear(u, t.o->name, w.o, attn, m, fixed<float>(Fixed::out), h);
}

void CudaEngine::Impl::sequence_attention(size_t l, const LayerWeights& w, const SlotRun& run) {
    // Rows [run.row, run.row + run.n) of qkv: bias, q/k norm and RoPE, their keys and values
    // into the slot's cache, then their attention over it into the same rows of attn.
    const size_t q = c.q_dim(), kv = c.kv_dim(), half = c.head_dim / 2;
    float* qkv = fixed<float>(Fixed::qkv);
    void* attn = fixed(Fixed::attn);
    uint8_t* k_layer = seq[run.slot].k + l * kv_layer_bytes;
    uint8_t* v_layer = seq[run.slot].v + l * kv_layer_bytes;
    QkvRopeParams r;
    r.qkv = qkv + run.row * (q + 2 * kv);
    r.bias = w.qkv_bias;
    r.q_norm = w.q_norm;
    r.k_norm = w.k_norm;
    r.cos = fixed<float>(Fixed::cos) + run.row * half;
    r.sin = fixed<float>(Fixed::sin) + run.row * half;
    r.eps = float(c.rms_norm_eps);
    r.tokens = int(run.n);
    r.heads = int(c.num_heads);
    r.kv_heads = int(c.num_kv_heads);
    r.head_dim = int(c.head_dim);
    r.k_cache = k_layer;
    r.v_cache = v_layer;
    r.cache_type = kv_elem;
    r.cache_len = int64_t(ctx);
    r.pos = int64_t(run.pos);
    RABBIT_CUDA_CHECK(launch_qkv_rope(r, compute));

    AttentionParams a;
    a.q = r.qkv;
    a.q_stride = int64_t(q + 2 * kv);
    a.k_cache = k_layer;
    a.v_cache = v_layer;
    a.cache_type = kv_elem;
    a.cache_len = int64_t(ctx);
    a.out = static_cast<uint8_t*>(attn) + run.row * q * elem_size(act);
    a.out_type = act;
    a.tokens = int(run.n);
    a.heads = int(c.num_heads);
    a.kv_heads = int(c.num_kv_heads);
    a.head_dim = int(c.head_dim);
    a.pos = int64_t(run.pos);
    a.window = int64_t(c.sliding_window);
    a.scale = 1.0f / std::sqrt(float(c.head_dim));
    a.workspace = fixed(Fixed::attention_workspace);
    a.sm_count = prop.multiProcessorCount;
    a.smem_optin = prop.sharedMemPerBlockOptin;
    if (tree_pass) {
        a.tree_mask = fixed<uint32_t>(Fixed::tree);
        a.tree_words = int((tree.end() - tree.base() + 31) / 32);
        a.tree_pos = reinterpret_cast<const int*>(a.tree_mask + run.n * size_t(a.tree_words));
        a.tree_base = int64_t(tree.base());
    }
    // The CPU's attention over a host cache has no tree mask: a tree pass reads it over the link.
    if (attend == KvAttend::cpu && seq[run.slot].host_k && !tree_pass) host_attention(l, run, attn);
    else if (!cudnn_attention(run, a)) RABBIT_CUDA_CHECK(launch_attention(a, compute));
}

void CudaEngine::Impl::mlp_block(size_t l, const LayerWeights& w, size_t m) {
    const size_t u = roles.layers[l];
    const LayerTensors& t = layer_t[l];
    const size_t h = c.hidden_size, inter = c.intermediate_size;
    float* out = fixed<float>(Fixed::out);
    void* xn = fixed(Fixed::xn);

    // After the attention's residual add (and o_proj's bias) fused into its norm.
    RmsNormParams n = residual_norm(w.ffn_norm, 0, m);
    n.delta = out;
    n.bias = w.o_bias;
    RABBIT_CUDA_CHECK(launch_rmsnorm(n, compute));
    linear(u, t.gate_up, w.gate_up, xn, m, fixed<float>(Fixed::gate_up), 2 * inter);
    SwigluParams s;
    s.gate_up = fixed<float>(Fixed::gate_up);
    s.tokens = int(m);
    s.inter = int(inter);
    s.out = fixed(Fixed::act);
    s.out_type = act;
    s.row_scale = down_scale(); // f16: rows beyond its range are scaled down, and the down product back up
    RABBIT_CUDA_CHECK(launch_swiglu(s, compute));
    linear(u, t.down->name, w.down, fixed(Fixed::act), m, out, h);
}

void CudaEngine::Impl::final_norm(const std::vector<size_t>& rows) {
    // The pass's rows asked for, with the last layer's residual add, into xn's first rows: a
    // launch for each run of consecutive rows (one for a single sequence's last rows).
    const size_t h = c.hidden_size;
    for (size_t i = 0; i < rows.size();) {
        size_t k = 1;
        while (i + k < rows.size() && rows[i + k] == rows[i] + k) ++k;
        const size_t first = rows[i];
        RmsNormParams n = residual_norm(final_norm_w, first, k);
        n.out = fixed<uint8_t>(Fixed::xn) + i * h * elem_size(act);
        n.delta = fixed<float>(Fixed::out) + first * h;
        n.delta_scale = down_scale() ? down_scale() + first : nullptr;
        RABBIT_CUDA_CHECK(launch_rmsnorm(n, compute));
        i += k;
    }
}

RmsNormParams CudaEngine::Impl::residual_norm(const float* weight, size_t first, size_t rows) const {
    // The norm of residual rows [first, first + rows) into xn, in the compute type; the caller
    // adds what is fused into it (the sublayer's output, its scale, o_proj's bias).
    RmsNormParams n;
    n.x = fixed<float>(Fixed::x) + first * c.hidden_size;
    n.weight = weight;
    n.eps = float(c.rms_norm_eps);
    n.rows = int(rows);
    n.n = int(c.hidden_size);
    n.out = fixed(Fixed::xn);
    n.out_type = act;
    return n;
}

void CudaEngine::Impl::wait_compute() {
    RABBIT_CUDA_CHECK(cudaEventRecord(drained.get(), compute));
    RABBIT_CUDA_CHECK(cudaEventSynchronize(drained.get()));
}

void CudaEngine::Impl::flush_logits() {
    // The last pass's logits, copied into pinned h_logits on the stream, to where they belong.
    if (!pending_logits) return;
    RABBIT_CUDA_CHECK(cudaEventSynchronize(logits_copied.get()));
    std::memcpy(pending_logits, h_logits.get(), 4 * pending_rows * c.vocab_size);
    pending_logits = nullptr;
    pending_rows = 0;
}

float* CudaEngine::Impl::pinned_logits(size_t rows) {
    // h_logits, for `rows` rows, once it holds the previous pass's rows no more.
    const size_t vocab = c.vocab_size;
    flush_logits();
    if (h_logits.bytes() < 4 * rows * vocab) {
        pinned_bytes += 4 * rows * vocab - h_logits.bytes();
        h_logits = PinnedBuffer(4 * rows * vocab, false);
    }
    return h_logits.as<float>();
}

void CudaEngine::Impl::head(size_t rows, float* host) {
    // The device holds k_planned_logit_rows rows of logits: more rows (a prompt's, for
    // --dump-logits) go through in groups, each group's logits copied out before the next is
    // computed. They go to pinned memory (h_logits, grown to the rows of the pass), so that the
    // copies stay asynchronous, and from there to `host` once the pass is done (flush_logits).
    const size_t vocab = c.vocab_size, h = c.hidden_size;
    float* pinned = host ? pinned_logits(rows) : nullptr;
    RABBIT_CHECK(host || rows <= k_planned_logit_rows, "more logit rows than the device holds, and nowhere to put them");
    float* logits = fixed<float>(Fixed::logits);
    auto logits_of = [&](const Matrix& part, uint64_t row0) {
        for (size_t g0 = 0; g0 < rows; g0 += k_planned_logit_rows) {
            const size_t gl = std::min<size_t>(k_planned_logit_rows, rows - g0);
            const uint8_t* x = fixed<uint8_t>(Fixed::xn) + g0 * h * elem_size(act);
            product(part, x, gl, logits + row0, vocab);
            if (pinned)
                RABBIT_CUDA_CHECK(cudaMemcpy2DAsync(pinned + g0 * vocab + row0, 4 * vocab, logits + row0, 4 * vocab,
                                                    4 * part.rows, gl, cudaMemcpyDeviceToHost, compute));
        }
    };
    if (!resident[roles.head].get() && streamed_whole[roles.head]) {
        logits_of(matrix_on_device(*head_t, acquire_whole(roles.head)), 0);
        ring->release();
    } else {
        by_row_blocks(roles.head, head_t->name, head_w, logits_of);
    }
    if (pinned) {
        RABBIT_CUDA_CHECK(cudaEventRecord(logits_copied.get(), compute));
        pending_logits = host;
        pending_rows = rows;
    }
}

} // namespace rabbit
