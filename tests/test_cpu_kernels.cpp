// SPDX-License-Identifier: Apache-2.0
// The CPU side's tests that are not rows of the op table (tests/test_ops.cpp, where the
// kernels are checked against their plain loops): RoPE's frequencies, the thread pool, and the
// sampler's behaviour (filters, penalties, seeds, its draws' distribution).
#include "common/thread_pool.h"
#include "engine/rope.h"
#include "engine/sampler.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <random>

using namespace rabbit;
using test::random_vector;

TEST_CASE("RoPE frequencies: default, linear and llama3 scaling", "[kernels][rope]") {
    ModelConfig c;
    c.head_dim = 128;
    c.rope_theta = 500000.0;
    std::vector<float> plain = rope_inv_freq(c);
    REQUIRE(plain.size() == 64);
    for (size_t i = 0; i < 64; ++i) REQUIRE(plain[i] == Approx(1.0 / std::pow(500000.0, 2.0 * double(i) / 128)).epsilon(1e-6));
    c.rope_scaling.type = RopeScaling::Type::linear;
    c.rope_scaling.factor = 4;
    std::vector<float> linear = rope_inv_freq(c);
    for (size_t i = 0; i < 64; ++i) REQUIRE(linear[i] == Approx(plain[i] / 4).epsilon(1e-6));
    // Llama 3.1: factor 8, low 1, high 4, original context 8192.
    c.rope_scaling = {RopeScaling::Type::llama3, 8.0, 1.0, 4.0, 8192};
    std::vector<float> l3 = rope_inv_freq(c);
    const double pi = 3.14159265358979323846;
    for (size_t i = 0; i < 64; ++i) {
        const double f = plain[i], wavelen = 2 * pi / f;
        double want = f;
        if (wavelen > 8192.0) want = f / 8;
        else if (wavelen >= 2048.0) {
            const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
            want = (1 - smooth) * f / 8 + smooth * f;
        }
        REQUIRE(l3[i] == Approx(want).epsilon(1e-5));
    }
    REQUIRE(l3[0] == plain[0]);   // the highest frequency is kept
    REQUIRE(l3[63] < plain[63]);  // the lowest is slowed down
}

TEST_CASE("the thread pool covers every index exactly once", "[kernels]") {
    ThreadPool pool(4);
    for (size_t n : {1, 3, 4, 5, 1000, 1023}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, [&](size_t b, size_t e) {
            for (size_t i = b; i < e; ++i) ++hits[i];
        });
        for (size_t i = 0; i < n; ++i) REQUIRE(hits[i] == 1);
    }
}

TEST_CASE("sampling: greedy, filters, repetition penalty, seeds", "[sampler]") {
    // Greedy: the first of equal maxima, as torch.argmax.
    std::vector<float> l = {1.0f, 3.0f, 3.0f, -2.0f};
    Sampler greedy({});
    REQUIRE(greedy.sample(l, {}) == 1);
    // Repetition penalty: a positive logit is divided, a negative one multiplied.
    std::vector<float> r = {2.0f, 1.9f, -1.0f};
    SamplingParams rp;
    rp.repetition_penalty = 2.0f;
    REQUIRE(Sampler(rp).sample(r, {0, 0, 2}) == 1);
    REQUIRE(r[0] == 1.0f);
    REQUIRE(r[2] == -2.0f);
    // With sampling, filters that leave one token make it certain.
    std::mt19937 rng(5);
    std::vector<float> base = random_vector(1000, rng, -6.0f, 6.0f);
    const int32_t top = argmax(base);
    for (int i = 0; i < 3; ++i) {
        auto draw = [&](void (*filter)(SamplingParams&)) {
            SamplingParams p;
            p.temperature = 5.0f;
            p.seed = uint64_t(i);
            filter(p);
            std::vector<float> v = base;
            return Sampler(p).sample(v, {});
        };
        REQUIRE(draw([](SamplingParams& p) { p.top_k = 1; }) == top);
        REQUIRE(draw([](SamplingParams& p) { p.top_p = 1e-6f; }) == top);
        REQUIRE(draw([](SamplingParams& p) { p.min_p = 1.0f; }) == top);
    }
    // Draws follow the softmax: three tokens with probabilities 0.5, 0.3, 0.2.
    SamplingParams t1;
    t1.temperature = 1.0f;
    t1.seed = 42;
    Sampler s(t1);
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 20000; ++i) {
        std::vector<float> v = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
        ++counts[s.sample(v, {})];
    }
    REQUIRE(counts[0] == Approx(10000).margin(400));
    REQUIRE(counts[1] == Approx(6000).margin(400));
    REQUIRE(counts[2] == Approx(4000).margin(400));
    // top_p 0.7 keeps the two most likely (0.5 + 0.3 reaches it); they share the mass.
    SamplingParams tp = t1;
    tp.top_p = 0.7f;
    Sampler sp(tp);
    int seen2 = 0;
    for (int i = 0; i < 2000; ++i) {
        std::vector<float> v = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
        seen2 += sp.sample(v, {}) == 2;
    }
    REQUIRE(seen2 == 0);
    // The same seed gives the same draws.
    Sampler a(t1), b(t1);
    for (int i = 0; i < 100; ++i) {
        std::vector<float> v1 = base, v2 = base;
        REQUIRE(a.sample(v1, {}) == b.sample(v2, {}));
    }
}
