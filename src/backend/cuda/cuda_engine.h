// SPDX-License-Identifier: Apache-2.0
// The forward pass on a GPU, streamed. The planner (engine/memory_plan.h) splits the VRAM
// budget between what is always there (activations, workspaces, every layer's norms and
// biases, the KV cache when it fits, the ring's device slots) and units kept resident; the
// rest cycles through the ring (stream/ring.h) for every pass, piece k + 1 on its way while
// piece k computes. --ram-budget keeps streamed units in pinned host memory, so they skip the
// disk and the staging copy. The same unit files, streaming order and config flags as the CPU
// engine; the CUDA kernels (kernels/) and cuBLAS do the arithmetic.
#pragma once

#include "backend/cuda/attention_choice.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/memory_plan.h"
#include "format/split_model.h"
#include "stream/ring.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace rabbit {

struct CudaEngineOptions {
    int device = 0;
    uint64_t vram_budget = 0;   // bytes of GPU memory to use; 0: the device's free memory less a margin
    uint64_t ram_budget = 0;    // bytes of streamed units kept in pinned host memory
    uint64_t ctx = 0;           // 0: the model's maximum, lowered to what the memory holds
    uint32_t ring_slots = 2;
    KvPlace kv = KvPlace::automatic;
    std::optional<DType> kv_dtype;            // the KV cache's type (f32, bf16, f16); none: the compute type
    KvAttend kv_attend = KvAttend::automatic; // cache in host memory: decode attention on the CPU or the GPU
    PrefillAttention attention = PrefillAttention::automatic; // --attention: long prefill parts on cuDNN or rabbit's kernel
    size_t batch = 512;         // most tokens through the layers at once
    uint64_t max_slot = 0;      // cap on a ring slot's bytes (0: the planner's choice); for tests
    uint64_t max_resident = UINT64_MAX; // most bytes of weights kept resident in VRAM (rabbit bench's "none", "half")
    uint64_t expert_cache = UINT64_MAX; // a MoE model: most bytes of the VRAM left over that keep experts (0: none)
    size_t loader_threads = 4;  // threads sharing the copy of a piece from the files into pinned memory
    uint32_t sequences = 1;     // KV caches planned, one per sequence slot: the most set_slots takes
                                // (lowered, with a message, to what fits)
    // Speculative decoding's draft model: every unit resident, no ring, the KV cache on the GPU
    // for ctx positions (which must be given); a budget too small for that is exit 6.
    bool all_resident = false;
    // A target beside such a draft, made first on the same GPU: its resident_share(). It is
    // part of the budget (which the plan counts, MemoryPlanInput::draft_bytes) and missing from
    // the free memory this engine finds, so it is added back to that.
    uint64_t draft_bytes = 0;
};

struct CudaEngineStats {
    std::string device;           // "NVIDIA H100 80GB HBM3 (sm_90)"
    uint64_t budget = 0;
    uint64_t peak_device_bytes = 0; // the most device memory this engine's buffers held (cudaMalloc)
    uint64_t device_used_growth = 0; // the most the device's used memory (cudaMemGetInfo) grew since the engine started
    uint64_t pinned_bytes = 0;      // pinned host memory: RAM tier, ring staging, host KV cache
    RingStats ring;
    KvAttend kv_attend = KvAttend::gpu; // where attention over the KV cache runs (cpu: a host cache, on the CPU)
    uint64_t expert_cache_bytes = 0;    // a MoE model: VRAM keeping experts across passes
    uint64_t expert_cache_held = 0;     // experts it holds now
    bool cudnn = false;                 // cuDNN's fused attention was started for long prefill parts
    uint64_t cudnn_parts = 0;           // attention calls (one sequence's run in one layer) it ran
};

class CudaEngine : public Engine {
public:
    CudaEngine(const SplitModel& model, const CudaEngineOptions& options);
    ~CudaEngine() override;

    const ModelConfig& config() const override;
    uint64_t context() const override;
    size_t position() const override;
    void reset() override;
    void truncate(size_t n) override;
    void forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) override;
    size_t slots() const override;
    size_t max_slots() const override;
    void set_slots(size_t n) override;
    size_t slot_position(size_t slot) const override;
    void reset_slot(size_t slot) override;
    void forward_slots(const std::vector<SlotTokens>& seqs, std::vector<float>& logits) override;
    // At most k_tree_rows rows of tree at once.
    void forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) override;
    void keep_rows(size_t base, const std::vector<size_t>& rows) override;
    int32_t step(const int32_t* tokens, size_t n, Sampler& sampler, const std::vector<int32_t>& history,
                 std::vector<float>* all_logits) override;

    // The device memory this engine holds beside a target on the same GPU: its allocations
    // (whole pages) and its own cuBLAS handle's memory as measured; the kernels' code and the
    // driver's reserve are the device's, counted once, in the target's plan.
    uint64_t resident_share() const;
    const MemoryPlanInput& plan_input() const;
    const MemoryPlan& plan() const;
    CudaEngineStats stats() const;
    StreamStats stream_stats() const override;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace rabbit
