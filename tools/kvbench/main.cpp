// SPDX-License-Identifier: Apache-2.0
// rabbit-kvbench: how long one decode step's attention takes on the CPU, per layer, over a KV
// cache of P positions, for each cache type: f32 in the CPU engine's own layout (keys in
// transposed blocks, the loop CpuEngine::attention runs), and bf16, f16, q8_0 rows through
// kv_attention (the CPU engine's other types, and the CUDA engine's host cache attended on the
// CPU). The cache's contents do not change the speed: random values, no prefill, so that a
// 32K context is measured in seconds. Reports the median of --rounds steps and the cache bytes
// read per second, from the wall time; and the process's CPU time per step (all threads), which
// other processes on a shared machine do not inflate.
//   rabbit-kvbench [--heads 28 --kv-heads 4 --head-dim 128] [--ctx 1024,8192,32768] [--threads N]
// Defaults are Qwen2.5-7B's attention shape.
#include "backend/cpu/kernels.h"
#include "backend/cpu/kv_attention.h"
#include "cli/option_checks.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "common/timing.h"
#include "engine/kv_cache.h"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <random>
#include <time.h>
#include <vector>

using namespace rabbit;

namespace {

// The process's CPU time in ms, every thread's.
double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

// The median wall and CPU milliseconds of one call of fn, over `rounds` after one warm-up.
struct Timing {
    double wall_ms = 0, cpu_ms = 0;
};
template <class Fn>
Timing time_steps(int rounds, Fn&& fn) {
    std::vector<double> wall, cpu;
    for (int r = 0; r <= rounds; ++r) {
        const auto t0 = Clock::now();
        const double c0 = cpu_ms();
        fn();
        if (r) wall.push_back(seconds_since(t0) * 1e3), cpu.push_back(cpu_ms() - c0);
    }
    return {median(wall), median(cpu)};
}

struct Shape {
    size_t heads = 28, kv_heads = 4, head_dim = 128;
};

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
}

// One step of the CPU engine's f32 attention (CpuEngine::attention) at position ctx - 1.
Timing f32_step(ThreadPool& pool, const Shape& s, size_t ctx, int rounds, std::mt19937& rng) {
    const size_t hd = s.head_dim, group = s.heads / s.kv_heads;
    const size_t padded = (ctx + k_attn_block - 1) / k_attn_block * k_attn_block;
    std::vector<std::vector<float>> k(s.kv_heads), v(s.kv_heads);
    for (size_t g = 0; g < s.kv_heads; ++g) k[g] = random_floats(padded * hd, rng), v[g] = random_floats(padded * hd, rng);
    const std::vector<float> q = random_floats(s.heads * hd, rng);
    std::vector<float> out(s.heads * hd);
    const float scale = 1.0f / std::sqrt(float(hd));
    return time_steps(rounds, [&] {
        pool.parallel_for(s.heads, [&](size_t b, size_t e) {
            thread_local std::vector<float> p;
            for (size_t h = b; h < e; ++h) {
                p.resize(padded);
                attention_scores(q.data() + h * hd, k[h / group].data(), hd, 0, ctx, scale, p.data());
                softmax(p.data(), ctx);
                attention_values(p.data(), v[h / group].data(), hd, 0, ctx, out.data() + h * hd);
            }
        });
    });
}

// One step of kv_attention over rows of type t at position ctx - 1.
Timing rows_step(ThreadPool& pool, const Shape& s, size_t ctx, DType t, int rounds, std::mt19937& rng) {
    const size_t hd = s.head_dim, rb = kv_row_bytes(t, hd);
    std::vector<std::vector<uint8_t>> k(s.kv_heads), v(s.kv_heads);
    std::vector<const uint8_t*> kp, vp;
    for (size_t g = 0; g < s.kv_heads; ++g) {
        k[g].resize(ctx * rb);
        v[g].resize(ctx * rb);
        for (size_t j = 0; j < ctx; ++j) {
            const std::vector<float> row = random_floats(2 * hd, rng);
            store_kv_row(t, row.data(), hd, k[g].data() + j * rb);
            store_kv_row(t, row.data() + hd, hd, v[g].data() + j * rb);
        }
        kp.push_back(k[g].data());
        vp.push_back(v[g].data());
    }
    const std::vector<float> q = random_floats(s.heads * hd, rng);
    std::vector<float> out(s.heads * hd);
    const KvAttentionParams p = kv_decode_params(q.data(), out.data(), kp.data(), vp.data(), t, s.heads, s.kv_heads, hd, ctx);
    return time_steps(rounds, [&] { kv_attention(pool, p); });
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"How long a decode step's attention takes on the CPU, per layer, for each KV cache type"};
    Shape s;
    std::vector<size_t> contexts = {1024, 8192, 32768};
    size_t threads = 0;
    int rounds = 5;
    positive(app.add_option("--heads", s.heads, "Query heads (default 28)"), 1024);
    positive(app.add_option("--kv-heads", s.kv_heads, "KV heads (default 4)"), 1024);
    positive(app.add_option("--head-dim", s.head_dim, "head_dim (default 128)"), 1024);
    app.add_option("--ctx", contexts, "Cache lengths, comma-separated (default 1024,8192,32768)")->delimiter(',');
    zero_or_positive(app.add_option("--threads", threads, "Threads (default or 0: every processor)"), "every processor");
    positive(app.add_option("--rounds", rounds, "Measured steps per case; the median is reported (default 5)"), 1000);
    CLI11_PARSE(app, argc, argv);
    try {
        if (s.heads % s.kv_heads) throw Error(ExitCode::usage, "--heads must be a multiple of --kv-heads");
        ThreadPool pool(threads);
        std::mt19937 rng(18);
        fmt::print("shape: {} heads / {} kv heads x head_dim {}; {} threads; median of {} steps\n", s.heads, s.kv_heads,
                   s.head_dim, pool.size(), rounds);
        fmt::print("{:>8} {:>6} {:>14} {:>12} {:>12} {:>12}\n", "ctx", "type", "cache/layer", "ms/layer", "cache GB/s",
                   "CPU ms");
        for (size_t ctx : contexts) {
            if (ctx == 0) throw Error(ExitCode::usage, "--ctx: a context of at least one position");
            for (DType t : {DType::f32, DType::bf16, DType::f16, DType::q8_0}) {
                if (t == DType::q8_0 && s.head_dim % 32) continue;
                const Timing tm = t == DType::f32 ? f32_step(pool, s, ctx, rounds, rng) : rows_step(pool, s, ctx, t, rounds, rng);
                const double bytes = 2.0 * s.kv_heads * ctx * double(kv_row_bytes(t, s.head_dim));
                fmt::print("{:>8} {:>6} {:>11.1f} MiB {:>12.3f} {:>12.2f} {:>12.3f}\n", ctx, dtype_name(t),
                           bytes / (1 << 20), tm.wall_ms, bytes / (tm.wall_ms * 1e-3) / 1e9, tm.cpu_ms);
            }
        }
    } catch (const Error& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(e.code());
    }
    return 0;
}
