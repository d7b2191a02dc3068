// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's setup: the device, the plan, the allocations the plan lists (and nothing
// else on the device), the loads, each layer's LayerWeights, and the ring.
#include "backend/cuda/cuda_engine_impl.h"

#include "attention.cuh"
#include "convert.cuh"
#include "moe.cuh"

#include "backend/cuda/check.h"
#include "backend/cuda/device.h"
#include "backend/cuda/gemm.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/system.h"
#include "common/units.h"
#include "engine/rope.h"
#include "stream/pieces.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

namespace rabbit {

namespace {

constexpr uint64_t k_load_chunk = 64ull << 20; // staging for uploads at load time

} // namespace

Elem elem_of(DType t) {
    switch (t) {
    case DType::f32: return Elem::f32;
    case DType::f16: return Elem::f16;
    case DType::bf16: return Elem::bf16;
    default: break;
    }
    RABBIT_CHECK(false, std::string("no kernel element type for ") + dtype_name(t));
    return Elem::f32;
}

CudaEngine::Impl::~Impl() {
    ring.reset();
    if (compute) cudaStreamSynchronize(compute);
    cudnn.reset();
    transport.reset();
    if (blas) cublasDestroy(blas);
    staged = CudaEvent();
    logits_copied = CudaEvent();
    drained = CudaEvent();
    if (compute) cudaStreamDestroy(compute);
}

void CudaEngine::Impl::init() {
    if (c.is_moe() && c.num_experts > uint32_t(k_moe_max_experts))
        throw unsupported(model.dir() + "/manifest.json",
                          fmt::format("{} experts per layer: the CUDA routing takes at most {}; use --device cpu",
                                      c.num_experts, k_moe_max_experts));
    select_device();
    choose_compute_type();
    choose_kv_type();
    if (!attention_supports_head_dim(int(c.head_dim)))
        throw unsupported(model.dir() + "/manifest.json",
                          fmt::format("head_dim {} has no CUDA attention kernel; use --device cpu", c.head_dim));
    batch = std::max<size_t>(1, opt.batch);
    make_stream_and_blas();
    start_cudnn(); // before the measure: its handle's memory is the runtime's
    measure_runtime_overhead();
    plan_memory_and_context();
    choose_kv_attend(); // before allocate: a cache the CPU reads is not write-combined
    files = std::make_unique<MmapUnitSource>(model, 0);
    fill = std::make_unique<ThreadPool>(std::max<size_t>(1, opt.loader_threads));
    allocate();
    allocate_staging();
    allocate_host_attention();
    load_vectors();
    load_resident();
    place_weights();
    start_ring(); // last: its loader thread shares `fill` with the loads above
    track_memory();
}

void CudaEngine::Impl::select_device() {
    // Only the device asked for is probed, once per process (its context made there).
    const CudaDevice& d = probe_cuda_device(opt.device);
    if (d.name.empty()) throw Error(ExitCode::usage, fmt::format("--device cuda:{}: {}", opt.device, d.problem));
    if (!d.usable) throw Error(ExitCode::unsupported, fmt::format("GPU {} ({}): {}", opt.device, d.name, d.problem));
    RABBIT_CUDA_CHECK(cudaSetDevice(opt.device));
    RABBIT_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
    device_name = fmt::format("{} (sm_{}{})", prop.name, prop.major, prop.minor);
    size_t total = 0;
    RABBIT_CUDA_CHECK(cudaMemGetInfo(&free_at_start, &total));
}

void CudaEngine::Impl::choose_compute_type() {
    // The weights' type decides the compute type. Quantized (or mixed) weights compute in bf16,
    // as the models they come from mostly were made in: their products read the blocks
    // (decode) or tiles dequantized to bf16 (prefill); f16 where the GPU has no bf16.
    const Manifest& man = model.manifest();
    const auto wt = dtype_from_name(man.dtype);
    if (man.dtype != "mixed" && (!wt || !is_weight_dtype(*wt)))
        throw unsupported(model.dir() + "/manifest.json", "weights of type " + man.dtype + " have no CUDA kernels");
    quantized = !wt || is_quant_dtype(*wt);
    act = quantized ? Elem::bf16 : elem_of(*wt);
    if (act == Elem::bf16 && prop.major < 8) {
        act = Elem::f16;
        to_f16 = true;
        spdlog::info("{} has no bf16 arithmetic: {} in f16{}", device_name, quantized ? "computing" : "bf16 weights",
                     quantized ? "" : ", converted as they arrive");
    }
}

void CudaEngine::Impl::make_stream_and_blas() {
    RABBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    staged = CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync);
    logits_copied = CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync);
    drained = CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync);
    RABBIT_CUBLAS_CHECK(cublasCreate(&blas));
    RABBIT_CUBLAS_CHECK(cublasSetStream(blas, compute));
    RABBIT_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH)); // no TF32: f32 stays f32
    RABBIT_CUDA_CHECK(attention_setup(prop.sharedMemPerBlockOptin));
}

void CudaEngine::Impl::measure_runtime_overhead() {
    runtime_overhead = cublas_overhead(blas, compute, act, free_at_start);
    spdlog::debug("cuBLAS took {} of device memory (handle and kernels)", format_bytes(runtime_overhead));
}

void CudaEngine::Impl::choose_budget() {
    // A draft model made first on this GPU holds draft_bytes of what was free: the budget's too.
    const uint64_t free_b = free_at_start + opt.draft_bytes;
    if (opt.vram_budget) {
        budget = opt.vram_budget;
        // More than the device has free would fail in the middle of the load: use what is free.
        if (budget > free_b) {
            spdlog::warn("--vram-budget {} is more than the {} free on {}: using {}", format_bytes(budget),
                         format_bytes(free_b), device_name, format_bytes(free_b));
            budget = free_b;
        }
        return;
    }
    size_t total_b = 0, unused = 0;
    RABBIT_CUDA_CHECK(cudaMemGetInfo(&unused, &total_b));
    const uint64_t margin = cuda_budget_margin(total_b);
    budget = free_b > margin ? free_b - margin : 0;
}

void CudaEngine::Impl::fill_plan_input() {
    plan_in.config = c;
    plan_in.units = plan_units(model.manifest().units);
    plan_in.weight_dtype = act == Elem::f32 ? DType::f32 : DType::bf16;
    plan_in.dequant = quantized;
    plan_in.budget = budget;
    plan_in.ring_slots = std::max<uint32_t>(1, opt.ring_slots);
    plan_in.prefill_tokens = uint32_t(batch);
    plan_in.kv = opt.kv;
    plan_in.kv_dtype = kv_elem == Elem::f32 ? DType::f32 : kv_elem == Elem::f16 ? DType::f16 : DType::bf16;
    plan_in.max_slot = opt.max_slot;
    plan_in.max_resident = opt.max_resident;
    plan_in.expert_cache = opt.expert_cache;
    plan_in.overhead = runtime_overhead + k_kernel_code_reserve;
    plan_in.draft_bytes = opt.draft_bytes;
    if (opt.all_resident) plan_in.kv = KvPlace::gpu;
}

void CudaEngine::Impl::plan_all_resident() {
    // A draft model runs for every drafted token: streamed, it would cost a ring's worth of
    // copies each time, so it is on the GPU whole or not at all (the caller then runs it on the
    // CPU, or refuses).
    RABBIT_CHECK(opt.ctx > 0, "an engine with every unit resident is given its context");
    ctx = opt.ctx;
    plan_in.ctx = ctx;
    plan_in.sequences = 1;
    plan_in.budget = UINT64_MAX / 4; // the plan with everything resident, whatever it takes
    plan = plan_memory(plan_in);
    plan_in.budget = budget;
    RABBIT_CHECK(plan.fits && plan.ring_bytes == 0, "a plan without a ring for an unbounded budget");
    if (plan.device_bytes > budget)
        throw Error(ExitCode::resources,
                    fmt::format("{} resident in VRAM needs {} (weights {}, KV cache {} for {} positions, buffers and "
                                "runtime); the budget is {}",
                                model.dir(), format_bytes(plan.device_bytes), format_bytes(plan.resident_bytes),
                                format_bytes(plan.kv_cache_bytes), ctx, format_bytes(budget)));
}

void CudaEngine::Impl::plan_memory_and_context() {
    checked_context(c, opt.ctx);
    choose_budget();
    fill_plan_input();
    if (opt.all_resident) return plan_all_resident();
    // The context: as asked, else the model's maximum while its KV cache fits on the GPU or
    // in half the host's available memory, halving it until it does.
    // Many sequences (batched generation): fewer of them, at the context asked for, until
    // their caches fit.
    ctx = opt.ctx ? opt.ctx : c.max_context();
    const uint32_t asked = std::max<uint32_t>(1, opt.sequences);
    uint32_t sequences = asked;
    const uint64_t host_room = available_memory() / 2;
    for (;;) {
        plan_in.ctx = ctx;
        plan_in.sequences = sequences;
        plan = plan_memory(plan_in);
        const uint64_t on_host = (sequences - plan.kv_gpu_sequences) * plan.kv_sequence_bytes;
        if (plan.fits && on_host <= host_room) break;
        if (sequences > 1 && (opt.ctx || ctx <= 512)) {
            sequences -= std::max<uint32_t>(1, sequences / 8);
            continue;
        }
        if (opt.ctx || ctx <= 512) break;
        ctx /= 2;
    }
    if (sequences < asked)
        spdlog::warn("--parallel {}: the KV caches of only {} sequences of {} positions fit; running {} at once", asked,
                     sequences, ctx, sequences);
    if (!opt.ctx && ctx < c.max_context())
        spdlog::info("context {} positions (the model allows {}; the KV cache for more would not fit; --ctx sets it)",
                     ctx, c.max_context());
    const std::string beside =
        opt.draft_bytes ? fmt::format(" beside a resident draft model's {}", format_bytes(opt.draft_bytes)) : "";
    if (!plan.fits)
        throw Error(ExitCode::resources,
                    fmt::format("--vram-budget {} is too small for {} at context {}{}: the minimum is {} (lower --ctx or "
                                "--ring-slots, or --kv-cache host, to need less)",
                                format_bytes(budget), model.dir(), ctx, beside, format_bytes(plan.minimum_budget)));
}

void CudaEngine::Impl::allocate() {
    // The device allocations, as the plan lists them, each of the size it gives: the planner
    // is the only source of sizes (the ring's slots are made by start_ring, of this size).
    resident.resize(model.manifest().units.size());
    ring_slots = 0;
    for (const PlannedAllocation& a : plan.allocations) {
        switch (a.kind) {
        case AllocationKind::fixed: fixed_buf = DeviceBuffer(a.bytes); break;
        case AllocationKind::kv_cache: kv_dev = DeviceBuffer(a.bytes); break;
        case AllocationKind::unit: resident[a.unit] = DeviceBuffer(a.bytes); break; // filled by load_resident
        case AllocationKind::expert_cache: expert_buf = DeviceBuffer(a.bytes); break;
        case AllocationKind::ring_slot:
            ++ring_slots;
            ring_slot_bytes = a.bytes;
            break;
        }
    }
    RABBIT_CUBLAS_CHECK(cublasSetWorkspace(blas, fixed(Fixed::cublas_workspace), plan.fixed.size(Fixed::cublas_workspace)));

    // The KV cache: on the GPU, or in pinned host memory that the kernels reach over the bus,
    // write-combined when only the GPU touches it (it writes it in whole bursts), cached when the
    // CPU attends it (--kv-attend cpu: write-combined memory is slow to read). K of every
    // layer, then V of every layer.
    // Each sequence's: the first kv_gpu_sequences on the GPU, the rest on the host.
    RABBIT_CHECK(plan.kv_sequence_bytes % (2ull * c.num_layers) == 0, "a KV cache that does not split into layers");
    kv_layer_bytes = plan.kv_sequence_bytes / (2ull * c.num_layers);
    const size_t sequences = std::max<uint32_t>(1, plan_in.sequences), on_gpu = plan.kv_gpu_sequences;
    if (on_gpu < sequences) {
        const uint64_t bytes = (sequences - on_gpu) * plan.kv_sequence_bytes;
        kv_host = PinnedBuffer(bytes, true, attend != KvAttend::cpu);
        pinned_bytes += bytes;
        spdlog::info("KV cache{} in pinned host memory ({} for {} positions)",
                     on_gpu ? fmt::format(" of {} of {} sequences", sequences - on_gpu, sequences) : std::string(),
                     format_bytes(bytes), ctx);
    }
    seq.clear();
    for (size_t s = 0; s < sequences; ++s) {
        seq.emplace_back(c);
        uint8_t* base = s < on_gpu ? kv_dev.as<uint8_t>() + s * plan.kv_sequence_bytes
                                   : static_cast<uint8_t*>(kv_host.device_pointer()) + (s - on_gpu) * plan.kv_sequence_bytes;
        seq.back().k = base;
        seq.back().v = base + kv_layer_bytes * c.num_layers;
        if (s >= on_gpu) { // the CPU's view of the same memory, for --kv-attend cpu
            seq.back().host_k = kv_host.as<uint8_t>() + (s - on_gpu) * plan.kv_sequence_bytes;
            seq.back().host_v = seq.back().host_k + kv_layer_bytes * c.num_layers;
        }
    }
    used_slots = 1;
}

void CudaEngine::Impl::allocate_staging() {
    // Pinned host buffers for what crosses the bus for every pass, each of its device twin's
    // planned size.
    const FixedLayout& f = plan.fixed;
    h_penal = PinnedBuffer(f.size(Fixed::penalty_ids), false);
    h_embed = PinnedBuffer(f.size(Fixed::x), false);
    h_rope = PinnedBuffer(f.size(Fixed::cos) + f.size(Fixed::sin), false);
    h_ids = PinnedBuffer(f.size(Fixed::ids), false);
    h_tree = PinnedBuffer(f.size(Fixed::tree), false);
    h_result = PinnedBuffer(f.size(Fixed::topk_values) + f.size(Fixed::topk_ids) + f.size(Fixed::picked), false);
    h_logits = PinnedBuffer(f.size(Fixed::logits), false); // grown when a pass asks for more rows
    if (c.is_moe()) {
        h_route = PinnedBuffer(f.size(Fixed::route_ids) + f.size(Fixed::route_weights), false);
        h_moe = PinnedBuffer(f.size(Fixed::moe_rows) + f.size(Fixed::moe_row_weights), false);
        pinned_bytes += h_route.bytes() + h_moe.bytes();
    }
    pinned_bytes += h_embed.bytes() + h_rope.bytes() + h_ids.bytes() + h_result.bytes() + h_penal.bytes() + h_logits.bytes() +
                    h_tree.bytes();
}

void CudaEngine::Impl::load_vectors() {
    // Each layer's tensors, found by name once, here.
    const auto& units = model.manifest().units;
    layer_t.clear();
    for (size_t u : roles.layers) layer_t.push_back(layer_tensors(units[u]));
    // Every f32 vector of every layer and the final norm, packed (each starting at a multiple
    // of k_fixed_align, as vector_bytes plans them), copied once.
    constexpr size_t align_floats = k_fixed_align / sizeof(float);
    std::vector<float> host;
    std::unordered_map<const UnitTensor*, size_t> where; // a vector's first float in `vectors`
    auto take = [&](size_t u) {
        for (const UnitTensor& t : units[u].layout.tensors) {
            if (t.dtype != DType::f32 || t.shape.size() != 1) continue;
            where[&t] = host.size();
            const float* src = reinterpret_cast<const float*>(files->data(u) + t.offset);
            host.insert(host.end(), src, src + t.shape[0]);
            host.resize((host.size() + align_floats - 1) / align_floats * align_floats);
        }
    };
    for (size_t u : roles.layers) take(u);
    take(roles.norm);
    RABBIT_CHECK(host.size() * 4 <= plan.fixed.size(Fixed::vectors), "the norms and biases outgrow their planned buffer");
    float* vectors = fixed<float>(Fixed::vectors);
    RABBIT_CUDA_CHECK(cudaMemcpy(vectors, host.data(), host.size() * 4, cudaMemcpyHostToDevice)); // once, at load
    auto on_device = [&](const UnitTensor* t) -> const float* {
        if (!t) return nullptr;
        const auto it = where.find(t);
        RABBIT_CHECK(it != where.end(), "vector " + t->name + " is not an f32 vector");
        return vectors + it->second;
    };
    // Each layer's LayerWeights starts with its vectors; place_weights adds the matrices.
    layer_w.assign(roles.layers.size(), LayerWeights{});
    for (size_t l = 0; l < roles.layers.size(); ++l) {
        const LayerTensors& t = layer_t[l];
        LayerWeights& w = layer_w[l];
        w.attn_norm = on_device(t.attn_norm);
        w.qkv_bias = on_device(t.qkv_bias);
        w.q_norm = on_device(t.q_norm);
        w.k_norm = on_device(t.k_norm);
        w.o_bias = on_device(t.o_bias);
        w.ffn_norm = on_device(t.ffn_norm);
    }
    final_norm_w = on_device(units[roles.norm].layout.find("norm"));
    RABBIT_CHECK(final_norm_w, "the norm unit has no vector \"norm\"");
}

void CudaEngine::Impl::convert_unit(size_t unit, uint8_t* base, uint64_t begin, uint64_t end) {
    // Only the bf16 matrices (the vectors are f32): quantized blocks and other float types are
    // read as they are.
    for (const UnitTensor& t : model.manifest().units[unit].layout.tensors)
        if (t.dtype == DType::bf16 && t.offset >= begin && t.offset < end)
            RABBIT_CUDA_CHECK(launch_bf16_to_f16(base + t.offset, int64_t(t.numel()), compute));
}

bool CudaEngine::Impl::converted(size_t unit, const std::string& tensor) const {
    if (!to_f16) return false;
    const UnitTensor* t = model.manifest().units[unit].layout.find(tensor);
    return t && t->dtype == DType::bf16;
}

void CudaEngine::Impl::load_resident() {
    // Every resident unit through the same two pinned buffers, so that reading the file
    // overlaps the copy to the GPU.
    const auto& units = model.manifest().units;
    uint64_t largest = 0;
    for (size_t i = 0; i < units.size(); ++i)
        if (resident[i].get()) largest = std::max(largest, units[i].layout.data_size);
    if (largest == 0) return;
    PinnedBuffer stage[2] = {PinnedBuffer(std::min(largest, k_load_chunk), false),
                             PinnedBuffer(std::min(largest, k_load_chunk), false)};
    CudaEvent done[2] = {CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync),
                         CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync)};
    uint64_t k = 0; // chunks so far, across units: the buffers alternate
    for (size_t i = 0; i < units.size(); ++i) {
        if (!resident[i].get()) continue;
        throw_if_interrupted();
        const uint8_t* src = files->data(i);
        const uint64_t bytes = units[i].layout.data_size;
        for (uint64_t off = 0; off < bytes; ++k) {
            const uint64_t n = std::min(k_load_chunk, bytes - off);
            const size_t b = k % 2;
            if (k >= 2) RABBIT_CUDA_CHECK(cudaEventSynchronize(done[b].get()));
            uint8_t* s = stage[b].as<uint8_t>();
            parallel_memcpy(fill.get(), s, src + off, n);
            RABBIT_CUDA_CHECK(cudaMemcpyAsync(resident[i].as<uint8_t>() + off, s, n, cudaMemcpyHostToDevice, compute));
            RABBIT_CUDA_CHECK(cudaEventRecord(done[b].get(), compute));
            off += n;
        }
        wait_compute(); // before the pages go
        files->done_with(i, src, bytes);
        if (to_f16) convert_unit(i, resident[i].as<uint8_t>());
    }
    wait_compute();
}

Matrix CudaEngine::Impl::matrix_on_device(const UnitTensor& t, const uint8_t* data) const {
    Matrix m = tensor_matrix(t, data);
    if (to_f16 && m.dtype == DType::bf16) m.dtype = DType::f16;
    return m;
}

LayerWeights CudaEngine::Impl::device_weights(size_t l, const uint8_t* data) const {
    const LayerTensors& t = layer_t[l];
    LayerWeights w = layer_w[l];
    for (size_t i = 0; i < t.qkv.parts; ++i) w.qkv.part[i] = matrix_on_device(*t.qkv.part[i], data);
    w.o = matrix_on_device(*t.o, data);
    for (size_t i = 0; i < t.gate_up.parts; ++i) w.gate_up.part[i] = matrix_on_device(*t.gate_up.part[i], data);
    if (t.down) w.down = matrix_on_device(*t.down, data);
    if (!t.router) return w;
    // A MoE layer's router and shared expert (its experts: expert_on_device).
    w.router = matrix_on_device(*t.router, data);
    if (!t.shared_gate) return w;
    w.shared_gate = matrix_on_device(*t.shared_gate, data);
    w.shared_gate_up.parts = t.shared_gate_up.parts;
    for (size_t i = 0; i < t.shared_gate_up.parts; ++i)
        w.shared_gate_up.part[i] = matrix_on_device(*t.shared_gate_up.part[i], data);
    w.shared_down = matrix_on_device(*t.shared_down, data);
    return w;
}

void CudaEngine::Impl::place_weights() {
    // Each resident unit's weights placed once, here (layer_t was filled by load_vectors).
    const auto& units = model.manifest().units;
    auto on_gpu = [&](size_t u) { return resident[u].get() ? resident[u].as<uint8_t>() : nullptr; };
    for (size_t l = 0; l < roles.layers.size(); ++l) layer_w[l] = device_weights(l, on_gpu(roles.layers[l]));
    head_t = units[roles.head].layout.find(roles.tied ? "embed" : "lm_head");
    RABBIT_CHECK(head_t && head_t->shape.size() == 2 && head_t->shape[0] == c.vocab_size,
                 "the output projection is not a [vocab, hidden] matrix in " + units[roles.head].layout.name);
    head_w = matrix_on_device(*head_t, on_gpu(roles.head));
    embed_host = unit_matrix(units[roles.embed], files->data(roles.embed), "embed");
    if (resident[roles.embed].get())
        embed_dev = matrix_on_device(*units[roles.embed].layout.find("embed"), on_gpu(roles.embed));
}

std::vector<RingPiece> CudaEngine::Impl::ring_sequence(std::vector<size_t>& streamed) {
    // The streamed units in the order a pass reads them, and their pieces.
    const auto& units = model.manifest().units;
    streamed_whole.assign(units.size(), false);
    for (size_t u : roles.layers)
        if (!resident[u].get()) streamed.push_back(u);
    if (!resident[roles.head].get()) streamed.push_back(roles.head);
    RABBIT_CHECK(!streamed.empty(), "a ring planned with nothing to stream");
    std::vector<RingPiece> sequence;
    for (size_t u : streamed) {
        const size_t l = size_t(std::find(roles.layers.begin(), roles.layers.end(), u) - roles.layers.begin());
        if (l < layer_t.size() && layer_t[l].router) {
            // A MoE layer: its dense piece, then the place of the experts its tokens route to.
            const std::string& name = units[u].layout.name;
            RABBIT_CHECK(layer_t[l].dense_bytes <= ring_slot_bytes, "a MoE layer's dense piece larger than a ring slot");
            sequence.push_back({u, 0, layer_t[l].dense_bytes, "", 0, 0, name + " dense"});
            sequence.push_back({u, 0, 0, "", 0, 0, name + " experts", true});
            continue;
        }
        auto p = plan_pieces(units[u], u, ring_slot_bytes);
        streamed_whole[u] = p.size() == 1 && p[0].tensor.empty();
        sequence.insert(sequence.end(), p.begin(), p.end());
    }
    return sequence;
}

void CudaEngine::Impl::fill_ram_tier(const std::vector<size_t>& streamed) {
    // The RAM tier: streamed units kept in pinned memory, in streaming order, while the
    // budget lasts and the system lets us pin.
    // Pinned pages cannot be reclaimed: never more than 3/4 of what is available now, after
    // the host KV cache and the staging buffers were pinned.
    const auto& units = model.manifest().units;
    tier.resize(units.size());
    const uint64_t tier_budget = std::min<uint64_t>(opt.ram_budget, default_ram_budget());
    uint64_t kept = 0;
    for (size_t u : streamed) {
        const uint64_t bytes = units[u].layout.data_size;
        if (kept + bytes > tier_budget) continue;
        try {
            tier[u] = PinnedBuffer(bytes, false);
        } catch (const Error& e) {
            spdlog::warn("--ram-budget: {} ({} kept in pinned memory)", e.what(), format_bytes(kept));
            break;
        }
        throw_if_interrupted();
        parallel_memcpy(fill.get(), tier[u].get(), files->data(u), bytes);
        files->done_with(u, files->data(u), bytes);
        kept += bytes;
    }
    pinned_bytes += kept;
}

void CudaEngine::Impl::start_ring() {
    start_expert_cache();
    if (ring_slots == 0) return; // everything resident
    std::vector<size_t> streamed;
    std::vector<RingPiece> sequence = ring_sequence(streamed);
    fill_ram_tier(streamed);
    transport = std::make_unique<CudaTransport>(opt.device, ring_slots, ring_slot_bytes, compute);
    pinned_bytes += uint64_t(ring_slots) * ring_slot_bytes;
    pieces = std::make_unique<UnitPieces>(*files, tier);
    ring = std::make_unique<Ring>(*transport, *pieces, std::move(sequence), fill.get());
}

uint64_t CudaEngine::Impl::held() const {
    uint64_t n = fixed_buf.bytes() + kv_dev.bytes();
    for (const DeviceBuffer& b : resident) n += b.bytes();
    n += expert_buf.bytes();
    if (transport) n += transport->slots() * transport->slot_bytes();
    return n;
}

void CudaEngine::Impl::track_memory() {
    peak_held = std::max(peak_held, held());
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && free_at_start > free_b)
        used_growth = std::max<uint64_t>(used_growth, free_at_start - free_b);
}

} // namespace rabbit
