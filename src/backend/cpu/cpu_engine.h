// SPDX-License-Identifier: Apache-2.0
// The forward pass on the CPU, streamed: for each unit in order, acquire it, run it, release
// it. One code path for every architecture rabbit runs; the config's flags (biases, q/k norm,
// head_dim, tied embeddings, RoPE scaling, sliding window) decide what it does.
#pragma once

#include "backend/cpu/kernels.h"
#include "common/thread_pool.h"
#include "engine/engine.h"
#include "engine/expert_cache.h"
#include "engine/rope.h"
#include "engine/slot_passes.h"
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
    uint64_t ram_budget = 0; // bytes of units (of a MoE model: and experts) kept in memory across tokens
    uint64_t ctx = 0;        // positions the KV cache may hold; 0: the model's maximum
    size_t stream_block = k_stream_block; // bytes of a streamed weight used (and dropped) at once
    size_t batch = 512;      // most tokens run through the layers at once: a longer prompt goes in parts
    ActQuant act_quant = ActQuant::f32; // quantized weights: f32 activations (exact), or q8 (llama.cpp's)
    DType kv_dtype = DType::f32; // the KV cache's type: f32, or bf16, f16, q8_0 (rows, kv_attention.h)
};

class CpuEngine : public Engine {
public:
    CpuEngine(const SplitModel& model, const EngineOptions& options);

    const ModelConfig& config() const override { return model_.config(); }
    uint64_t context() const override { return ctx_; }
    size_t position() const override { return slots_[0].pos; }
    // Slot 0 holds speculative decoding's draft trees.
    void reset() override { reset_slot(0); }
    void truncate(size_t n) override { slots_[0].pos = std::min(slots_[0].pos, n), tree_.cut(slots_[0].pos); }
    const MmapUnitSource& units() const { return *source_; }
    const ExpertCache& expert_cache() const { return expert_cache_; }
    size_t threads() const { return pool_.size(); }
    ActQuant act_quant() const { return act_quant_; }
    DType kv_dtype() const { return kv_dtype_; }

    void forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) override;

    size_t slots() const override { return slots_.size(); }
    size_t max_slots() const override { return SIZE_MAX; } // the caches grow as they fill
    void set_slots(size_t n) override;
    size_t slot_position(size_t slot) const override { return slots_.at(slot).pos; }
    void reset_slot(size_t slot) override;
    void forward_slots(const std::vector<SlotTokens>& seqs, std::vector<float>& logits) override;
    void forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) override;
    void keep_rows(size_t base, const std::vector<size_t>& rows) override;
    // Keys and values about as large as a model's (each value of mean 0 and variance 1), in
    // the cache's type and layout, so that decode reads and widens them as it would real ones.
    void fill_cache(size_t n, uint64_t seed) override;
    // Bytes slot 0's KV cache holds (allocated, every layer): what a context costs in memory.
    uint64_t kv_cache_bytes() const;
    // No loader: the compute reads the streamed weights in itself, so its disk time is all wait.
    StreamStats stream_stats() const override { return stats_; }

private:
    // One part of forward_slots(): at most options.batch tokens through every layer.
    void pass(const SlotPass& p, std::vector<float>& logits);
    // Activations sized for the pass's tokens, their slots, positions and RoPE angles, and
    // the KV caches grown to hold them.
    void prepare(const SlotPass& p);
    void embed(const int32_t* tokens, size_t n);
    // matmul over a weight of unit `unit`; a streamed unit's weight goes in row blocks of at
    // most options.stream_block bytes, each dropped from memory once used.
    // y [n, ldy] (ldy 0: w.rows); a stack writes each part's rows at their place in y [n, w.rows()].
    // held: the weight is in memory already (a resident unit's, or an expert the cache holds);
    // keep: a streamed weight stays in memory after use (an expert the cache now holds).
    enum class Use { stream, keep, held };
    void linear(size_t unit, const Matrix& w, const float* bias, const float* x, size_t n, float* y, size_t ldy = 0,
                Use use = Use::stream);
    void linear(size_t unit, const StackedMatrix& w, const float* bias, const float* x, size_t n, float* y,
                Use use = Use::stream);
    // data: the layer unit's data section (a MoE layer's experts are placed on it as routed).
    void run_layer(size_t layer, size_t unit, const uint8_t* data, const LayerWeights& w, size_t n);
    // The MLP of a MoE layer (cpu_moe.cpp): out_ = the routed experts' weighted outputs plus
    // the gated shared expert, of xn_. Each expert some token routes to runs once, over all
    // of its tokens; the others are never read.
    void moe_mlp(size_t layer, size_t unit, const uint8_t* data, const LayerWeights& w, size_t n);
    // Expert e of layer `layer` is about to run: whether it is in memory already, and whether
    // to keep it there after (the cache holds it); drops what the cache evicts for it.
    Use expert_use(size_t layer, size_t unit, uint32_t e);
    // The new q and k of n tokens normed (Qwen3) and rotated in place in qkv_; their keys and
    // values appended to the layer's cache.
    void rope_and_cache(size_t layer, const LayerWeights& w, size_t n);
    void attention(size_t layer, size_t n);
    // The same over a row cache (kv_dtype_ other than f32).
    void row_attention(size_t layer, size_t n);
    // attention() for a pass over a draft tree: each token over the rows before the tree and
    // its own path, gathered into the layout a plain decode of that path would find, so that
    // the kernels compute the very numbers that decode computes (their vector lanes and block
    // groups depend on where a position sits).
    void tree_attention(size_t layer, size_t n);
    void grow_cache(size_t slot, size_t positions);

    const SplitModel& model_;
    std::unique_ptr<MmapUnitSource> source_;
    ThreadPool pool_;
    uint64_t ctx_ = 0;
    size_t stream_block_ = k_stream_block;
    size_t batch_ = 512;
    ActQuant act_quant_ = ActQuant::f32;
    TreeRows tree_;          // a draft tree in slot 0's cache (forward_tree), until keep_rows
    bool tree_pass_ = false; // the pass under way is forward_tree's
    const UnitRoles& roles_ = model_.roles();
    std::vector<LayerTensors> layer_t_; // each layer's tensors, found by name once, at construction

    // A sequence: its position, its RoPE tables (the cos/sin of its forward under way) and
    // its KV cache, per layer and KV head ([layer * kv_heads + g]), grown as positions come,
    // laid out as attention_scores and attention_values read it: keys in transposed blocks
    // [positions / k_attn_block][head_dim][k_attn_block], values [positions][head_dim]; f32.
    struct SeqSlot {
        explicit SeqSlot(const ModelConfig& c) : rope(c) {}
        size_t pos = 0;
        RopeTables rope;
        std::vector<std::vector<float>> k_cache, v_cache;
        // Under another --kv-dtype, the cache instead: per layer and KV head, keys and values
        // each [positions][kv_row_bytes(kv_dtype_, head_dim)], as kv_attention reads them.
        std::vector<std::vector<uint8_t>> k_rows, v_rows;
        size_t cache_positions = 0;
    };
    std::vector<SeqSlot> slots_;

    // Activations of the tokens in flight.
    std::vector<float> x_;       // [n, hidden] the residual stream
    std::vector<float> xn_;      // [n, hidden] normed input of a sublayer
    std::vector<float> qkv_;     // [n, q_dim + 2 kv_dim]
    std::vector<float> attn_;    // [n, q_dim]
    std::vector<float> out_;     // [n, hidden] a sublayer's output
    std::vector<float> gate_up_; // [n, 2 intermediate]
    std::vector<float> act_;     // [n, intermediate]
    std::vector<float> cos_, sin_; // [n, head_dim / 2]
    // A MoE layer's: router logits [n, num_experts], each token's experts and weights
    // [n, experts_per_tok], one expert's tokens gathered [n, hidden] and its output [n, hidden],
    // the shared expert's gate logit [n].
    std::vector<float> router_, route_w_, moe_x_, moe_y_, shared_g_;
    std::vector<int32_t> chosen_;
    std::vector<size_t> tok_slot_, tok_pos_; // [n] each token's sequence slot and position
    DType kv_dtype_ = DType::f32;
    StreamStats stats_;
    // MoE models: the experts kept in memory, within what the RAM budget leaves after the
    // resident units (engine/expert_cache.h: least recently used out).
    ExpertCache expert_cache_;
};

} // namespace rabbit
