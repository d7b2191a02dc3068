// SPDX-License-Identifier: Apache-2.0
// The KV cache's type on the GPU (--kv-dtype), and attention over a cache in host memory
// computed on the CPU, where the cache lives (FlexGen's answer to a cache larger than the
// GPU): for each layer only q goes to the host and the attention output comes back, while the
// ring goes on streaming the next layers' weights. The other way, the attention kernel reading
// the cache over the link, stays for when it is faster; choose_kv_attend decides between them
// from rates measured here.
#include "backend/cuda/cuda_engine_impl.h"

#include "backend/cpu/kv_attention.h"
#include "backend/cuda/check.h"
#include "backend/cuda/link.h"
#include "common/error.h"
#include "common/timing.h"
#include "common/units.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace rabbit {

namespace {

DType dtype_of(Elem e) { return e == Elem::f32 ? DType::f32 : e == Elem::f16 ? DType::f16 : DType::bf16; }

// Bytes of cache per second that kv_attention reads on `pool`: one decode step over a cache
// of `positions` of the model's shape, the fastest of three after one untimed run.
double cpu_attention_rate(ThreadPool& pool, const ModelConfig& c, DType type, size_t positions) {
    const size_t hd = c.head_dim, rb = kv_row_bytes(type, hd);
    std::vector<std::vector<uint8_t>> k(c.num_kv_heads), v(c.num_kv_heads);
    std::vector<const uint8_t*> kp, vp;
    std::vector<float> row(hd), q(size_t(c.q_dim())), out(q.size());
    for (size_t i = 0; i < q.size(); ++i) q[i] = float(std::sin(double(i)));
    for (size_t g = 0; g < c.num_kv_heads; ++g) {
        k[g].resize(positions * rb);
        v[g].resize(positions * rb);
        for (size_t j = 0; j < positions; ++j) {
            for (size_t d = 0; d < hd; ++d) row[d] = float(std::cos(double(j * hd + d + g)));
            store_kv_row(type, row.data(), hd, k[g].data() + j * rb);
            store_kv_row(type, row.data(), hd, v[g].data() + j * rb);
        }
        kp.push_back(k[g].data());
        vp.push_back(v[g].data());
    }
    const KvAttentionParams p =
        kv_decode_params(q.data(), out.data(), kp.data(), vp.data(), type, c.num_heads, c.num_kv_heads, hd, positions);
    kv_attention(pool, p);
    double best = 1e30;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        kv_attention(pool, p);
        best = std::min(best, seconds_since(t0));
    }
    return double(2 * c.num_kv_heads * positions * rb) / std::max(best, 1e-9);
}

} // namespace

void CudaEngine::Impl::choose_kv_type() {
    kv_elem = act;
    if (!opt.kv_dtype) return;
    const DType t = *opt.kv_dtype;
    if (t == DType::q8_0)
        throw unsupported(model.dir(), "--kv-dtype q8_0 has no CUDA kernels; it runs on the CPU engine (--device cpu)");
    if (t == DType::bf16 && prop.major < 8)
        throw unsupported(model.dir(), fmt::format("--kv-dtype bf16: {} has no bf16 arithmetic; use f16 or f32", device_name));
    kv_elem = elem_of(t);
}

void CudaEngine::Impl::choose_kv_attend() {
    attend = KvAttend::gpu;
    const uint64_t on_host = (std::max<uint32_t>(1, plan_in.sequences) - plan.kv_gpu_sequences) * plan.kv_sequence_bytes;
    if (on_host == 0) return; // every sequence's cache is on the GPU
    if (opt.kv_attend != KvAttend::automatic) {
        attend = opt.kv_attend;
        spdlog::debug("KV cache in host memory: decode attention on the {} (--kv-attend)", kv_attend_name(attend));
        return;
    }
    attend_pool = std::make_unique<ThreadPool>(0);
    KvAttendRates r;
    r.link_bps = measure_link(opt.device, 64ull << 20, 3).pinned_bps;
    r.cpu_bps = cpu_attention_rate(*attend_pool, c, dtype_of(kv_elem), 4096);
    r.round_trip_s = round_trip_seconds();
    const KvAttendCost cost = rabbit::choose_kv_attend(on_host, plan.streamed_per_token, c.num_layers, r);
    attend = cost.chosen;
    spdlog::debug("KV cache in host memory: decode attention on the {} (measured: link {}/s, CPU attention {}/s; "
                  "at {} positions {:.2f} ms a token on the CPU against {:.2f} ms reading it over the link)",
                  kv_attend_name(attend), format_bytes(uint64_t(r.link_bps)), format_bytes(uint64_t(r.cpu_bps)), ctx,
                  cost.cpu_s * 1e3, cost.gpu_s * 1e3);
}

double CudaEngine::Impl::round_trip_seconds() {
    // One layer's q to the host, the host's wait for it, and the output back: the median of five.
    const uint64_t bytes = 4ull * c.q_dim();
    DeviceBuffer dev(bytes);
    PinnedBuffer host(bytes, false);
    CudaEvent done(cudaEventDisableTiming | cudaEventBlockingSync);
    std::vector<double> took;
    for (int i = 0; i < 5; ++i) {
        const auto t0 = Clock::now();
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(host.get(), dev.get(), bytes, cudaMemcpyDeviceToHost, compute));
        RABBIT_CUDA_CHECK(cudaEventRecord(done.get(), compute));
        RABBIT_CUDA_CHECK(cudaEventSynchronize(done.get()));
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(dev.get(), host.get(), bytes, cudaMemcpyHostToDevice, compute));
        RABBIT_CUDA_CHECK(cudaStreamSynchronize(compute));
        took.push_back(seconds_since(t0));
    }
    return median(took);
}

void CudaEngine::Impl::allocate_host_attention() {
    if (attend != KvAttend::cpu) return;
    if (!attend_pool) attend_pool = std::make_unique<ThreadPool>(0);
    const size_t q = c.q_dim();
    h_q = PinnedBuffer(4 * batch * q, false);
    h_out = PinnedBuffer(4 * batch * q, false);
    h_attn = PinnedBuffer(elem_size(act) * batch * q, false);
    q_ready = CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync);
    pinned_bytes += h_q.bytes() + h_out.bytes() + h_attn.bytes();
}

void CudaEngine::Impl::host_attention(size_t l, const SlotRun& run, void* attn) {
    const size_t q = c.q_dim(), row = q + 2 * size_t(c.kv_dim()), hd = c.head_dim, m = run.n;
    // Only the rows' q crosses to the host; the rotated k and v are in the cache already (the
    // RoPE kernel wrote them there through the mapping).
    RABBIT_CUDA_CHECK(cudaMemcpy2DAsync(h_q.get(), 4 * q, fixed<float>(Fixed::qkv) + run.row * row, 4 * row, 4 * q, m,
                                        cudaMemcpyDeviceToHost, compute));
    RABBIT_CUDA_CHECK(cudaEventRecord(q_ready.get(), compute));
    RABBIT_CUDA_CHECK(cudaEventSynchronize(q_ready.get()));

    // This layer's cache, [kv_heads][ctx][head_dim] of kv_elem for K, then the same for V.
    const uint64_t head_bytes = uint64_t(ctx) * kv_row_bytes(dtype_of(kv_elem), hd);
    const uint8_t* k_layer = seq[run.slot].host_k + l * kv_layer_bytes;
    const uint8_t* v_layer = seq[run.slot].host_v + l * kv_layer_bytes;
    std::vector<const uint8_t*> k(c.num_kv_heads), v(c.num_kv_heads);
    for (size_t g = 0; g < c.num_kv_heads; ++g) {
        k[g] = k_layer + g * head_bytes;
        v[g] = v_layer + g * head_bytes;
    }
    KvAttentionParams p;
    p.q = h_q.as<float>();
    p.q_stride = q;
    p.out = h_out.as<float>();
    p.out_stride = q;
    p.k = k.data();
    p.v = v.data();
    p.type = dtype_of(kv_elem);
    p.tokens = m;
    p.heads = c.num_heads;
    p.kv_heads = c.num_kv_heads;
    p.head_dim = hd;
    p.pos = run.pos;
    p.window = c.sliding_window;
    p.scale = 1.0f / std::sqrt(float(hd));
    kv_attention(*attend_pool, p);

    // Back in the compute type, as the o_proj product reads it.
    convert_elements(h_out.get(), DType::f32, h_attn.get(), dtype_of(act), m * q);
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(attn) + run.row * q * elem_size(act), h_attn.get(), elem_size(act) * m * q, cudaMemcpyHostToDevice, compute));
}

} // namespace rabbit
