// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's state, shared by the files that make it up (internal to src/backend/cuda):
//   cuda_engine_setup.cpp    once, at init: the device, the plan, the allocations it lists, the
//                            loads (vectors, resident units), each layer's LayerWeights, the ring;
//   cuda_engine_forward.cpp  a pass: the embedding, the layers, the final norm and lm_head;
//   cuda_engine_moe.cpp      a MoE layer's MLP: routing, its experts, the expert cache;
//   cuda_engine_sample.cpp   choosing the next token on the GPU (CudaEngine::step);
//   cuda_engine.cpp          the rest of the Engine interface.
#pragma once

#include "backend/cuda/cuda_engine.h"

#include "attention.cuh"
#include "elem.cuh"
#include "rmsnorm.cuh"

#include "backend/cuda/attention_choice.h"
#include "backend/cuda/cuda_transport.h"
#include "backend/cuda/cudnn_attention.h"
#include "backend/cuda/events.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/spans.h"
#include "common/thread_pool.h"
#include "engine/expert_cache.h"
#include "engine/moe.h"
#include "engine/rope.h"
#include "engine/slot_passes.h"
#include "engine/tree_rows.h"
#include "engine/weights.h"
#include "stream/unit_source.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace rabbit {

// The kernels' element type of a weight dtype (f32, f16, bf16; any other is an internal error).
Elem elem_of(DType t);

// Where the ring reads a piece: the unit's pinned copy when --ram-budget keeps one, else its
// mapping, which the loader faults in from the disk (read ahead by one piece) and drops after.
class UnitPieces : public PieceSource {
public:
    UnitPieces(MmapUnitSource& files, const std::vector<PinnedBuffer>& tier) : files_(files), tier_(tier) {}
    const uint8_t* bytes(const RingPiece& p) override { return base(p.unit) + p.offset; }
    bool pinned(const RingPiece& p) override { return tier_[p.unit].get() != nullptr; }
    void prefetch(const RingPiece& p) override {
        if (!pinned(p)) files_.will_need(bytes(p), p.bytes);
    }
    void done(const RingPiece& p) override {
        if (!pinned(p)) files_.done_with(p.unit, bytes(p), p.bytes);
    }

private:
    const uint8_t* base(size_t unit) const {
        return tier_[unit].get() ? tier_[unit].as<uint8_t>() : files_.data(unit);
    }
    MmapUnitSource& files_;
    const std::vector<PinnedBuffer>& tier_;
};

struct CudaEngine::Impl {
    Impl(const SplitModel& m, const CudaEngineOptions& o) : model(m), c(m.config()), opt(o) {}
    ~Impl();

    // Setup (cuda_engine_setup.cpp), in init's order.
    void init();
    void select_device();
    void choose_compute_type();
    void make_stream_and_blas();
    void measure_runtime_overhead();
    void plan_memory_and_context();
    void plan_all_resident(); // CudaEngineOptions::all_resident
    void choose_budget();
    void fill_plan_input();
    void allocate();
    void allocate_staging();
    void load_vectors();
    void load_resident();
    void place_weights();
    void start_ring();
    std::vector<RingPiece> ring_sequence(std::vector<size_t>& streamed);
    void fill_ram_tier(const std::vector<size_t>& streamed);
    // The bf16 matrices of a unit whose data section is at `base` on the device, those at
    // offsets [begin, end), rewritten as f16.
    void convert_unit(size_t unit, uint8_t* base, uint64_t begin = 0, uint64_t end = UINT64_MAX);
    // Matrix t of a unit whose data section is at `data` on the device (null: it streams in
    // row blocks), in the type the GEMMs read it in (f16 once rewritten on arrival).
    Matrix matrix_on_device(const UnitTensor& t, const uint8_t* data) const;
    // Layer l's weights with its unit's data section at `data` on the device: its matrices
    // there, its vectors in `vectors` (from layer_w).
    LayerWeights device_weights(size_t l, const uint8_t* data) const;

    // The forward pass (cuda_engine_forward.cpp).
    // The passes of a forward of many sequences (slot_passes), logits to `host` (null: kept
    // on the device, for step's sampling of one row).
    void forward_passes(const std::vector<SlotTokens>& seqs, float* host, const std::function<void(size_t, size_t)>& begin);
    void pass(const SlotPass& p, float* host);
    void upload_rope(const SlotPass& p);
    // A tree pass's mask rows and positions (AttentionParams::tree_mask) into Fixed::tree; the
    // tree is slot 0's.
    void upload_tree(size_t m);
    // Slot 0's cache row src moved to dst in every layer's K and V, on the compute stream.
    void move_kv_row(size_t src, size_t dst);
    void embed(const int32_t* tokens, size_t m);
    void layer(size_t l, const SlotPass& p);
    void attention_block(size_t l, const LayerWeights& w, const SlotPass& p);
    void sequence_attention(size_t l, const LayerWeights& w, const SlotRun& run);

    // The KV cache's type and, in host memory, where attention runs (host_attention.cpp).
    void choose_kv_type();
    void choose_kv_attend();
    double round_trip_seconds();
    void allocate_host_attention();
    // Layer l's attention of one sequence's rows on the CPU, over its cache in host memory,
    // into those rows of attn [m, q_dim] act on the device.
    void host_attention(size_t l, const SlotRun& run, void* attn);

    // rabbit's kernel or cuDNN's fused attention (prefill_attention.cpp).
    void start_cudnn();
    AttentionChoiceInput attention_choice(const SlotRun& run) const;
    // The run's attention (a: as rabbit's kernel would take it) queued on cuDNN when the choice
    // says so and cuDNN has an engine for the shape; false: the caller launches rabbit's kernel.
    bool cudnn_attention(const SlotRun& run, const AttentionParams& a);
    void note_attention(const std::string& what);
    void mlp_block(size_t l, const LayerWeights& w, size_t m);
    // The final norm of the pass's rows `rows`, into rows 0, 1, ... of xn.
    void final_norm(const std::vector<size_t>& rows);
    RmsNormParams residual_norm(const float* weight, size_t first, size_t rows) const;
    void head(size_t rows, float* host);
    float* pinned_logits(size_t rows);
    void flush_logits();
    // y [m, ldy] (columns [0, w.rows)) = x [m, w.cols] w^T, w being matrix `tensor` of `unit`.
    void linear(size_t unit, const std::string& tensor, const Matrix& w, const void* x, size_t m, float* y, size_t ldy);
    // Each part's rows at their place in y [m, ldy].
    void linear(size_t unit, const TensorStack& tensors, const StackedMatrix& w, const void* x, size_t m, float* y,
                size_t ldy);
    // The product with matrix `tensor` of `unit`, at once when it is on the device (w.data),
    // else block by block as its rows arrive from the ring, each slot released after its
    // product: product(part, row0), part being rows [row0, row0 + part.rows) of w, on the device.
    // y [m, ldy] = x [m, w.cols] w^T for w on the device, whatever its weight type (gemm.h's
    // weight_product, with the plan's dequantization workspace).
    void product(const Matrix& w, const void* x, size_t m, float* y, size_t ldy);
    // Whether `tensor` of `unit` is bf16 rewritten as f16 on arrival (to_f16).
    bool converted(size_t unit, const std::string& tensor) const;
    template <typename Product>
    void by_row_blocks(size_t unit, const std::string& tensor, const Matrix& w, Product&& product);
    // The next piece, unit `unit` whole, on the device (rewritten as f16 when it must be); the
    // caller releases it.
    uint8_t* acquire_whole(size_t unit);
    void skip_unit(size_t unit);
    // The host waits until the compute stream's work so far is done, sleeping in the driver
    // (a blocking-sync event) whatever the device's flags are.
    void wait_compute();

    // MoE layers (cuda_engine_moe.cpp).
    // Layer l is a MoE layer that streams: its dense piece, then its routed experts.
    bool moe_streamed(size_t l) const;
    // The next piece, bytes [offset, offset + bytes) of `unit`, on the device (f16 where it
    // must be); the caller releases it.
    uint8_t* acquire_piece(size_t unit, uint64_t offset, uint64_t bytes);
    ExpertWeights expert_on_device(size_t l, uint32_t e, const uint8_t* data) const;
    void moe_layer(size_t l, const SlotPass& p);
    // The MLP of MoE layer l over the pass's m rows into out: routed experts and shared expert.
    void moe_block(size_t l, const LayerWeights& w, size_t m);
    // The router and the routing of xn's m rows; the tokens grouped by expert, on the host and
    // (moe_rows, moe_row_weights) on the device.
    ExpertBatches route(const LayerWeights& w, size_t m);
    // The expert's tokens, rows [first, first + rows) of moe_rows, through it into out.
    void run_expert(const ExpertWeights& e, size_t first, size_t rows);
    void shared_expert(const LayerWeights& w, size_t m);
    void mlp_into_moe_y(const StackedMatrix& gate_up, const Matrix& down, const void* x, size_t m, size_t inter);
    // For each of the layer's experts b.experts[i]: from[i], its bytes in the expert cache (a
    // hit), or keep[i], the cache slot its streamed bytes are copied to.
    void cache_experts(size_t l, const ExpertBatches& b, std::vector<const uint8_t*>& from, std::vector<uint8_t*>& keep);
    void start_expert_cache();

    // Choosing the token (cuda_engine_sample.cpp), on the logits of the last pass's last row.
    void penalize(const std::vector<int32_t>& history, float penalty);
    int32_t pick_greedy();
    int32_t pick_top_k(Sampler& sampler, int k);
    int32_t pick_from_all(Sampler& sampler);

    void track_memory();
    uint64_t held() const;
    template <typename T = void>
    T* fixed(Fixed f) const {
        return reinterpret_cast<T*>(fixed_buf.as<uint8_t>() + plan.fixed.at(f));
    }
    // f16 activations: the per-row powers of 2 that keep SwiGLU's output within f16 (the down
    // product's rows are multiplied back by them); none in bf16 and f32.
    float* down_scale() const { return act == Elem::f16 ? fixed<float>(Fixed::row_scale) : nullptr; }

    const SplitModel& model;
    const ModelConfig& c;
    CudaEngineOptions opt;
    cudaDeviceProp prop{};
    std::string device_name;
    Elem act = Elem::f32; // the compute type: matrix inputs and (without --kv-dtype) the KV cache
    Elem kv_elem = Elem::f32; // the KV cache's type
    KvAttend attend = KvAttend::gpu; // cache in host memory: attention on the CPU, or the GPU over the link
    std::unique_ptr<ThreadPool> attend_pool; // the CPU attention's threads
    PinnedBuffer h_q;    // [batch, q_dim] f32: the pass's q, for the CPU attention
    PinnedBuffer h_out;  // [batch, q_dim] f32: its output
    PinnedBuffer h_attn; // [batch, q_dim] act: the output in the compute type, on its way back
    CudaEvent q_ready;   // h_q holds the layer's q
    std::unique_ptr<CudnnAttention> cudnn; // made when some prefill part may take cuDNN's attention
    uint64_t cudnn_parts = 0;              // attention calls (a sequence's run in one layer) cuDNN ran
    std::string attention_noted;           // the last choice -v was told of
    bool to_f16 = false;  // bf16 weights on a GPU without bf16: rewritten as f16 on arrival
    bool quantized = false; // some matrix is not in the compute type: the plan has a dequantization workspace
    uint64_t budget = 0, ctx = 0;
    size_t batch = 512;
    TreeRows tree;          // a draft tree in slot 0's cache (forward_tree), until keep_rows
    bool tree_pass = false; // the pass under way is forward_tree's
    bool in_pass = false; // set while a pass runs: an exception inside one leaves the ring mid-sequence
    MemoryPlanInput plan_in;
    MemoryPlan plan;

    cudaStream_t compute = nullptr;
    std::function<void(size_t m, size_t layer, size_t layers)> on_layer; // the engine's layer_done
    GpuSpans unit_spans{trace::Track::compute}; // each unit's work on the compute stream, for the trace
    // A unit's span on the compute stream, around fn's work (only when tracing).
    template <class Fn>
    void traced(size_t unit, Fn&& fn) {
        if (!trace::enabled()) return fn();
        unit_spans.begin(compute, model.manifest().units[unit].layout.name);
        fn();
        unit_spans.end(compute);
    }
    cublasHandle_t blas = nullptr;
    CudaEvent staged;        // the last pass's host-to-device copies of inputs are done
    CudaEvent logits_copied; // the last pass's logits have reached h_logits
    CudaEvent drained;       // recorded by wait_compute
    size_t free_at_start = 0;
    uint64_t runtime_overhead = 0; // device memory cuBLAS took beside rabbit's buffers (measured)
    uint64_t used_growth = 0, pinned_bytes = 0, peak_held = 0;

    std::unique_ptr<MmapUnitSource> files;
    std::unique_ptr<ThreadPool> fill;
    const UnitRoles& roles = model.roles();
    // A sequence slot: its position, its RoPE tables (the cos/sin of its forward under way)
    // and its KV cache, K of every layer then V of every layer, each layer
    // [kv_heads][ctx][head_dim] act (kv_layer_bytes), device-visible: on the GPU, or pinned.
    struct SeqSlot {
        explicit SeqSlot(const ModelConfig& c) : rope(c) {}
        size_t pos = 0;
        RopeTables rope;
        uint8_t* k = nullptr;
        uint8_t* v = nullptr;
        uint8_t* host_k = nullptr; // in host memory: the same cache as the CPU addresses it
        uint8_t* host_v = nullptr;
    };
    std::vector<SeqSlot> seq; // the plan's sequences
    size_t used_slots = 1;    // of them, those set_slots asked for

    // The weights as the passes read them, built once: per layer, its tensors in its unit
    // (found by name at init) and its LayerWeights on the device (vectors in `vectors`;
    // matrices in its resident buffer, or null: placed on each arrival by device_weights, or
    // streamed in row blocks); the output projection likewise; the embedding table in its
    // mapping (rows gathered on the host) and, when it is resident (tied), on the device.
    std::vector<LayerTensors> layer_t;
    std::vector<LayerWeights> layer_w;
    const UnitTensor* head_t = nullptr; // lm_head, or the tied embedding
    Matrix head_w;
    Matrix embed_host, embed_dev;
    const float* final_norm_w = nullptr; // [hidden] f32, in `vectors`

    DeviceBuffer fixed_buf; // the plan's fixed buffers (activations, workspaces, vectors), carved by plan.fixed
    // Pinned host twins of fixed buffers that cross the bus every pass, each its twin's size:
    PinnedBuffer h_embed;  // Fixed::x: the gathered embedding rows
    PinnedBuffer h_rope;   // Fixed::cos then Fixed::sin
    PinnedBuffer h_ids;    // Fixed::ids
    PinnedBuffer h_tree;   // Fixed::tree
    PinnedBuffer h_penal;  // Fixed::penalty_ids
    PinnedBuffer h_result; // Fixed::topk_values, then Fixed::topk_ids and Fixed::picked
    PinnedBuffer h_logits; // Fixed::logits, grown when a pass asks for more rows
    float* pending_logits = nullptr; // where the last pass's h_logits rows go, once copied
    size_t pending_rows = 0;
    DeviceBuffer kv_dev;
    PinnedBuffer kv_host;
    uint64_t kv_layer_bytes = 0;
    size_t ring_slots = 0;              // the plan's ring slots (0: nothing streams)
    uint64_t ring_slot_bytes = 0;       // each the plan's size
    std::vector<DeviceBuffer> resident; // per unit: its data section on the GPU, or empty
    std::vector<bool> streamed_whole;   // per unit: streamed as one piece
    std::vector<PinnedBuffer> tier;     // per unit: its pinned copy (--ram-budget), or empty
    std::unique_ptr<UnitPieces> pieces;
    std::unique_ptr<CudaTransport> transport;
    // MoE: the routing's way back to the host and the grouped tokens' way out, each
    // [batch, experts_per_tok] int32 then f32 (route_ids and route_weights; moe_rows and
    // moe_row_weights); the expert cache (the plan's allocation, in slots of the largest
    // expert) and what the passes ran.
    PinnedBuffer h_route, h_moe;
    DeviceBuffer expert_buf;
    uint64_t expert_slot_bytes = 0; // 0: no expert cache
    ExpertCache expert_cache;
    std::unordered_map<uint64_t, size_t> cache_slot; // layer << 32 | expert: its slot
    std::vector<size_t> free_cache_slots;
    uint64_t experts_run = 0, expert_hits = 0;
    std::unique_ptr<Ring> ring; // last: stops its loader before what it reads goes
};

} // namespace rabbit
