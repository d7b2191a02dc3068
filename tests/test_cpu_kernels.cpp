// SPDX-License-Identifier: Apache-2.0
// The CPU kernels against plain double-precision loops, on fresh random inputs (never zeros)
// of odd and real sizes, with a tolerance of atol + rtol * |reference|.
#include "backend/cpu/kernels.h"
#include "common/thread_pool.h"
#include "engine/rope.h"
#include "engine/sampler.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <random>

using namespace rabbit;

namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Weights in the given dtype, and their exact f32 values.
struct TestMatrix {
    std::vector<uint8_t> bytes;
    std::vector<float> values;
    Matrix m;
};

TestMatrix random_matrix(size_t rows, size_t cols, DType t, std::mt19937& rng) {
    TestMatrix tm;
    std::vector<float> f = random_vector(rows * cols, rng, 1.0f / std::sqrt(float(cols)));
    tm.bytes.resize(rows * cols * dtype_size(t));
    convert_elements(f.data(), DType::f32, tm.bytes.data(), t, f.size());
    tm.values.resize(f.size());
    convert_elements(tm.bytes.data(), t, tm.values.data(), DType::f32, f.size());
    tm.m = {tm.bytes.data(), t, rows, cols};
    return tm;
}

void require_close(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        INFO("element " << i << ": " << got[i] << " vs " << want[i]);
        REQUIRE(std::fabs(double(got[i]) - want[i]) <= atol + rtol * std::fabs(want[i]));
    }
}

} // namespace

TEST_CASE("matmul equals the plain loop for every weight dtype, shape and token count", "[kernels]") {
    std::mt19937 rng(1234);
    ThreadPool pool(3);
    struct Shape {
        size_t rows, cols, tokens;
    };
    for (Shape s : {Shape{1, 1, 1}, Shape{7, 9, 1}, Shape{8, 16, 2}, Shape{769, 5125, 1}, Shape{769, 131, 5},
                    Shape{896, 896, 1}, Shape{130, 896, 17}, Shape{13, 4864, 3}}) {
        for (DType t : {DType::f32, DType::bf16, DType::f16}) {
            INFO(s.rows << "x" << s.cols << " weights, " << s.tokens << " tokens, " << dtype_name(t));
            TestMatrix w = random_matrix(s.rows, s.cols, t, rng);
            std::vector<float> x = random_vector(s.tokens * s.cols, rng);
            std::vector<float> bias = random_vector(s.rows, rng);
            // Where matmul rounds the activations to bf16, so does the reference.
            std::vector<float> xr = x;
            const bool rounds = matmul_rounds_activations(w.m, s.tokens);
            if (rounds)
                for (auto& v : xr) v = bf16_to_f32(f32_to_bf16(v));
            for (bool with_bias : {false, true}) {
                std::vector<float> y(s.tokens * s.rows);
                matmul(pool, x.data(), s.tokens, w.m, with_bias ? bias.data() : nullptr, y.data());
                std::vector<double> want(y.size());
                for (size_t tk = 0; tk < s.tokens; ++tk)
                    for (size_t r = 0; r < s.rows; ++r) {
                        double acc = with_bias ? bias[r] : 0.0;
                        for (size_t k = 0; k < s.cols; ++k) acc += double(xr[tk * s.cols + k]) * w.values[r * s.cols + k];
                        want[tk * s.rows + r] = acc;
                    }
                INFO("instructions: " << isa_name(cpu_isa()) << (rounds ? ", bf16 activations" : ""));
                require_close(y, want, 1e-4, 1e-4); // f32 accumulation over up to 5125 terms
            }
        }
    }
}

TEST_CASE("attention's products over the blocked cache equal their plain loops", "[kernels]") {
    std::mt19937 rng(5);
    const size_t B = k_attn_block;
    // Head sizes with and without a register-resident path; ranges that start and end inside
    // blocks, span one block or many, and a window that skips whole blocks.
    for (size_t hd : {8, 24, 32, 64, 96, 128, 256}) {
        for (auto [first, end] : {std::pair<size_t, size_t>{0, 1}, {0, 16}, {3, 14}, {0, 77}, {40, 131}, {17, 200}}) {
            INFO("head_dim " << hd << ", positions [" << first << ", " << end << ")");
            const size_t blocks = (end + B - 1) / B;
            std::vector<float> keys = random_vector(blocks * B * hd, rng), v = random_vector(blocks * B * hd, rng);
            std::vector<float> q = random_vector(hd, rng), kb(keys.size());
            for (size_t j = 0; j < blocks * B; ++j)
                for (size_t d = 0; d < hd; ++d) kb[j / B * hd * B + d * B + j % B] = keys[j * hd + d];
            std::vector<float> scores(blocks * B, -1.0f);
            attention_scores(q.data(), kb.data(), hd, first, end, 0.125f, scores.data());
            std::vector<float> got(scores.begin() + long(first), scores.begin() + long(end));
            std::vector<double> want(end - first);
            for (size_t j = first; j < end; ++j) {
                double dot = 0;
                for (size_t d = 0; d < hd; ++d) dot += double(q[d]) * keys[j * hd + d];
                want[j - first] = 0.125 * dot;
            }
            require_close(got, want, 1e-5, 1e-5);

            std::vector<float> p = random_vector(blocks * B, rng), out(hd, 7.0f);
            attention_values(p.data(), v.data(), hd, first, end, out.data());
            std::vector<double> sum(hd, 0.0);
            for (size_t j = first; j < end; ++j)
                for (size_t d = 0; d < hd; ++d) sum[d] += double(p[j]) * v[j * hd + d];
            require_close(out, sum, 1e-5, 1e-5);
        }
    }
}

TEST_CASE("softmax equals its plain loop, from tiny to huge spreads", "[kernels]") {
    std::mt19937 rng(8);
    for (size_t n : {1, 5, 16, 17, 100, 4099}) {
        for (float spread : {0.01f, 3.0f, 40.0f, 300.0f}) {
            INFO("n " << n << ", spread " << spread);
            std::vector<float> x = random_vector(n, rng, spread);
            std::vector<double> want(n);
            double max = -1e300, sum = 0;
            for (float v : x) max = std::max(max, double(v));
            for (size_t i = 0; i < n; ++i) sum += want[i] = std::exp(double(x[i]) - max);
            for (double& w : want) w /= sum;
            softmax(x.data(), n);
            require_close(x, want, 1e-7, 1e-5); // f32 sums of thousands of terms
        }
    }
}

TEST_CASE("rmsnorm, swiglu, rope and dot equal their plain loops", "[kernels]") {
    std::mt19937 rng(99);
    for (size_t n : {1, 7, 64, 769, 5125}) {
        INFO("n " << n);
        std::vector<float> x = random_vector(n, rng, 3.0f), w = random_vector(n, rng);
        std::vector<float> y(n);
        rmsnorm(x.data(), w.data(), 1e-6f, n, y.data());
        double ss = 0;
        for (float v : x) ss += double(v) * v;
        const double inv = 1.0 / std::sqrt(ss / double(n) + 1e-6);
        std::vector<double> want(n);
        for (size_t i = 0; i < n; ++i) want[i] = double(w[i]) * (x[i] * inv);
        require_close(y, want, 1e-5, 1e-5);

        std::vector<float> b = random_vector(n, rng);
        double dot = 0;
        for (size_t i = 0; i < n; ++i) dot += double(x[i]) * b[i];
        REQUIRE(std::fabs(dot_f32(x.data(), b.data(), n) - dot) <= 1e-4 + 1e-5 * std::fabs(dot) * std::sqrt(double(n)));
    }
    for (size_t inter : {1, 5, 176, 4864}) {
        std::vector<float> gu = random_vector(3 * 2 * inter, rng, 4.0f), out(3 * inter);
        for (size_t i = 0; i < gu.size(); i += 7) gu[i] *= 30.0f; // far into both tails
        ThreadPool pool(3);
        swiglu(pool, gu.data(), 3, inter, out.data());
        std::vector<double> want(out.size());
        for (size_t t = 0; t < 3; ++t)
            for (size_t i = 0; i < inter; ++i) {
                const double g = gu[t * 2 * inter + i], u = gu[t * 2 * inter + inter + i];
                want[t * inter + i] = g / (1 + std::exp(-g)) * u;
            }
        require_close(out, want, 1e-5, 1e-5);
    }
    for (size_t hd : {2, 16, 24, 64, 128}) {
        std::vector<float> x = random_vector(hd, rng), cs = random_vector(hd / 2, rng), sn = random_vector(hd / 2, rng);
        std::vector<float> y = x;
        rope(y.data(), cs.data(), sn.data(), hd);
        std::vector<double> want(hd);
        for (size_t i = 0; i < hd / 2; ++i) {
            want[i] = double(x[i]) * cs[i] - double(x[i + hd / 2]) * sn[i];
            want[i + hd / 2] = double(x[i + hd / 2]) * cs[i] + double(x[i]) * sn[i];
        }
        require_close(y, want, 1e-6, 1e-6);
    }
}

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
    std::vector<float> base = random_vector(1000, rng, 3.0f);
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
