// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/cuda_engine.h"

#include "attention.cuh"
#include "convert.cuh"
#include "embed.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "sample.cuh"
#include "swiglu.cuh"

#include "backend/cpu/kernels.h"
#include "common/thread_pool.h"
#include "backend/cuda/check.h"
#include "backend/cuda/device.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/memory.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/system.h"
#include "common/units.h"
#include "engine/rope.h"
#include "stream/unit_source.h"
#include "engine/weights.h"
#include "backend/cuda/cuda_transport.h"
#include "stream/pieces.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace rabbit {

namespace {

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

// The norms and biases of one layer, in the engine's vector buffer on the GPU.
struct LayerVectors {
    const float* attn_norm = nullptr; // [hidden]
    const float* qkv_bias = nullptr;  // [q_dim + 2 kv_dim] or null
    const float* q_norm = nullptr;    // [head_dim] or null
    const float* k_norm = nullptr;    // [head_dim] or null
    const float* o_bias = nullptr;    // [hidden] or null
    const float* ffn_norm = nullptr;  // [hidden]
};

// Where the ring reads a piece: the unit's pinned copy when --ram-budget keeps one, else its
// mapping, which the loader faults in from the disk (read ahead by one piece) and drops after.
class UnitPieces : public PieceSource {
public:
    UnitPieces(const MmapUnitSource& files, const std::vector<PinnedBuffer>& tier) : files_(files), tier_(tier) {}
    const uint8_t* bytes(const RingPiece& p) override { return base(p.unit) + p.offset; }
    bool pinned(const RingPiece& p) override { return tier_[p.unit].get() != nullptr; }
    void prefetch(const RingPiece& p) override {
        if (!pinned(p)) files_.will_need(bytes(p), p.bytes);
    }
    void done(const RingPiece& p) override {
        if (!pinned(p)) const_cast<MmapUnitSource&>(files_).done_with(p.unit, bytes(p), p.bytes);
    }

private:
    const uint8_t* base(size_t unit) const {
        return tier_[unit].get() ? tier_[unit].as<uint8_t>() : files_.data(unit);
    }
    const MmapUnitSource& files_;
    const std::vector<PinnedBuffer>& tier_;
};

constexpr uint64_t k_load_chunk = 64ull << 20; // staging for uploads at load time
constexpr size_t k_logit_rows = k_planned_logit_rows; // rows of logits on the device at once

} // namespace

struct CudaEngine::Impl {
    Impl(const SplitModel& m, const CudaEngineOptions& o) : model(m), c(m.config()), opt(o) {}
    ~Impl();

    void init();
    void select_device();
    void measure_runtime_overhead();
    void plan_memory_and_context();
    void allocate();
    void load_vectors();
    void load_resident();
    void start_ring();
    void convert_unit(size_t unit, uint8_t* base);

    void pass(const int32_t* tokens, size_t m, size_t rows, float* host);
    void embed(const int32_t* tokens, size_t m);
    void layer(size_t l, size_t m);
    void linear(size_t unit, const uint8_t* base, const char* tensor, const void* x, size_t m, float* y, size_t ldy);
    void skip_unit(size_t unit);
    void head(size_t rows, float* host);
    void flush_logits();
    // The host waits until the compute stream's work so far is done, sleeping in the driver
    // (a blocking-sync event) whatever the device's flags are.
    void wait_compute();
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
    Elem act = Elem::f32; // the compute type: matrix inputs and the KV cache
    bool to_f16 = false;  // bf16 weights on a GPU without bf16: rewritten as f16 on arrival
    uint64_t budget = 0, ctx = 0;
    size_t batch = 512, pos = 0;
    bool in_pass = false; // set while a pass runs: an exception inside one leaves the ring mid-sequence
    MemoryPlanInput plan_in;
    MemoryPlan plan;

    cudaStream_t compute = nullptr;
    cublasHandle_t blas = nullptr;
    cudaEvent_t staged = nullptr;       // the last pass's host-to-device copies of inputs are done
    cudaEvent_t logits_copied = nullptr; // the last pass's logits have reached h_logits
    cudaEvent_t drained = nullptr;       // recorded by wait_compute
    size_t free_at_start = 0;
    uint64_t runtime_overhead = 0; // device memory cuBLAS took beside rabbit's buffers (measured)
    uint64_t used_growth = 0, pinned_bytes = 0, peak_held = 0;

    std::unique_ptr<MmapUnitSource> files;
    std::unique_ptr<ThreadPool> fill;
    const UnitRoles& roles = model.roles();
    const char* head_tensor = "lm_head";
    std::vector<float> inv_freq;

    DeviceBuffer fixed_buf; // the plan's fixed buffers (activations, workspaces, vectors), carved by plan.fixed
    PinnedBuffer h_embed, h_rope, h_ids, h_penal, h_result, h_logits;
    float* pending_logits = nullptr; // where the last pass's h_logits rows go, once copied
    size_t pending_rows = 0;
    std::vector<LayerVectors> lv;
    const float* final_norm = nullptr;
    DeviceBuffer kv_dev;
    PinnedBuffer kv_host;
    uint8_t* k_base = nullptr; // [layers][kv_heads][ctx][head_dim] act, device-visible
    uint8_t* v_base = nullptr;
    uint64_t kv_layer_bytes = 0;
    size_t ring_slots = 0;              // the plan's ring slots (0: nothing streams)
    std::vector<DeviceBuffer> resident; // per unit: its data section on the GPU, or empty
    std::vector<bool> streamed_whole;   // per unit: streamed as one piece
    std::vector<PinnedBuffer> tier;     // per unit: its pinned copy (--ram-budget), or empty
    std::unique_ptr<UnitPieces> pieces;
    std::unique_ptr<CudaTransport> transport;
    std::unique_ptr<Ring> ring; // last: stops its loader before what it reads goes
};

CudaEngine::Impl::~Impl() {
    ring.reset();
    if (compute) cudaStreamSynchronize(compute);
    transport.reset();
    if (blas) cublasDestroy(blas);
    if (staged) cudaEventDestroy(staged);
    if (logits_copied) cudaEventDestroy(logits_copied);
    if (drained) cudaEventDestroy(drained);
    if (compute) cudaStreamDestroy(compute);
}

void CudaEngine::Impl::init() {
    select_device();

    // The weights' type decides the compute type.
    const Manifest& man = model.manifest();
    const auto wt = dtype_from_name(man.dtype);
    if (!wt || !is_weight_dtype(*wt))
        throw unsupported(model.dir() + "/manifest.json",
                          "weights of mixed types (" + man.dtype + ") run on the CPU only; split with --dtype bf16 for the GPU");
    act = elem_of(*wt);
    if (act == Elem::bf16 && prop.major < 8) {
        act = Elem::f16;
        to_f16 = true;
        spdlog::info("{} has no bf16 arithmetic: bf16 weights are converted to f16 as they arrive", device_name);
    }

    if (roles.tied) head_tensor = "embed";
    if (!attention_supports_head_dim(int(c.head_dim)))
        throw unsupported(model.dir() + "/manifest.json", "head_dim " + std::to_string(c.head_dim) +
                                                              " has no CUDA attention kernel; use --device cpu");
    inv_freq = rope_inv_freq(c);
    batch = std::max<size_t>(1, opt.batch);

    RABBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    RABBIT_CUDA_CHECK(cudaEventCreateWithFlags(&staged, cudaEventDisableTiming | cudaEventBlockingSync));
    RABBIT_CUDA_CHECK(cudaEventCreateWithFlags(&logits_copied, cudaEventDisableTiming | cudaEventBlockingSync));
    RABBIT_CUDA_CHECK(cudaEventCreateWithFlags(&drained, cudaEventDisableTiming | cudaEventBlockingSync));
    RABBIT_CUBLAS_CHECK(cublasCreate(&blas));
    RABBIT_CUBLAS_CHECK(cublasSetStream(blas, compute));
    RABBIT_CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH)); // no TF32: f32 stays f32
    RABBIT_CUDA_CHECK(attention_setup(prop.sharedMemPerBlockOptin));
    measure_runtime_overhead();
    plan_memory_and_context();
    files = std::make_unique<MmapUnitSource>(model, 0);
    fill = std::make_unique<ThreadPool>(std::max<size_t>(1, opt.loader_threads));
    allocate();
    load_vectors();
    load_resident();
    start_ring(); // last: its loader thread shares `fill` with the loads above
    track_memory();
}

void CudaEngine::Impl::select_device() {
    // Only the device asked for is probed, once per process (its context made there).
    const CudaDevice& d = probe_cuda_device(opt.device);
    if (d.name.empty()) throw Error(ExitCode::usage, "--device cuda:" + std::to_string(opt.device) + ": " + d.problem);
    if (!d.usable) throw Error(ExitCode::unsupported, "GPU " + std::to_string(opt.device) + " (" + d.name + "): " + d.problem);
    RABBIT_CUDA_CHECK(cudaSetDevice(opt.device));
    RABBIT_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
    device_name = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
    size_t total = 0;
    RABBIT_CUDA_CHECK(cudaMemGetInfo(&free_at_start, &total));
}

void CudaEngine::Impl::measure_runtime_overhead() {
    runtime_overhead = cublas_overhead(blas, compute, act, free_at_start);
    spdlog::debug("cuBLAS took {} of device memory (handle and kernels)", format_bytes(runtime_overhead));
}

void CudaEngine::Impl::plan_memory_and_context() {
    checked_context(c, opt.ctx);
    if (opt.vram_budget) {
        budget = opt.vram_budget;
        // More than the device has free would fail in the middle of the load: use what is free.
        if (budget > free_at_start) {
            spdlog::warn("--vram-budget {} is more than the {} free on {}: using {}", format_bytes(budget),
                         format_bytes(free_at_start), device_name, format_bytes(free_at_start));
            budget = free_at_start;
        }
    } else {
        size_t total_b = 0, unused = 0;
        RABBIT_CUDA_CHECK(cudaMemGetInfo(&unused, &total_b));
        const uint64_t margin = std::max<uint64_t>(512ull << 20, total_b / 20);
        budget = free_at_start > margin ? free_at_start - margin : 0;
    }
    plan_in.config = c;
    plan_in.units = plan_units(model.manifest().units);
    plan_in.weight_dtype = act == Elem::f32 ? DType::f32 : DType::bf16;
    plan_in.budget = budget;
    plan_in.ring_slots = std::max<uint32_t>(1, opt.ring_slots);
    plan_in.prefill_tokens = uint32_t(batch);
    plan_in.kv = opt.kv;
    plan_in.max_slot = opt.max_slot;
    plan_in.max_resident = opt.max_resident;
    plan_in.overhead = runtime_overhead + k_kernel_code_reserve;
    // The context: as asked, else the model's maximum while its KV cache fits on the GPU or
    // in half the host's available memory, halving it until it does.
    ctx = opt.ctx ? opt.ctx : c.max_position_embeddings;
    const uint64_t host_room = available_memory() / 2;
    for (;;) {
        plan_in.ctx = ctx;
        plan = plan_memory(plan_in);
        if (opt.ctx || ctx <= 512) break;
        if (plan.fits && (!plan.kv_on_host || plan.kv_cache_bytes <= host_room)) break;
        ctx /= 2;
    }
    if (!opt.ctx && ctx < c.max_position_embeddings)
        spdlog::info("context {} positions (the model allows {}; the KV cache for more would not fit; --ctx sets it)",
                     ctx, c.max_position_embeddings);
    if (!plan.fits)
        throw Error(ExitCode::resources, "--vram-budget " + format_bytes(budget) + " is too small for " + model.dir() +
                                             " at context " + std::to_string(ctx) + ": the minimum is " +
                                             format_bytes(plan.minimum_budget) +
                                             " (lower --ctx or --ring-slots, or --kv-cache host, to need less)");
}

void CudaEngine::Impl::allocate() {
    // The device allocations, as the plan lists them.
    const auto& units = model.manifest().units;
    resident.resize(units.size());
    ring_slots = 0;
    for (const PlannedAllocation& a : plan.allocations) {
        switch (a.kind) {
        case AllocationKind::fixed: fixed_buf = DeviceBuffer(a.bytes); break;
        case AllocationKind::kv_cache: kv_dev = DeviceBuffer(a.bytes); break;
        case AllocationKind::unit: resident[a.unit] = DeviceBuffer(a.bytes); break; // filled by load_resident
        case AllocationKind::ring_slot: ++ring_slots; break;                         // made by start_ring
        }
    }
    RABBIT_CUBLAS_CHECK(cublasSetWorkspace(blas, fixed(Fixed::cublas_workspace), plan.fixed.size(Fixed::cublas_workspace)));

    // Pinned host buffers for what crosses the bus for every pass.
    const size_t h = c.hidden_size, half = c.head_dim / 2, b = batch;
    h_penal = PinnedBuffer(4 * ctx, false);
    h_embed = PinnedBuffer(4 * b * h, false);
    h_rope = PinnedBuffer(8 * b * half, false);
    h_ids = PinnedBuffer(4 * b, false);
    h_result = PinnedBuffer(8 * k_topk_max + 4, false);
    h_logits = PinnedBuffer(4 * k_logit_rows * c.vocab_size, false); // grown when a pass asks for more rows
    pinned_bytes += h_embed.bytes() + h_rope.bytes() + h_ids.bytes() + h_result.bytes() + h_penal.bytes() + h_logits.bytes();

    // The KV cache: on the GPU, or in pinned host memory that the kernels reach over the bus,
    // write-combined (the GPU writes it in whole bursts; the CPU never reads it).
    kv_layer_bytes = uint64_t(c.num_kv_heads) * ctx * c.head_dim * elem_size(act);
    if (plan.kv_on_host) {
        kv_host = PinnedBuffer(plan.kv_cache_bytes, true, true);
        pinned_bytes += plan.kv_cache_bytes;
        k_base = static_cast<uint8_t*>(kv_host.device_pointer());
        spdlog::info("KV cache in pinned host memory ({} for {} positions)", format_bytes(plan.kv_cache_bytes), ctx);
    } else {
        k_base = kv_dev.as<uint8_t>();
    }
    v_base = k_base + kv_layer_bytes * c.num_layers;
}

void CudaEngine::Impl::load_vectors() {
    // Every f32 vector of every layer and the final norm, packed (256-byte aligned starts, as
    // vector_bytes plans them), copied once.
    const auto& units = model.manifest().units;
    std::vector<float> host;
    std::vector<std::vector<std::pair<std::string, size_t>>> where(units.size()); // (tensor, float offset)
    auto take = [&](size_t u) {
        for (const UnitTensor& t : units[u].layout.tensors) {
            if (t.dtype != DType::f32 || t.shape.size() != 1) continue;
            where[u].emplace_back(t.name, host.size());
            const float* src = reinterpret_cast<const float*>(files->data(u) + t.offset);
            host.insert(host.end(), src, src + t.shape[0]);
            host.resize((host.size() + 63) / 64 * 64);
        }
    };
    for (size_t u : roles.layers) take(u);
    take(roles.norm);
    RABBIT_CHECK(host.size() * 4 <= plan.fixed.size(Fixed::vectors), "the norms and biases outgrow their planned buffer");
    float* vectors = fixed<float>(Fixed::vectors);
    RABBIT_CUDA_CHECK(cudaMemcpy(vectors, host.data(), host.size() * 4, cudaMemcpyHostToDevice)); // once, at load
    auto find = [&](size_t u, const char* name) -> const float* {
        for (const auto& [n, off] : where[u])
            if (n == name) return vectors + off;
        return nullptr;
    };
    for (size_t u : roles.layers) {
        LayerVectors v{find(u, "attn_norm"), find(u, "qkv_bias"), find(u, "q_norm"),
                       find(u, "k_norm"),    find(u, "o_bias"),   find(u, "ffn_norm")};
        RABBIT_CHECK(v.attn_norm && v.ffn_norm, "layer unit without norms: " + units[u].layout.name);
        lv.push_back(v);
    }
    final_norm = find(roles.norm, "norm");
    RABBIT_CHECK(final_norm, "the norm unit has no vector \"norm\"");
}

void CudaEngine::Impl::convert_unit(size_t unit, uint8_t* base) {
    for (const UnitTensor* t : matrices_in_use_order(model.manifest().units[unit]))
        RABBIT_CUDA_CHECK(launch_bf16_to_f16(base + t->offset, int64_t(t->numel()), compute));
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
    struct Events { // destroyed however this leaves
        cudaEvent_t e[2] = {nullptr, nullptr};
        ~Events() {
            for (auto x : e)
                if (x) cudaEventDestroy(x);
        }
    } ev;
    cudaEvent_t* done = ev.e;
    for (int i = 0; i < 2; ++i) RABBIT_CUDA_CHECK(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming | cudaEventBlockingSync));
    uint64_t k = 0; // chunks so far, across units: the buffers alternate
    for (size_t i = 0; i < units.size(); ++i) {
        if (!resident[i].get()) continue;
        throw_if_interrupted();
        const uint8_t* src = files->data(i);
        const uint64_t bytes = units[i].layout.data_size;
        for (uint64_t off = 0; off < bytes; ++k) {
            const uint64_t n = std::min(k_load_chunk, bytes - off);
            const size_t b = k % 2;
            if (k >= 2) RABBIT_CUDA_CHECK(cudaEventSynchronize(done[b]));
            uint8_t* s = stage[b].as<uint8_t>();
            parallel_memcpy(fill.get(), s, src + off, n);
            RABBIT_CUDA_CHECK(cudaMemcpyAsync(resident[i].as<uint8_t>() + off, s, n, cudaMemcpyHostToDevice, compute));
            RABBIT_CUDA_CHECK(cudaEventRecord(done[b], compute));
            off += n;
        }
        wait_compute(); // before the pages go
        files->done_with(i, src, bytes);
        if (to_f16) convert_unit(i, resident[i].as<uint8_t>());
    }
    wait_compute();
}

void CudaEngine::Impl::start_ring() {
    if (ring_slots == 0) return; // everything resident
    const auto& units = model.manifest().units;
    streamed_whole.assign(units.size(), false);
    tier.resize(units.size());
    std::vector<RingPiece> sequence;
    std::vector<size_t> streamed;
    for (size_t u : roles.layers)
        if (!resident[u].get()) streamed.push_back(u);
    if (!resident[roles.head].get()) streamed.push_back(roles.head);
    RABBIT_CHECK(!streamed.empty(), "a ring planned with nothing to stream");
    for (size_t u : streamed) {
        auto p = plan_pieces(units[u], u, plan.ring_slot_bytes);
        streamed_whole[u] = p.size() == 1 && p[0].tensor.empty();
        sequence.insert(sequence.end(), p.begin(), p.end());
    }
    // The RAM tier: streamed units kept in pinned memory, in streaming order, while the
    // budget lasts and the system lets us pin.
    // Pinned pages cannot be reclaimed: never more than 3/4 of what is available now, after
    // the host KV cache and the staging buffers were pinned.
    const uint64_t tier_budget = std::min<uint64_t>(opt.ram_budget, available_memory() / 4 * 3);
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
    transport = std::make_unique<CudaTransport>(opt.device, ring_slots, plan.ring_slot_bytes, compute);
    pinned_bytes += uint64_t(ring_slots) * plan.ring_slot_bytes;
    pieces = std::make_unique<UnitPieces>(*files, tier);
    ring = std::make_unique<Ring>(*transport, *pieces, std::move(sequence), fill.get());
}

uint64_t CudaEngine::Impl::held() const {
    uint64_t n = fixed_buf.bytes() + kv_dev.bytes();
    for (const DeviceBuffer& b : resident) n += b.bytes();
    if (transport) n += transport->slots() * transport->slot_bytes();
    return n;
}

void CudaEngine::Impl::track_memory() {
    peak_held = std::max(peak_held, held());
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && free_at_start > free_b)
        used_growth = std::max<uint64_t>(used_growth, free_at_start - free_b);
}

void CudaEngine::Impl::embed(const int32_t* tokens, size_t m) {
    const ManifestUnit& u = model.manifest().units[roles.embed];
    const Matrix table = unit_matrix(u, files->data(roles.embed), "embed");
    check_token_ids(tokens, m, table.rows, model.dir());
    if (resident[roles.embed].get()) {
        // A tied embedding that is resident (as the output projection): gather on the GPU.
        std::memcpy(h_ids.get(), tokens, 4 * m);
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::ids), h_ids.get(), 4 * m, cudaMemcpyHostToDevice, compute));
        const UnitTensor* t = u.layout.find("embed");
        EmbedParams p;
        p.table = resident[roles.embed].as<uint8_t>() + t->offset;
        p.table_type = to_f16 ? Elem::f16 : elem_of(t->dtype);
        p.vocab = int64_t(t->shape[0]);
        p.hidden = int64_t(t->shape[1]);
        p.ids = fixed<int32_t>(Fixed::ids);
        p.tokens = int(m);
        p.out = fixed<float>(Fixed::x);
        RABBIT_CUDA_CHECK(launch_embed(p, compute));
        return;
    }
    // Otherwise gather the rows on the host, from the mapped file, and copy only them.
    float* rows = h_embed.as<float>();
    for (size_t t = 0; t < m; ++t) widen_row(table, uint64_t(tokens[t]), rows + t * c.hidden_size);
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::x), rows, 4 * m * c.hidden_size, cudaMemcpyHostToDevice, compute));
}

void CudaEngine::Impl::linear(size_t unit, const uint8_t* base, const char* tensor, const void* xin, size_t m, float* y,
                              size_t ldy) {
    const UnitTensor* t = model.manifest().units[unit].layout.find(tensor);
    RABBIT_CHECK(t && t->shape.size() == 2, std::string("no matrix ") + tensor);
    GemmParams g;
    g.w_type = to_f16 ? Elem::f16 : elem_of(t->dtype);
    g.cols = int64_t(t->shape[1]);
    g.x = xin;
    g.x_type = act;
    g.tokens = int64_t(m);
    g.ldy = int64_t(ldy);
    if (base) {
        g.w = base + t->offset;
        g.rows = int64_t(t->shape[0]);
        g.y = y;
        return gemm(blas, g);
    }
    // Streamed in row blocks: each block's product as it arrives, then its slot goes back.
    for (uint64_t done = 0; done < t->shape[0];) {
        const RingPiece p = ring->next_piece();
        RABBIT_CHECK(p.unit == unit && p.tensor == tensor && p.row0 == done, "the ring is out of step with the layer");
        uint8_t* dev = const_cast<uint8_t*>(ring->acquire());
        if (to_f16) RABBIT_CUDA_CHECK(launch_bf16_to_f16(dev, int64_t(p.bytes / 2), compute));
        g.w = dev;
        g.rows = int64_t(p.rows);
        g.y = y + p.row0;
        gemm(blas, g);
        ring->release();
        done += p.rows;
    }
}

void CudaEngine::Impl::skip_unit(size_t unit) {
    // A pass that wants no logits still takes lm_head's pieces off the ring, to stay in step.
    if (resident[unit].get()) return;
    do {
        ring->acquire();
        ring->release();
    } while (ring->next_piece().unit == unit && !streamed_whole[unit] && ring->next_piece().row0 != 0);
}

void CudaEngine::Impl::layer(size_t l, size_t m) {
    const size_t u = roles.layers[l];
    const LayerVectors& v = lv[l];
    const size_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
    const float eps = float(c.rms_norm_eps);
    const uint8_t* base = resident[u].get() ? resident[u].as<uint8_t>() : nullptr;
    bool piece = false;
    if (!base && streamed_whole[u]) {
        RABBIT_CHECK(ring->next_piece().unit == u, "the ring is out of step with the layers");
        uint8_t* dev = const_cast<uint8_t*>(ring->acquire());
        if (to_f16) convert_unit(u, dev);
        base = dev;
        piece = true;
    }
    uint8_t* k_layer = k_base + l * kv_layer_bytes;
    uint8_t* v_layer = v_base + l * kv_layer_bytes;
    float* x = fixed<float>(Fixed::x);
    float* out = fixed<float>(Fixed::out);
    float* qkv = fixed<float>(Fixed::qkv);
    void* xn = fixed(Fixed::xn);
    void* attn = fixed(Fixed::attn);

    // Attention. The residual add of the previous layer's MLP is fused into this norm.
    RmsNormParams n1;
    n1.x = x;
    n1.delta = l > 0 ? out : nullptr;
    n1.delta_scale = l > 0 ? down_scale() : nullptr;
    n1.weight = v.attn_norm;
    n1.eps = eps;
    n1.rows = int(m);
    n1.n = int(h);
    n1.out = xn;
    n1.out_type = act;
    RABBIT_CUDA_CHECK(launch_rmsnorm(n1, compute));
    linear(u, base, "qkv", xn, m, qkv, q + 2 * kv);

    QkvRopeParams r;
    r.qkv = qkv;
    r.bias = v.qkv_bias;
    r.q_norm = v.q_norm;
    r.k_norm = v.k_norm;
    r.cos = fixed<float>(Fixed::cos);
    r.sin = fixed<float>(Fixed::sin);
    r.eps = eps;
    r.tokens = int(m);
    r.heads = int(c.num_heads);
    r.kv_heads = int(c.num_kv_heads);
    r.head_dim = int(c.head_dim);
    r.k_cache = k_layer;
    r.v_cache = v_layer;
    r.cache_type = act;
    r.cache_len = int64_t(ctx);
    r.pos = int64_t(pos);
    RABBIT_CUDA_CHECK(launch_qkv_rope(r, compute));

    AttentionParams a;
    a.q = qkv;
    a.q_stride = int64_t(q + 2 * kv);
    a.k_cache = k_layer;
    a.v_cache = v_layer;
    a.cache_type = act;
    a.cache_len = int64_t(ctx);
    a.out = attn;
    a.out_type = act;
    a.tokens = int(m);
    a.heads = int(c.num_heads);
    a.kv_heads = int(c.num_kv_heads);
    a.head_dim = int(c.head_dim);
    a.pos = int64_t(pos);
    a.window = int64_t(c.sliding_window);
    a.scale = 1.0f / std::sqrt(float(c.head_dim));
    a.workspace = fixed(Fixed::attention_workspace);
    a.sm_count = prop.multiProcessorCount;
    a.smem_optin = prop.sharedMemPerBlockOptin;
    RABBIT_CUDA_CHECK(launch_attention(a, compute));
    linear(u, base, "o", attn, m, out, h);

    // MLP, after the attention's residual add (and o_proj's bias) fused into its norm.
    RmsNormParams n2 = n1;
    n2.delta = out;
    n2.delta_scale = nullptr;
    n2.bias = v.o_bias;
    n2.weight = v.ffn_norm;
    RABBIT_CUDA_CHECK(launch_rmsnorm(n2, compute));
    linear(u, base, "gate_up", xn, m, fixed<float>(Fixed::gate_up), 2 * inter);
    SwigluParams s;
    s.gate_up = fixed<float>(Fixed::gate_up);
    s.tokens = int(m);
    s.inter = int(inter);
    s.out = fixed(Fixed::act);
    s.out_type = act;
    s.row_scale = down_scale(); // f16: rows beyond its range are scaled down, and the down product back up
    RABBIT_CUDA_CHECK(launch_swiglu(s, compute));
    linear(u, base, "down", fixed(Fixed::act), m, out, h);
    if (piece) ring->release();
}

void CudaEngine::Impl::pass(const int32_t* tokens, size_t m, size_t rows, float* host) {
    if (in_pass)
        throw Error(ExitCode::internal, "the CUDA engine was interrupted in the middle of a pass and cannot go on; "
                                        "make a new one");
    in_pass = true;
    const size_t h = c.hidden_size, half = c.head_dim / 2;
    // The staging buffers are reused: wait until the last pass's copies out of them are done
    // (long since, as a rule: a whole pass of the model ran after them).
    RABBIT_CUDA_CHECK(cudaEventSynchronize(staged));
    float* cs = h_rope.as<float>();
    float* sn = cs + m * half;
    for (size_t t = 0; t < m; ++t) rope_cos_sin(inv_freq, int64_t(pos + t), cs + t * half, sn + t * half);
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::cos), cs, 4 * m * half, cudaMemcpyHostToDevice, compute));
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(fixed(Fixed::sin), sn, 4 * m * half, cudaMemcpyHostToDevice, compute));
    embed(tokens, m);
    RABBIT_CUDA_CHECK(cudaEventRecord(staged, compute));

    for (size_t l = 0; l < roles.layers.size(); ++l) {
        throw_if_interrupted();
        layer(l, m);
    }
    pos += m;

    // The final norm (with the last residual add) and lm_head, for the rows asked for.
    if (rows == 0) {
        if (ring) skip_unit(roles.head);
        in_pass = false;
        return;
    }
    const size_t first = m - rows;
    RmsNormParams n;
    n.x = fixed<float>(Fixed::x) + first * h;
    n.delta = fixed<float>(Fixed::out) + first * h;
    n.delta_scale = down_scale() ? down_scale() + first : nullptr;
    n.weight = final_norm;
    n.eps = float(c.rms_norm_eps);
    n.rows = int(rows);
    n.n = int(h);
    n.out = fixed(Fixed::xn);
    n.out_type = act;
    RABBIT_CUDA_CHECK(launch_rmsnorm(n, compute));
    head(rows, host);
    in_pass = false;
}

void CudaEngine::Impl::wait_compute() {
    RABBIT_CUDA_CHECK(cudaEventRecord(drained, compute));
    RABBIT_CUDA_CHECK(cudaEventSynchronize(drained));
}

void CudaEngine::Impl::flush_logits() {
    // The last pass's logits, copied into pinned h_logits on the stream, to where they belong.
    if (!pending_logits) return;
    RABBIT_CUDA_CHECK(cudaEventSynchronize(logits_copied));
    std::memcpy(pending_logits, h_logits.get(), 4 * pending_rows * c.vocab_size);
    pending_logits = nullptr;
    pending_rows = 0;
}

void CudaEngine::Impl::head(size_t rows, float* host) {
    // The device holds k_logit_rows rows of logits: more rows (a prompt's, for --dump-logits)
    // go through in groups, each group's logits copied out before the next is computed. They
    // go to pinned memory (h_logits, grown to the rows of the pass), so that the copies stay
    // asynchronous, and from there to `host` once the pass is done (flush_logits).
    const size_t vocab = c.vocab_size, h = c.hidden_size;
    float* pinned = nullptr;
    if (host) {
        flush_logits(); // h_logits holds the previous pass's rows until they are out
        if (h_logits.bytes() < 4 * rows * vocab) {
            pinned_bytes += 4 * rows * vocab - h_logits.bytes();
            h_logits = PinnedBuffer(4 * rows * vocab, false);
        }
        pinned = h_logits.as<float>();
    }
    RABBIT_CHECK(host || rows <= k_logit_rows, "more logit rows than the device holds, and nowhere to put them");
    const UnitTensor* t = model.manifest().units[roles.head].layout.find(head_tensor);
    float* logits = fixed<float>(Fixed::logits);
    GemmParams g;
    g.w_type = to_f16 ? Elem::f16 : elem_of(t->dtype);
    g.cols = int64_t(h);
    g.x_type = act;
    g.ldy = int64_t(vocab);
    auto product = [&](const uint8_t* w, uint64_t row0, uint64_t n) {
        g.w = w;
        g.rows = int64_t(n);
        for (size_t g0 = 0; g0 < rows; g0 += k_logit_rows) {
            const size_t gl = std::min(k_logit_rows, rows - g0);
            g.x = fixed<uint8_t>(Fixed::xn) + g0 * h * elem_size(act);
            g.tokens = int64_t(gl);
            g.y = logits + row0;
            gemm(blas, g);
            if (pinned)
                RABBIT_CUDA_CHECK(cudaMemcpy2DAsync(pinned + g0 * vocab + row0, 4 * vocab, logits + row0, 4 * vocab, 4 * n, gl,
                                                    cudaMemcpyDeviceToHost, compute));
        }
    };
    if (resident[roles.head].get()) {
        product(resident[roles.head].as<uint8_t>() + t->offset, 0, vocab);
    } else if (streamed_whole[roles.head]) {
        uint8_t* dev = const_cast<uint8_t*>(ring->acquire());
        if (to_f16) convert_unit(roles.head, dev);
        product(dev + t->offset, 0, vocab);
        ring->release();
    } else {
        for (uint64_t done = 0; done < t->shape[0];) {
            const RingPiece p = ring->next_piece();
            RABBIT_CHECK(p.unit == roles.head && p.row0 == done, "the ring is out of step with lm_head");
            uint8_t* dev = const_cast<uint8_t*>(ring->acquire());
            if (to_f16) RABBIT_CUDA_CHECK(launch_bf16_to_f16(dev, int64_t(p.bytes / 2), compute));
            product(dev, p.row0, p.rows);
            ring->release();
            done += p.rows;
        }
    }
    if (pinned) {
        RABBIT_CUDA_CHECK(cudaEventRecord(logits_copied, compute));
        pending_logits = host;
        pending_rows = rows;
    }
}

CudaEngine::CudaEngine(const SplitModel& model, const CudaEngineOptions& options)
    : impl_(std::make_unique<Impl>(model, options)) {
    impl_->init();
}

CudaEngine::~CudaEngine() = default;

const ModelConfig& CudaEngine::config() const { return impl_->c; }
uint64_t CudaEngine::context() const { return impl_->ctx; }
size_t CudaEngine::position() const { return impl_->pos; }
void CudaEngine::reset() { impl_->pos = 0; }
const MemoryPlanInput& CudaEngine::plan_input() const { return impl_->plan_in; }
const MemoryPlan& CudaEngine::plan() const { return impl_->plan; }

void CudaEngine::forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) {
    Impl& e = *impl_;
    RABBIT_CHECK(n > 0 && n_logits <= n, "forward with no tokens or more logits than tokens");
    check_room(e.c, e.pos, n, e.ctx);
    logits.assign(n_logits * e.c.vocab_size, 0.0f);
    float* next_row = logits.data();
    for_each_part(n, n_logits, e.batch, [&](size_t first, size_t m, size_t rows) {
        e.pass(tokens + first, m, rows, next_row);
        next_row += rows * e.c.vocab_size;
    });
    e.flush_logits();
    e.track_memory();
}

int32_t CudaEngine::step(const int32_t* tokens, size_t n, Sampler& sampler, const std::vector<int32_t>& history,
                         std::vector<float>* all_logits) {
    if (all_logits) return Engine::step(tokens, n, sampler, history, all_logits);
    Impl& e = *impl_;
    RABBIT_CHECK(n > 0, "step with no tokens");
    check_room(e.c, e.pos, n, e.ctx);
    for_each_part(n, 1, e.batch, [&](size_t first, size_t m, size_t rows) { e.pass(tokens + first, m, rows, nullptr); });
    e.track_memory();

    // Choose on the GPU: one id comes back (greedy), or k candidates (top-k); the whole
    // vocabulary only for top-p or min-p without top-k.
    const SamplingParams& sp = sampler.params();
    const int64_t vocab = e.c.vocab_size;
    float* l = e.fixed<float>(Fixed::logits);
    if (sp.repetition_penalty != 1.0f) {
        const std::vector<int32_t> ids = penalised_ids(history, size_t(vocab));
        RABBIT_CHECK(ids.size() <= e.ctx, "more distinct ids in the context than positions");
        if (!ids.empty()) {
            std::memcpy(e.h_penal.get(), ids.data(), 4 * ids.size());
            RABBIT_CUDA_CHECK(cudaMemcpyAsync(e.fixed(Fixed::penalty_ids), e.h_penal.get(), 4 * ids.size(), cudaMemcpyHostToDevice,
                                              e.compute));
            RABBIT_CUDA_CHECK(launch_penalize(l, vocab, e.fixed<int32_t>(Fixed::penalty_ids), int(ids.size()), sp.repetition_penalty,
                                              e.compute));
        }
    }
    int32_t* result_ids = reinterpret_cast<int32_t*>(e.h_result.as<uint8_t>() + 4 * k_topk_max);
    if (sp.temperature <= 0.0f) {
        RABBIT_CUDA_CHECK(launch_argmax(l, vocab, e.fixed<int32_t>(Fixed::picked), e.fixed(Fixed::sample_workspace), e.compute));
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(result_ids, e.fixed(Fixed::picked), 4, cudaMemcpyDeviceToHost, e.compute));
        e.wait_compute();
        return result_ids[0];
    }
    RABBIT_CUDA_CHECK(launch_temperature(l, vocab, sp.temperature, e.compute));
    if (sp.top_k > 0 && sp.top_k <= k_topk_max) {
        const int k = int(std::min<int64_t>(sp.top_k, vocab));
        RABBIT_CUDA_CHECK(launch_topk(l, vocab, k, e.fixed<float>(Fixed::topk_values), e.fixed<int32_t>(Fixed::topk_ids), e.fixed(Fixed::sample_workspace),
                                      e.compute));
        float* vals = e.h_result.as<float>();
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(vals, e.fixed(Fixed::topk_values), 4 * size_t(k), cudaMemcpyDeviceToHost, e.compute));
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(result_ids, e.fixed(Fixed::topk_ids), 4 * size_t(k), cudaMemcpyDeviceToHost, e.compute));
        e.wait_compute();
        return sampler.sample_sorted(std::vector<float>(vals, vals + k), std::vector<int32_t>(result_ids, result_ids + k));
    }
    e.flush_logits();
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(e.h_logits.get(), l, 4 * size_t(vocab), cudaMemcpyDeviceToHost, e.compute));
    e.wait_compute();
    const float* row = e.h_logits.as<float>();
    return sampler.sample_scaled(std::vector<float>(row, row + vocab));
}

CudaEngineStats CudaEngine::stats() const {
    CudaEngineStats s;
    s.device = impl_->device_name;
    s.budget = impl_->budget;
    s.peak_device_bytes = impl_->peak_held;
    s.device_used_growth = impl_->used_growth;
    s.pinned_bytes = impl_->pinned_bytes;
    if (impl_->ring) s.ring = impl_->ring->stats();
    return s;
}

StreamStats CudaEngine::stream_stats() const {
    StreamStats s;
    if (!impl_->ring) return s; // everything resident: nothing streams
    const RingStats r = impl_->ring->stats();
    s.disk_s = r.disk_s;
    s.host_copy_s = r.fill_s;
    s.h2d_s = impl_->transport->copy_seconds();
    s.wait_s = impl_->transport->stall_seconds();
    s.file_bytes = r.file_bytes;
    s.link_bytes = r.bytes;
    return s;
}

} // namespace rabbit
