// SPDX-License-Identifier: Apache-2.0
// The forward pass on the CPU, streamed: for each unit in order, acquire it, run it, release
// it. One code path for every architecture rabbit runs; the config's flags (biases, q/k norm,
// head_dim, tied embeddings, RoPE scaling, sliding window) decide what it does.
#pragma once

#include "backend/cpu/kernels.h"
#include "common/thread_pool.h"
#include "engine/engine.h"
#include "engine/rope.h"
#include "engine/tree_rows.h"
#include "stream/unit_source.h"
#include "engine/weights.h"
#include "format/split_model.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

namespace rabbit {

// The most bytes of a streamed (not resident) weight in memory at once.
constexpr size_t k_stream_block = 64ull << 20;

struct EngineOptions {
    size_t threads = 0;      // 0: every hardware thread
    uint64_t ram_budget = 0; // bytes of units kept in memory across tokens
    uint64_t ctx = 0;        // positions the KV cache may hold; 0: the model's maximum
    size_t stream_block = k_stream_block; // bytes of a streamed weight used (and dropped) at once
    size_t batch = 512;      // most tokens run through the layers at once: a longer prompt goes in parts
    ActQuant act_quant = ActQuant::f32; // quantized weights: f32 activations (exact), or q8 (llama.cpp's)
};

class CpuEngine : public Engine {
public:
    CpuEngine(const SplitModel& model, const EngineOptions& options);

    const ModelConfig& config() const override { return model_.config(); }
    uint64_t context() const override { return ctx_; }
    size_t position() const override { return pos_; }
    void reset() override { pos_ = 0, rope_.reset(), tree_.close(); }
    void truncate(size_t n) override { pos_ = std::min(pos_, n), tree_.cut(pos_); }
    const MmapUnitSource& units() const { return *source_; }
    size_t threads() const { return pool_.size(); }
    ActQuant act_quant() const { return act_quant_; }

    void forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) override;
    void forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) override;
    void keep_rows(size_t base, const std::vector<size_t>& rows) override;
    // No loader: the compute reads the streamed weights in itself, so its disk time is all wait.
    StreamStats stream_stats() const override { return stats_; }

private:
    // One part of forward(): at most options.batch tokens through every layer.
    void pass(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits);
    // Activations sized for n tokens, their RoPE angles, and the KV cache grown to hold them.
    void prepare(size_t n);
    void embed(const int32_t* tokens, size_t n);
    // matmul over a weight of unit `unit`; a streamed unit's weight goes in row blocks of at
    // most options.stream_block bytes, each dropped from memory once used.
    // y [n, ldy] (ldy 0: w.rows); a stack writes each part's rows at their place in y [n, w.rows()].
    void linear(size_t unit, const Matrix& w, const float* bias, const float* x, size_t n, float* y, size_t ldy = 0);
    void linear(size_t unit, const StackedMatrix& w, const float* bias, const float* x, size_t n, float* y);
    void run_layer(size_t layer, size_t unit, const LayerWeights& w, size_t n);
    // The new q and k of n tokens normed (Qwen3) and rotated in place in qkv_; their keys and
    // values appended to the layer's cache.
    void rope_and_cache(size_t layer, const LayerWeights& w, size_t n);
    void attention(size_t layer, size_t n);
    // attention() for a pass over a draft tree: each token over the rows before the tree and
    // its own path, gathered into the layout a plain decode of that path would find, so that
    // the kernels compute the very numbers that decode computes (their vector lanes and block
    // groups depend on where a position sits).
    void tree_attention(size_t layer, size_t n);
    void grow_cache(size_t positions);

    const SplitModel& model_;
    std::unique_ptr<MmapUnitSource> source_;
    ThreadPool pool_;
    uint64_t ctx_ = 0;
    size_t stream_block_ = k_stream_block;
    size_t batch_ = 512;
    ActQuant act_quant_ = ActQuant::f32;
    size_t pos_ = 0;
    TreeRows tree_;         // a draft tree in the cache (forward_tree), until keep_rows
    bool tree_pass_ = false; // the pass under way is forward_tree's
    const UnitRoles& roles_ = model_.roles();
    std::vector<LayerTensors> layer_t_; // each layer's tensors, found by name once, at construction
    RopeTables rope_; // the cos/sin of the forward under way

    // Activations of the tokens in flight.
    std::vector<float> x_;       // [n, hidden] the residual stream
    std::vector<float> xn_;      // [n, hidden] normed input of a sublayer
    std::vector<float> qkv_;     // [n, q_dim + 2 kv_dim]
    std::vector<float> attn_;    // [n, q_dim]
    std::vector<float> out_;     // [n, hidden] a sublayer's output
    std::vector<float> gate_up_; // [n, 2 intermediate]
    std::vector<float> act_;     // [n, intermediate]
    std::vector<float> cos_, sin_; // [n, head_dim / 2]
    // The KV cache, per layer and KV head ([layer * kv_heads + g]), grown as positions come,
    // laid out as attention_scores and attention_values read it: keys in transposed blocks
    // [positions / k_attn_block][head_dim][k_attn_block], values [positions][head_dim]; f32.
    std::vector<std::vector<float>> k_cache_, v_cache_;
    size_t cache_positions_ = 0;
    StreamStats stats_;
};

} // namespace rabbit
