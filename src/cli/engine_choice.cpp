// SPDX-License-Identifier: Apache-2.0
#include "cli/engine_choice.h"

#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/system.h"
#include "format/split_model.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#include "backend/cuda/device.h"
#include "backend/cuda/gemm.h"

#include <cuda_runtime.h>
#endif

namespace rabbit {

namespace {

Error usage(const std::string& message) { return Error(ExitCode::usage, message); }

// cuda:N's N, or 0 for plain cuda.
int device_index(const std::string& device) {
    if (device.empty() || device == "cuda") return 0;
    const std::string n = device.substr(5); // past "cuda:"
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 3)
        throw usage("--device " + device + ": expected cuda:N with N a GPU number");
    return std::stoi(n);
}

} // namespace

DeviceChoice choose_device(const std::string& device) {
    if (device == "cpu") return {};
    if (!device.empty() && device != "cuda" && device.rfind("cuda:", 0) != 0)
        throw usage("--device " + device + ": expected cpu, cuda or cuda:N");
    const int index = device_index(device);
#ifdef RABBIT_CUDA_EMULATOR
    // A test build: its CUDA device is the emulator (tests/cuda_emu), used only when asked for.
    if (device.empty()) {
        spdlog::info("this rabbit's CUDA device is emulated (a test build): running on the CPU; --device cuda uses it");
        return {};
    }
    spdlog::warn("--device {}: an emulated CUDA device (a test build): its results are not a GPU's, nor its timings", device);
#endif
#ifdef RABBIT_HAVE_CUDA
    // Only the device asked for is probed (the default: devices in order until one is usable).
    if (device.empty()) {
        std::string problem;
        if (const auto d = first_usable_cuda_device(&problem)) return {true, d->index};
        spdlog::info("no usable GPU ({}): running on the CPU", problem);
        return {};
    }
#else
    if (device.empty()) {
        spdlog::info("this rabbit was built without CUDA: running on the CPU");
        return {};
    }
#endif
    check_gpu("--device " + device, index, "; use --device cpu");
    return {true, index};
}

void check_gpu(const std::string& option, int index, const std::string& advice) {
#ifdef RABBIT_HAVE_CUDA
    std::string problem;
    if (cuda_device_count(&problem) == 0) throw usage(option + ": no usable GPU (" + problem + ")" + advice);
    const CudaDevice& d = probe_cuda_device(index);
    if (d.usable) return;
    throw usage(option + ": no usable GPU " + std::to_string(index) + " (" +
                (d.name.empty() ? d.problem : d.name + ": " + d.problem) + ")" + advice);
#else
    (void)index;
    throw usage(option + ": this rabbit was built without the CUDA backend" + advice);
#endif
}

std::optional<int> first_usable_gpu() {
#ifdef RABBIT_HAVE_CUDA
    std::string problem;
    if (const auto d = first_usable_cuda_device(&problem)) return d->index;
#endif
    return std::nullopt;
}

MadeEngine make_engine(const SplitModel& model, const EngineRequest& r) {
    MadeEngine made;
    if (!r.device.cuda) {
        EngineOptions eo;
        eo.threads = r.threads;
        eo.act_quant = r.act_quant;
        eo.ram_budget = r.ram_budget;
        eo.ctx = r.ctx;
        eo.batch = r.batch;
        eo.kv_dtype = r.kv_dtype.value_or(DType::f32);
        auto cpu = std::make_unique<CpuEngine>(model, eo);
        made.cpu = cpu.get();
        made.engine = std::move(cpu);
        return made;
    }
#ifdef RABBIT_HAVE_CUDA
    CudaEngineOptions co;
    co.device = r.device.index;
    co.vram_budget = r.vram_budget;
    co.ram_budget = r.ram_budget;
    co.ctx = r.ctx;
    co.ring_slots = r.ring_slots;
    co.kv = r.kv;
    co.kv_dtype = r.kv_dtype;
    co.kv_attend = r.kv_attend;
    co.attention = r.attention;
    co.batch = r.batch;
    co.max_resident = r.max_resident;
    co.expert_cache = r.expert_cache;
    co.sequences = uint32_t(std::max<size_t>(1, r.sequences));
    co.all_resident = r.all_resident;
    co.draft_bytes = r.draft_bytes;
    auto cuda = std::make_unique<CudaEngine>(model, co);
    made.cuda = cuda.get();
    made.engine = std::move(cuda);
    return made;
#else
    throw usage("--device cuda: this rabbit was built without the CUDA backend");
#endif
}

std::optional<PlanningBudget> default_gpu_budget() {
#ifdef RABBIT_HAVE_CUDA
    std::string problem;
    if (const auto d = first_usable_cuda_device(&problem))
        if (const auto b = default_cuda_budget(*d)) return PlanningBudget{b->budget, b->description};
#endif
    return std::nullopt;
}

uint64_t runtime_overhead(DType weights) {
#ifdef RABBIT_HAVE_CUDA
    std::string problem;
    if (const auto d = first_usable_cuda_device(&problem); d && cudaSetDevice(d->index) == cudaSuccess) {
        const Elem type = weights == DType::f32 ? Elem::f32 : d->cc_major < 8 ? Elem::f16 : Elem::bf16;
        return measure_cublas_overhead(type) + k_kernel_code_reserve;
    }
#endif
    (void)weights;
    return k_estimated_cublas_bytes + k_kernel_code_reserve;
}

ActQuant act_quant_of(const std::string& name) { return name == "q8" ? ActQuant::q8 : ActQuant::f32; }

void add_act_quant_option(CLI::App* sub, std::string& name) {
    sub->add_option("--act-quant", name,
                    "CPU, quantized weights: f32 keeps the activations f32 (exact: the dequantized model's "
                    "output; default) or q8 rounds them to 8-bit blocks as llama.cpp does (faster prefill)")
        ->check(CLI::IsMember({"f32", "q8"}));
}

} // namespace rabbit
