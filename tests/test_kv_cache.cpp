// SPDX-License-Identifier: Apache-2.0
// The KV cache's types (--kv-dtype), its sizes in the planner and `inspect`, attention over a
// row cache (kv_attention, the CPU engine's cache in bf16/f16/q8_0 and the CUDA engine's host
// cache attended on the CPU), and the choice between attending a host cache on the CPU or over
// the link.
#include "backend/cpu/cpu_engine.h"
#include "backend/cpu/kv_attention.h"
#include "common/error.h"
#include "common/quant.h"
#include "common/thread_pool.h"
#include "common/units.h"
#include "engine/kv_cache.h"
#include "engine/memory_plan.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "helpers.h"
#include "reference.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

using namespace rabbit;

namespace {

struct Shape {
    size_t tokens, heads, kv_heads, head_dim, pos, window;
};

} // namespace

TEST_CASE("kv_attention over an f32 row cache is the plain loop's attention, with and without splits", "[kv][cpu-kernels]") {
    std::mt19937 rng(18);
    ThreadPool pool(3);
    // Positions across block boundaries (256), a window, GQA groups, one token (split between
    // threads) and many (not split), odd head dims.
    for (const Shape& s : {Shape{1, 4, 2, 16, 0, 0}, Shape{1, 6, 2, 24, 700, 0}, Shape{1, 8, 1, 64, 1030, 300},
                           Shape{5, 4, 4, 8, 255, 0}, Shape{9, 6, 3, 40, 513, 0}, Shape{3, 2, 1, 16, 40, 17}}) {
        INFO("tokens " << s.tokens << ", heads " << s.heads << "/" << s.kv_heads << ", head_dim " << s.head_dim
                       << ", pos " << s.pos << ", window " << s.window);
        const size_t len = s.pos + s.tokens, q_dim = s.heads * s.head_dim;
        const std::vector<float> q = test::random_vector(s.tokens * q_dim, rng);
        const std::vector<float> k = test::random_vector(s.kv_heads * len * s.head_dim, rng, -2.0f, 2.0f);
        const std::vector<float> v = test::random_vector(s.kv_heads * len * s.head_dim, rng);
        std::vector<const uint8_t*> kp, vp;
        for (size_t g = 0; g < s.kv_heads; ++g) {
            kp.push_back(reinterpret_cast<const uint8_t*>(k.data() + g * len * s.head_dim));
            vp.push_back(reinterpret_cast<const uint8_t*>(v.data() + g * len * s.head_dim));
        }
        std::vector<float> out(s.tokens * q_dim, std::nanf(""));
        KvAttentionParams p;
        p.q = q.data();
        p.q_stride = q_dim;
        p.out = out.data();
        p.out_stride = q_dim;
        p.k = kp.data();
        p.v = vp.data();
        p.type = DType::f32;
        p.tokens = s.tokens;
        p.heads = s.heads;
        p.kv_heads = s.kv_heads;
        p.head_dim = s.head_dim;
        p.pos = s.pos;
        p.window = s.window;
        p.scale = 1.0f / std::sqrt(float(s.head_dim));
        kv_attention(pool, p);
        const ref::AttentionShape shape{int(s.tokens), int(s.heads), int(s.kv_heads), int(s.head_dim),
                                         int64_t(s.pos), int64_t(s.window), int64_t(len), double(p.scale)};
        test::require_close(out, ref::attention(q, int64_t(q_dim), k, v, shape), test::tol_for(DType::f32));
    }
}

TEST_CASE("a KV row in bf16, f16 or q8_0 reads back within its type's rounding", "[kv]") {
    std::mt19937 rng(7);
    const std::vector<float> x = test::random_vector(96, rng, -3.0f, 3.0f);
    for (DType t : {DType::f32, DType::bf16, DType::f16, DType::q8_0}) {
        INFO(dtype_name(t));
        std::vector<uint8_t> row(kv_row_bytes(t, 96));
        store_kv_row(t, x.data(), 96, row.data());
        std::vector<float> back(96);
        dequantize(t, row.data(), back.data(), 96);
        // q8_0: half a step of the block's largest value / 127; bf16 2^-9, f16 2^-11 relative.
        const double rel = t == DType::f32 ? 0 : t == DType::bf16 ? 1.0 / 256 : t == DType::f16 ? 1.0 / 1024 : 0;
        for (size_t i = 0; i < 96; ++i) {
            const double tol = t == DType::q8_0 ? 3.0 / 127 * 0.51 + 1e-3 : rel * std::fabs(x[i]) + 1e-7;
            REQUIRE(std::fabs(back[i] - x[i]) <= tol);
        }
    }
    REQUIRE(kv_row_bytes(DType::q8_0, 64) == 68);
    REQUIRE_THROWS_AS(kv_row_bytes(DType::q8_0, 24), Error);
    REQUIRE_THROWS_AS(parse_kv_dtype("q4_0"), Error);
    REQUIRE(parse_kv_dtype("bf16") == DType::bf16);
}

TEST_CASE("the planner and the KV sizes count the cache's type", "[kv][plan]") {
    ModelConfig c;
    c.num_layers = 28;
    c.num_kv_heads = 4;
    c.head_dim = 128;
    // Qwen2.5-7B: 28 layers x 2 x 4 heads x 128: 57344 bytes per position in bf16.
    REQUIRE(kv_bytes_per_position(c, DType::bf16) == 57344);
    REQUIRE(kv_bytes_per_position(c, DType::f32) == 2 * 57344);
    REQUIRE(kv_bytes_per_position(c, DType::q8_0) == 28ull * 2 * 4 * 136);
    REQUIRE(kv_positions_in(c, DType::bf16, 57344ull * 1000 + 5) == 1000);
    REQUIRE(kv_cache_bytes(c, 4096, DType::f16) == 4096ull * 57344);

    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "2", "--dtype", "f32"}, dir));
    MemoryPlanInput in;
    in.config = model.config();
    in.units = plan_units(model.manifest().units);
    in.weight_dtype = DType::f32;
    in.budget = 1ull << 30;
    in.ctx = 2048;
    const uint64_t f32 = plan_memory(in).kv_cache_bytes;
    in.kv_dtype = DType::bf16;
    REQUIRE(plan_memory(in).kv_cache_bytes * 2 == f32);
    in.kv_dtype = DType::q8_0;
    in.config.head_dim = 32;
    REQUIRE(plan_memory(in).kv_cache_bytes == kv_cache_bytes(in.config, 2048, DType::q8_0));
}

TEST_CASE("choosing where a host cache is attended: the CPU when the link would carry the cache, else the GPU", "[kv][plan]") {
    KvAttendRates r;
    r.link_bps = 25e9;
    r.cpu_bps = 50e9;
    r.round_trip_s = 20e-6;
    // A 72B at 32K in bf16: 10.7 GB of cache a token, 2 GB of weights streamed: the CPU.
    KvAttendCost big = choose_kv_attend(10'737'418'240ull, 2'000'000'000ull, 80, r);
    REQUIRE(big.chosen == KvAttend::cpu);
    REQUIRE(big.gpu_s == Approx((2e9 + 10'737'418'240.0) / 25e9));
    // A short context with everything resident: a few MB over the link beat 80 round trips.
    REQUIRE(choose_kv_attend(2'000'000ull, 0, 80, r).chosen == KvAttend::gpu);
    // Unmeasured: the GPU, as before.
    REQUIRE(choose_kv_attend(10'000'000'000ull, 0, 80, KvAttendRates{}).chosen == KvAttend::gpu);
}

TEST_CASE("the CPU engine with a bf16, f16 or q8_0 KV cache: the f32 cache's logits within each type's tolerance", "[kv][engine]") {
    // Measured (see docs/ARCHITECTURE.md, "The KV cache's types"): the largest logit error
    // over the prompt and three steps, as a share of the logits' RMS.
    struct Case {
        std::vector<std::string> genmodel;
        DType type;
        double share; // tolerance: share of the RMS, absolute and relative
    };
    const std::vector<std::string> qwen2 = {"-p", "tiny-qwen2", "--seed", "5", "--dtype", "f32"};
    const std::vector<std::string> qwen3 = {"-p", "tiny-qwen3", "--seed", "6", "--dtype", "f32", "--head-dim", "32"};
    for (const Case& cs : {Case{qwen2, DType::bf16, 2e-2}, Case{qwen2, DType::f16, 4e-3}, Case{qwen3, DType::bf16, 2e-2},
                           Case{qwen3, DType::f16, 4e-3}, Case{qwen3, DType::q8_0, 3e-2}}) {
        INFO(cs.genmodel[1] << ", --kv-dtype " << dtype_name(cs.type));
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::generate_and_split(cs.genmodel, dir));
        const std::vector<int32_t> prompt = test::long_prompt(300, int32_t(model.config().vocab_size));
        EngineOptions o;
        o.batch = 128; // the prompt in three parts, the later ones attending the earlier ones' cache
        CpuEngine reference(model, o);
        o.kv_dtype = cs.type;
        CpuEngine e(model, o);
        REQUIRE(e.kv_dtype() == cs.type);
        const std::vector<float> want = test::prompt_and_steps_logits(reference, prompt);
        const std::vector<float> got = test::prompt_and_steps_logits(e, prompt);
        const double w = test::worst_error(got, want, cs.share * test::rms(want), cs.share);
        WARN(cs.genmodel[1] << " " << dtype_name(cs.type) << ": largest logit error " << w << " of the tolerance");
        CHECK(w <= 1.0);
        // Not the f32 path by another name: the cache's rounding shows.
        if (cs.type != DType::f32) CHECK(test::worst_error(got, want, 1e-7, 0) > 1.0);
    }
}

TEST_CASE("a q8_0 KV cache on a head_dim that is not whole blocks is refused in one line", "[kv][engine]") {
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "2", "--dtype", "f32"}, dir));
    EngineOptions o;
    o.kv_dtype = DType::q8_0; // head_dim 24
    REQUIRE_THROWS_WITH(CpuEngine(model, o), Catch::Contains("multiple of 32") && Catch::Contains("24"));
}

TEST_CASE("inspect shows the KV bytes per position and at --ctx in each place, and the most context each tier holds", "[kv][cli]") {
    test::TempDir dir;
    const std::string split = test::generate_and_split({"-p", "tiny-qwen3", "--seed", "2", "--dtype", "f32", "--head-dim", "32"}, dir);
    const ModelConfig c = SplitModel::open(split).config();
    const test::RunResult r = test::run_rabbit({"inspect", split, "--ctx", "1000", "--vram-budget", "1G", "--ram-budget",
                                                "64M", "--kv-dtype", "q8_0"});
    REQUIRE(r.exit_code == 0);
    // q8_0 on the CPU; the GPU keeps its compute type (f32 for f32 weights).
    const uint64_t q8 = kv_bytes_per_position(c, DType::q8_0), f32 = kv_bytes_per_position(c, DType::f32);
    REQUIRE_THAT(r.out, Catch::Contains("CPU (RAM)   q8_0: " + format_bytes(q8) + " per position, " +
                                        format_bytes(q8 * 1000) + " at 1000"));
    REQUIRE_THAT(r.out, Catch::Contains("GPU (VRAM)  f32: " + format_bytes(f32) + " per position"));
    REQUIRE_THAT(r.out, Catch::Contains("GPU (host)  f32: "));
    REQUIRE_THAT(r.out, Catch::Contains("most ctx    RAM 64.0 MiB: " + std::to_string((64ull << 20) / q8) +
                                        " positions of q8_0"));
    REQUIRE_THAT(r.out, Catch::Contains("most ctx    RAM 64.0 MiB: " + std::to_string((64ull << 20) / f32) +
                                        " positions of f32"));
    REQUIRE_THAT(r.out, Catch::Contains("most ctx    VRAM 1.00 GiB: "));
    // Refused in one line: a type the cache has no layout for.
    const test::RunResult bad = test::run_rabbit({"inspect", split, "--kv-dtype", "q4_0"});
    REQUIRE(bad.exit_code != 0);
    REQUIRE_THAT(bad.err, Catch::Contains("--kv-dtype"));
}

TEST_CASE("a KV cache filled with synthetic positions decodes from there as after a prompt of as many", "[kv][engine][bench]") {
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen2", "--seed", "3", "--dtype", "f32"}, dir));
    const size_t n = 300; // more than one of the attention kernels' blocks of positions
    const std::vector<int32_t> steps = {5, 99, 400};
    // Three decode steps from where the engine is; their logits.
    auto decode = [&](Engine& e) {
        std::vector<float> all, logits;
        for (int32_t t : steps) {
            e.forward(&t, 1, 1, logits);
            all.insert(all.end(), logits.begin(), logits.end());
        }
        return all;
    };
    for (DType type : {DType::f32, DType::bf16, DType::f16}) {
        INFO("--kv-dtype " << dtype_name(type));
        EngineOptions o;
        o.kv_dtype = type;
        o.ctx = n + steps.size() + 1; // as bench sizes it
        CpuEngine prefilled(model, o), filled(model, o), again(model, o), other_seed(model, o), empty(model, o);
        const std::vector<int32_t> prompt = test::long_prompt(n, int32_t(model.config().vocab_size));
        std::vector<float> logits;
        prefilled.forward(prompt.data(), n, 1, logits);
        filled.fill_cache(n, 1);
        again.fill_cache(n, 1);
        other_seed.fill_cache(n, 2);
        REQUIRE(filled.position() == n);
        const std::vector<float> a = decode(prefilled), b = decode(filled), c = decode(again), d = decode(other_seed);
        const std::vector<float> e = decode(empty);
        // The steps ran at positions n.., over as many cached positions as after the prompt.
        REQUIRE(filled.position() == n + steps.size());
        REQUIRE(filled.position() == prefilled.position());
        REQUIRE(filled.kv_cache_bytes() == prefilled.kv_cache_bytes());
        REQUIRE(filled.kv_cache_bytes() >= (n + steps.size()) * kv_bytes_per_position(model.config(), type));
        // The same seed, the same cache; the cache is attended: another seed or none changes the logits.
        REQUIRE(b == c);
        REQUIRE(test::worst_error(b, d, 1e-6, 0) > 1.0);
        REQUIRE(test::worst_error(b, e, 1e-6, 0) > 1.0);
        REQUIRE(test::worst_error(b, a, 1e-6, 0) > 1.0); // synthetic, not the prompt's keys and values
        // A fill is a prefix of a longer one: n / 2 positions, or n cut to n / 2, decode alike
        // (also at the same RoPE positions), and both differ from the n positions' decode.
        CpuEngine half(model, o), cut(model, o);
        half.fill_cache(n / 2, 1);
        cut.fill_cache(n, 1);
        cut.truncate(n / 2);
        const std::vector<float> h = decode(half);
        REQUIRE(h == decode(cut));
        REQUIRE(test::worst_error(h, b, 1e-6, 0) > 1.0);
        // A fill past the context is refused in one line, as a prompt would be.
        CpuEngine small(model, o);
        REQUIRE_THROWS_WITH(small.fill_cache(n + steps.size() + 2, 1), Catch::Contains("the context is full"));
    }
}
