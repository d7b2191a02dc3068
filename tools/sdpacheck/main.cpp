// SPDX-License-Identifier: Apache-2.0
// rabbit-sdpacheck: cuDNN's fused attention against rabbit's attention kernel on a real GPU, on
// the CUDA engine's own layouts (Q in the qkv rows as f32, rounded to the compute type for cuDNN
// by the same kernel the engine runs; K and V in a cache of --ctx rows per KV head; the output
// as [tokens, heads * head_dim]), for prefill parts at 1K, 8K and 32K positions: a whole prompt
// in one part (positions 0..L), and the last --part tokens of a context of L. For each it checks
// that both give the same output within a 16-bit tolerance (|a - b| <= rtol (RMS + |a|), rtol
// 2e-2 for bf16 and 1e-2 for f16, and no NaN or infinity), and prints the median time of each, the cuDNN graph build once per shape
// (timed on the host) and the speedup. Exit 1 when any output differs or cuDNN refuses a shape.
//   rabbit-sdpacheck [--heads 28 --kv-heads 4 --head-dim 128] [--lengths 1024,8192,32768]
//                    [--part 512] [--dtype bf16|f16] [--rounds 5] [--descriptors]
// --descriptors needs no GPU: it only builds each case's tensor and operation descriptors, which
// cuDNN checks as they are finalized (scripts/test.sh's CUDA stage runs it).
// Built only in a real CUDA build with cuDNN (CMake's RABBIT_CUDNN); run by scripts/gpu_check.sh.
#include "attention.cuh"
#include "convert.cuh"
#include "workspace.h"

#include "backend/cuda/check.h"
#include "backend/cuda/cudnn_attention.h"
#include "backend/cuda/events.h"
#include "backend/cuda/memory.h"
#include "cli/option_checks.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/timing.h"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace rabbit;

namespace {

struct Shape {
    int heads = 28, kv_heads = 4, head_dim = 128; // Qwen2.5-7B's attention
    Elem elem = Elem::bf16;
    int64_t q_dim() const { return int64_t(heads) * head_dim; }
    int64_t q_stride() const { return q_dim() + 2 * int64_t(kv_heads) * head_dim; } // a qkv row
};

// One part: `tokens` queries at positions [pos, pos + tokens) over a cache of `ctx` rows.
struct Case {
    int64_t tokens = 0, pos = 0, ctx = 0;
};

uint16_t to_16(float f, Elem e) { return e == Elem::f16 ? f32_to_f16(f) : f32_to_bf16(f); }
float from_16(uint16_t h, Elem e) { return e == Elem::f16 ? f16_to_f32(h) : bf16_to_f32(h); }

// Device memory filled from the host with uniform values in [-range, range] (the 16-bit type's
// when `sixteen`).
DeviceBuffer random_buffer(int64_t count, float range, bool sixteen, Elem e, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-range, range);
    DeviceBuffer b(uint64_t(count) * (sixteen ? 2 : 4));
    if (sixteen) {
        std::vector<uint16_t> h(static_cast<size_t>(count));
        for (auto& x : h) x = to_16(u(rng), e);
        RABBIT_CUDA_CHECK(cudaMemcpy(b.get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    } else {
        std::vector<float> h(static_cast<size_t>(count));
        for (auto& x : h) x = u(rng);
        RABBIT_CUDA_CHECK(cudaMemcpy(b.get(), h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    }
    return b;
}

// The median GPU milliseconds of fn's work on `stream` over `rounds`, after one warm-up call.
template <class Fn>
double time_gpu(cudaStream_t stream, int rounds, Fn&& fn) {
    fn();
    CudaEvent start(0), stop(0);
    std::vector<double> ms;
    for (int r = 0; r < rounds; ++r) {
        RABBIT_CUDA_CHECK(cudaEventRecord(start.get(), stream));
        fn();
        RABBIT_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
        RABBIT_CUDA_CHECK(cudaEventSynchronize(stop.get()));
        float t = 0;
        RABBIT_CUDA_CHECK(cudaEventElapsedTime(&t, start.get(), stop.get()));
        ms.push_back(t);
    }
    return median(ms);
}

struct Compared {
    double max_abs = 0, rms = 0; // of the difference; of rabbit's output
    int64_t bad = 0; // elements outside the tolerance, NaN and infinities included
};

Compared compare(const DeviceBuffer& ours, const DeviceBuffer& theirs, int64_t count, Elem e) {
    std::vector<uint16_t> a(static_cast<size_t>(count)), b(static_cast<size_t>(count));
    RABBIT_CUDA_CHECK(cudaMemcpy(a.data(), ours.get(), a.size() * 2, cudaMemcpyDeviceToHost));
    RABBIT_CUDA_CHECK(cudaMemcpy(b.data(), theirs.get(), b.size() * 2, cudaMemcpyDeviceToHost));
    // Both round the output to 16 bits once (half a unit: 2^-9 of bf16's scale); cuDNN also
    // rounds Q and P, and sums in another order. Over many positions the outputs are averages
    // of values in [-1, 1], small at 32K, so the absolute term is a share of their RMS: a
    // misplaced mask or a wrong head mapping moves them by far more.
    Compared c;
    double sum = 0;
    for (uint16_t h : a) sum += double(from_16(h, e)) * from_16(h, e);
    c.rms = std::sqrt(sum / double(std::max<size_t>(1, a.size())));
    const double rtol = e == Elem::f16 ? 1e-2 : 2e-2, atol = rtol * c.rms;
    for (size_t i = 0; i < a.size(); ++i) {
        const double x = from_16(a[i], e), y = from_16(b[i], e), d = std::fabs(x - y);
        if (!std::isfinite(x) || !std::isfinite(y) || !(d <= atol + rtol * std::fabs(x))) ++c.bad;
        if (std::isfinite(d)) c.max_abs = std::max(c.max_abs, d);
    }
    if (!std::isfinite(c.rms) || c.rms == 0) c.bad = int64_t(a.size()); // nothing to compare against
    return c;
}

// cuDNN's arguments for case k, the pointers left to the caller.
CudnnSdpaArgs sdpa_args(const Shape& s, const Case& k) {
    CudnnSdpaArgs c;
    c.elem = s.elem;
    c.tokens = k.tokens;
    c.kv_len = k.pos + k.tokens;
    c.cache_len = k.ctx;
    c.heads = s.heads;
    c.kv_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.scale = 1.0f / std::sqrt(float(s.head_dim));
    c.workspace_bytes = k_attention_workspace;
    return c;
}

// The cases of each length: a whole prompt in one part, and the last `part` tokens of it.
std::vector<Case> cases_of(const std::vector<int64_t>& lengths, int64_t part) {
    std::vector<Case> cases;
    for (int64_t len : lengths) {
        if (len < 1) throw Error(ExitCode::usage, "--lengths: each at least one position");
        cases.push_back({len, 0, len});
        if (part < len) cases.push_back({part, len - part, len});
    }
    return cases;
}

// One case on both implementations; false when cuDNN refused it or the outputs differ.
bool run_case(const Shape& s, const Case& k, int rounds, cudaStream_t stream, CudnnAttention& cudnn,
              std::mt19937& rng, const cudaDeviceProp& prop) {
    const int64_t kv_count = int64_t(s.kv_heads) * k.ctx * s.head_dim, out_count = k.tokens * s.q_dim();
    // Q in [-2, 2]: scores of about unit spread, so that each row's softmax has a shape (a flat
    // one would hide a mask that is off by some positions); K and V in [-1, 1].
    DeviceBuffer q = random_buffer(k.tokens * s.q_stride(), 2.0f, false, s.elem, rng);
    DeviceBuffer kc = random_buffer(kv_count, 1.0f, true, s.elem, rng), vc = random_buffer(kv_count, 1.0f, true, s.elem, rng);
    DeviceBuffer q16(uint64_t(out_count) * 2), ours(uint64_t(out_count) * 2), theirs(uint64_t(out_count) * 2);
    DeviceBuffer workspace(k_attention_workspace);

    AttentionParams a;
    a.q = q.as<float>();
    a.q_stride = s.q_stride();
    a.k_cache = kc.get();
    a.v_cache = vc.get();
    a.cache_type = s.elem;
    a.cache_len = k.ctx;
    a.out = ours.get();
    a.out_type = s.elem;
    a.tokens = int(k.tokens);
    a.heads = s.heads;
    a.kv_heads = s.kv_heads;
    a.head_dim = s.head_dim;
    a.pos = k.pos;
    a.scale = 1.0f / std::sqrt(float(s.head_dim));
    a.workspace = workspace.get();
    a.sm_count = prop.multiProcessorCount;
    a.smem_optin = prop.sharedMemPerBlockOptin;

    RowsToElemParams r;
    r.src = a.q;
    r.src_stride = a.q_stride;
    r.dst = q16.get();
    r.dst_type = s.elem;
    r.rows = k.tokens;
    r.cols = s.q_dim();
    CudnnSdpaArgs c = sdpa_args(s, k);
    c.q = q16.get();
    c.k_cache = kc.get();
    c.v_cache = vc.get();
    c.out = theirs.get();
    c.workspace = workspace.get();

    const auto t0 = Clock::now();
    RABBIT_CUDA_CHECK(launch_rows_to_elem(r, stream));
    const bool ran = cudnn.run(c, stream);
    RABBIT_CUDA_CHECK(cudaStreamSynchronize(stream));
    const double build_ms = seconds_since(t0) * 1e3;
    const std::string what = fmt::format("{:>6} tokens at {:>6} ({:>6} positions)", k.tokens, k.pos, k.pos + k.tokens);
    if (!ran) {
        fmt::print("{}: FAIL, cuDNN refused the shape: {}\n", what, cudnn.refusal());
        return false;
    }
    const double ours_ms = time_gpu(stream, rounds, [&] { RABBIT_CUDA_CHECK(launch_attention(a, stream)); });
    const double theirs_ms = time_gpu(stream, rounds, [&] {
        RABBIT_CUDA_CHECK(launch_rows_to_elem(r, stream));
        cudnn.run(c, stream);
    });
    const Compared cmp = compare(ours, theirs, out_count, s.elem);
    fmt::print("{}: rabbit {:9.3f} ms  cuDNN {:9.3f} ms (incl. Q rounding)  x{:5.2f}  first call {:8.1f} ms  "
               "max |diff| {:.2e} (output RMS {:.2e})  {}\n",
               what, ours_ms, theirs_ms, ours_ms / theirs_ms, build_ms, cmp.max_abs, cmp.rms,
               cmp.bad ? fmt::format("FAIL ({} of {} outside the tolerance)", cmp.bad, out_count) : "ok");
    return cmp.bad == 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"cuDNN's fused attention against rabbit's attention kernel, for outputs and speed, on a GPU"};
    Shape s;
    std::vector<int64_t> lengths = {1024, 8192, 32768};
    int64_t part = 512;
    int rounds = 5;
    std::string dtype = "bf16";
    bool descriptors = false;
    positive(app.add_option("--heads", s.heads, "Query heads (default 28)"), 1024);
    positive(app.add_option("--kv-heads", s.kv_heads, "KV heads (default 4)"), 1024);
    positive(app.add_option("--head-dim", s.head_dim, "head_dim (default 128)"), 256);
    app.add_option("--lengths", lengths, "Context lengths, comma-separated (default 1024,8192,32768)")->delimiter(',');
    positive(app.add_option("--part", part, "Tokens of the last-part case (default 512, the engine's --batch)"), 1 << 20);
    positive(app.add_option("--rounds", rounds, "Timed calls per case; the median is reported (default 5)"), 1000);
    app.add_option("--dtype", dtype, "bf16 or f16 (default bf16)")->check(CLI::IsMember({"bf16", "f16"}));
    app.add_flag("--descriptors", descriptors,
                 "Without a GPU: only build each case's cuDNN tensor and operation descriptors (cuDNN checks "
                 "each); nothing runs");
    CLI11_PARSE(app, argc, argv);
    try {
        if (s.heads % s.kv_heads) throw Error(ExitCode::usage, "--heads must be a multiple of --kv-heads");
        if (!attention_supports_head_dim(s.head_dim))
            throw Error(ExitCode::usage, fmt::format("--head-dim {}: rabbit's kernel has no such head size", s.head_dim));
        s.elem = dtype == "f16" ? Elem::f16 : Elem::bf16;
        const std::vector<Case> cases = cases_of(lengths, part);
        if (descriptors) {
            bool ok = true;
            for (const Case& k : cases) {
                const std::string why = CudnnAttention::check_descriptors(sdpa_args(s, k));
                fmt::print("{} tokens at {} ({} positions): descriptors {}\n", k.tokens, k.pos, k.pos + k.tokens,
                           why.empty() ? "finalize" : "FAIL: " + why);
                ok = ok && why.empty();
            }
            return ok ? 0 : 1;
        }
        cudaDeviceProp prop{};
        RABBIT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        if (prop.major < 8)
            throw Error(ExitCode::unsupported, fmt::format("{} is sm_{}{}: cuDNN's fused attention needs sm_80", prop.name,
                                                           prop.major, prop.minor));
        RABBIT_CUDA_CHECK(attention_setup(prop.sharedMemPerBlockOptin));
        cudaStream_t stream = nullptr;
        RABBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        CudnnAttention cudnn;
        std::mt19937 rng(18);
        fmt::print("{} (sm_{}{}); {} heads / {} KV heads x head_dim {}, {}; median of {} calls\n", prop.name, prop.major,
                   prop.minor, s.heads, s.kv_heads, s.head_dim, dtype, rounds);
        bool ok = true;
        for (const Case& k : cases) ok = run_case(s, k, rounds, stream, cudnn, rng, prop) && ok;
        RABBIT_CUDA_CHECK(cudaStreamDestroy(stream));
        fmt::print("{}\n", ok ? "cuDNN matches rabbit's kernel" : "FAIL: cuDNN differs from rabbit's kernel or refused a shape");
        return ok ? 0 : 1;
    } catch (const Error& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(e.code());
    }
}
