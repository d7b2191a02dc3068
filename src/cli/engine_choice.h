// SPDX-License-Identifier: Apache-2.0
// How `run`, `bench` and `inspect` choose and make an engine: the device (--device, or the
// first usable GPU), the one check that a GPU is usable, the one default RAM budget, and one
// make_engine for both engines. Here, not in rabbit_core: it needs the CUDA engine, which the
// core library does not link.
#pragma once

#include "backend/cpu/kernels.h"
#include "backend/cuda/attention_choice.h"
#include "common/dtype.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/memory_plan.h"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace rabbit {

class SplitModel;
class CpuEngine;
class CudaEngine;

struct DeviceChoice {
    bool cuda = false;
    int index = 0;
};

// --device: cpu, cuda, cuda:N; by default the first usable GPU, else the CPU with a notice.
DeviceChoice choose_device(const std::string& device);

// The one GPU check: GPU `index` runs this binary's kernels, else a usage error that begins
// with `option` (what asked for the GPU: "--device cuda:1", "--backend cuda") and ends with
// `advice` ("; use --device cpu", or nothing).
void check_gpu(const std::string& option, int index, const std::string& advice);

// The first usable GPU's index, probing in order; nullopt without one (or without CUDA).
std::optional<int> first_usable_gpu();

// What an engine is made from; the GPU's settings are ignored on the CPU and the reverse.
struct EngineRequest {
    DeviceChoice device;
    uint64_t ram_budget = 0; // bytes of weights kept in (pinned, for the GPU) memory across tokens
    uint64_t ctx = 0;        // 0: the model's maximum
    size_t batch = 512;      // most prompt tokens through the layers at once
    size_t threads = 0;      // CPU: 0 for every processor this process may use
    ActQuant act_quant = ActQuant::f32; // CPU: how quantized weights take the activations
    uint64_t vram_budget = 0; // GPU: 0 for the device's free memory less a margin
    uint32_t ring_slots = 2;  // GPU
    KvPlace kv = KvPlace::automatic;    // GPU
    std::optional<DType> kv_dtype;      // the KV cache's type; none: f32 on the CPU, the compute type on the GPU
    KvAttend kv_attend = KvAttend::automatic; // GPU, cache in host memory: where decode attention runs
    PrefillAttention attention = PrefillAttention::automatic; // GPU: long prefill parts on cuDNN or rabbit's kernel
    uint64_t max_resident = UINT64_MAX; // GPU: most bytes of weights resident in VRAM
    uint64_t expert_cache = UINT64_MAX; // GPU, a MoE model: most bytes of spare VRAM keeping experts (0: none)
    size_t sequences = 1;     // GPU: KV caches to plan, for batched generation (--parallel)
    bool all_resident = false; // GPU: a draft model, every unit resident (CudaEngineOptions::all_resident)
    uint64_t draft_bytes = 0;  // GPU: a resident draft's share of the budget (CudaEngineOptions::draft_bytes)
};

// The engine, and the same engine as the type it is, for what only one of them reports.
struct MadeEngine {
    std::unique_ptr<Engine> engine;
    CpuEngine* cpu = nullptr;
    CudaEngine* cuda = nullptr;
};

MadeEngine make_engine(const SplitModel& model, const EngineRequest& request);

// --act-quant's values: "f32" (the default, exact) or "q8" (llama.cpp's 8-bit activations).
ActQuant act_quant_of(const std::string& name);
// The --act-quant option of run and bench, into `name` (checked to be f32 or q8).
void add_act_quant_option(CLI::App* sub, std::string& name);

// inspect's planning without an engine: the default --vram-budget of the first usable GPU
// (nullopt without one), and the device memory the CUDA runtime takes beside the plan's
// buffers (cuBLAS measured on that GPU as the engine measures it, else the planner's
// estimate) with the reserve for rabbit's own kernels.
struct PlanningBudget {
    uint64_t budget = 0;
    std::string source; // "free memory of GPU 0 (...) less a 512 MiB margin"
};
std::optional<PlanningBudget> default_gpu_budget();
uint64_t runtime_overhead(DType weights);

} // namespace rabbit
