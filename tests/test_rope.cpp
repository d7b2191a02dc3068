// SPDX-License-Identifier: Apache-2.0
// RoPE scaling against the formulas written out in double (transformers' within f32
// rounding), dynamic NTK's state between forwards, and both engines on prompts run in
// --batch parts. tests/data/goldens holds transformers' logits for each type past the
// original context (all of them checked in test_engine.cpp and test_cuda_engine.cpp).
#include "backend/cpu/cpu_engine.h"
#include "engine/rope.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "gpu.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <cmath>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

using namespace rabbit;

namespace {

const double k_pi = 3.14159265358979323846;

ModelConfig qwen_like(RopeScaling::Type type) {
    ModelConfig c;
    c.head_dim = 128;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 32768;
    c.rope_scaling.type = type;
    c.rope_scaling.factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 32768;
    return c;
}

double plain(const ModelConfig& c, size_t i) { return 1.0 / std::pow(c.rope_theta, 2.0 * double(i) / c.head_dim); }

} // namespace

TEST_CASE("YaRN keeps fast pairs, divides slow ones by the factor, ramps between", "[rope]") {
    ModelConfig c = qwen_like(RopeScaling::Type::yarn);
    const std::vector<float> inv = rope_inv_freq(c);
    REQUIRE(inv.size() == 64);
    // The pair index where a frequency turns r times over the original context.
    auto at = [&](double r) { return 128 * std::log(32768 / (r * 2 * k_pi)) / (2 * std::log(1e6)); };
    const double low = std::max(0.0, std::floor(at(32))), high = std::min(127.0, std::ceil(at(1)));
    REQUIRE(low == 23);
    REQUIRE(high == 40);
    for (size_t i = 0; i < 64; ++i) {
        const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
        const double want = plain(c, i) / 4 * ramp + plain(c, i) * (1 - ramp);
        REQUIRE(inv[i] == Approx(want).epsilon(1e-5));
    }
    // 0.1 ln(factor) + 1 on cos and sin.
    REQUIRE(rope_attention_factor(c) == Approx(0.1 * std::log(4.0) + 1));
    float cs[64], sn[64];
    RopeTables t(c);
    t.cos_sin(70000, cs, sn);
    for (size_t i = 0; i < 64; ++i) {
        REQUIRE(std::hypot(cs[i], sn[i]) == Approx(0.1 * std::log(4.0) + 1).epsilon(1e-5));
        REQUIRE(std::atan2(sn[i], cs[i]) == Approx(std::remainder(70000.0 * double(inv[i]), 2 * k_pi)).margin(2e-3));
    }
    // mscale / mscale_all_dim (DeepSeek's form), an explicit attention_factor, and no scaling at factor 1.
    c.rope_scaling.mscale = 0.707, c.rope_scaling.mscale_all_dim = 1.0;
    REQUIRE(rope_attention_factor(c) == Approx((0.0707 * std::log(4.0) + 1) / (0.1 * std::log(4.0) + 1)));
    c.rope_scaling.attention_factor = 1.25;
    REQUIRE(rope_attention_factor(c) == 1.25);
    c.rope_scaling = qwen_like(RopeScaling::Type::yarn).rope_scaling;
    c.rope_scaling.factor = 1.0;
    REQUIRE(rope_attention_factor(c) == 1.0);
}

TEST_CASE("dynamic NTK recomputes the base as a forward grows past the context, as transformers does", "[rope]") {
    ModelConfig c = qwen_like(RopeScaling::Type::dynamic);
    c.max_position_embeddings = 64, c.head_dim = 16, c.rope_theta = 10000;
    auto scaled = [&](double len, size_t i) {
        const double base = 1e4 * std::pow(4.0 * len / 64 - 3, 16.0 / 14);
        return 1.0 / std::pow(base, 2.0 * double(i) / 16);
    };
    RopeTables t(c);
    const std::vector<float> start = t.inv_freq();
    for (size_t i = 0; i < 8; ++i) REQUIRE(start[i] == Approx(plain(c, i)).epsilon(1e-6));
    t.begin_forward(64); // inside the context: unchanged
    REQUIRE(t.inv_freq() == start);
    t.begin_forward(100); // a prompt to position 99: the base for 100
    for (size_t i = 0; i < 8; ++i) REQUIRE(t.inv_freq()[i] == Approx(scaled(100, i)).epsilon(1e-5));
    t.begin_forward(101); // a decode step: grows again
    for (size_t i = 0; i < 8; ++i) REQUIRE(t.inv_freq()[i] == Approx(scaled(101, i)).epsilon(1e-5));
    const std::vector<float> at101 = t.inv_freq();
    t.begin_forward(80); // shorter than the longest seen but past the context: kept
    REQUIRE(t.inv_freq() == at101);
    t.begin_forward(64); // back at the context's end, not inside it: kept
    REQUIRE(t.inv_freq() == at101);
    t.begin_forward(10); // inside: back to the unscaled frequencies
    REQUIRE(t.inv_freq() == start);
    t.begin_forward(120);
    t.reset(); // a new sequence starts as a freshly loaded model
    REQUIRE(t.inv_freq() == start);
}

TEST_CASE("longrope divides by the short factors, or the long ones past the original context", "[rope]") {
    ModelConfig c = qwen_like(RopeScaling::Type::longrope);
    c.head_dim = 8, c.rope_theta = 10000, c.max_position_embeddings = 128;
    c.rope_scaling.factor = 0; // derived: 128 / 32
    c.rope_scaling.original_max_position_embeddings = 32;
    c.rope_scaling.short_factor = {1, 1.5, 2, 3};
    c.rope_scaling.long_factor = {1, 2, 4, 8};
    RopeTables t(c);
    for (size_t i = 0; i < 4; ++i) REQUIRE(t.inv_freq()[i] == Approx(plain(c, i) / c.rope_scaling.short_factor[i]).epsilon(1e-6));
    t.begin_forward(33);
    for (size_t i = 0; i < 4; ++i) REQUIRE(t.inv_freq()[i] == Approx(plain(c, i) / c.rope_scaling.long_factor[i]).epsilon(1e-6));
    t.begin_forward(32);
    for (size_t i = 0; i < 4; ++i) REQUIRE(t.inv_freq()[i] == Approx(plain(c, i) / c.rope_scaling.short_factor[i]).epsilon(1e-6));
    REQUIRE(rope_attention_factor(c) == Approx(std::sqrt(1 + std::log(4.0) / std::log(32.0))));
}

TEST_CASE("RoPE scaling past the original context: a prompt in --batch parts is one forward", "[engine][hf][rope]") {
    // transformers runs the prompt as one forward, so dynamic NTK's base (and longrope's
    // choice of factors) is that of the whole prompt at every position; rabbit's parts of
    // --batch tokens must use it too, and greedy decoding then grows it step by step.
    for (const char* name : {"llama-dynamic-ntk", "qwen3-dynamic-ntk", "qwen2-longrope", "qwen2-yarn"}) {
        INFO(name);
        const test::HfGolden g = test::read_hf_golden(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::make_golden_model(g, "f32", dir.path()));
        EngineOptions options;
        options.batch = 16; // the prompt in five parts, the first wholly inside the original context
        CpuEngine engine(model, options);
        std::vector<float> logits;
        engine.forward(g.prompt.data(), g.prompt.size(), g.prompt.size(), logits);
        CHECK(test::worst_error(logits, g.prompt_logits, 1e-4, 1e-4) <= 1.0);
        const std::vector<int32_t> seq = test::greedy(engine, g.prompt, g.prompt.size() + g.greedy.size());
        CHECK(std::vector<int32_t>(seq.begin() + long(g.prompt.size()), seq.end()) == g.greedy);
    }
}

TEST_CASE("CUDA RoPE scaling: a prompt in --batch parts is one forward, as on the CPU", "[gpu][cuda-engine][rope]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    // Dynamic NTK's base and longrope's factors come from the whole prompt (RopeTables::
    // begin_forward), not from each pass of --batch tokens.
    for (const char* name : {"llama-dynamic-ntk", "qwen2-longrope"}) {
        INFO(name);
        const test::HfGolden g = test::read_hf_golden(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::make_golden_model(g, "f32", dir.path()));
        CpuEngine cpu(model, {});
        CudaEngineOptions options;
        options.batch = 16;
        CudaEngine gpu(model, options);
        const std::vector<float> want = test::prompt_and_steps_logits(cpu, g.prompt),
                                 got = test::prompt_and_steps_logits(gpu, g.prompt);
        CHECK(test::worst_error(got, want, 1e-4, 1e-4) <= 1.0);
        const std::vector<float> prompt_rows(got.begin(), got.begin() + long(g.prompt_logits.size()));
        CHECK(test::worst_error(prompt_rows, g.prompt_logits, 1e-4, 1e-4) <= 1.0);
    }
#endif
}
