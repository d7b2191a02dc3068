// SPDX-License-Identifier: Apache-2.0
// The op table's rows for the matrix products, the bf16 -> f16 conversion and sampling (the
// table's other rows and its description: tests/test_ops.cpp).
#include "ops.h"
#include "reference.h"

#include "backend/cpu/kernels.h"
#include "common/thread_pool.h"
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>

using namespace rabbit;
using namespace rabbit::test;

namespace {

// ---- gemm ------------------------------------------------------------------------------------

std::string describe_gemm(const GemmCase& c) {
    return text([&](auto& s) {
        s << c.rows << "x" << c.cols << " " << dtype_name(c.w) << " weights, " << c.tokens << " tokens of "
          << dtype_name(c.x) << (c.bias ? ", bias" : "") << ", ldy rows + " << c.ldy_pad;
    });
}

GemmData draw_gemm(const GemmCase& c, std::mt19937& rng) {
    GemmData d;
    const float a = std::sqrt(3.0f / float(c.cols)); // outputs of about unit variance
    const std::vector<float> w = random_vector(size_t(c.rows * c.cols), rng, -a, a);
    d.w.resize(w.size() * dtype_size(c.w));
    convert_elements(w.data(), DType::f32, d.w.data(), c.w, w.size());
    d.wf = rounded(w, c.w);
    d.x = rounded(random_vector(size_t(c.tokens * c.cols), rng), c.x);
    d.bias = random_vector(size_t(c.rows), rng);
    return d;
}

bool cpu_rounds(const GemmCase& c) {
    return matmul_rounds_activations(Matrix{nullptr, c.w, uint64_t(c.rows), uint64_t(c.cols)}, size_t(c.tokens));
}

Outputs want_gemm(const GemmCase& c, const GemmData& d) {
    // Where the CPU's matmul rounds f32 activations to bf16 (AVX512_BF16, a CPU-only case), so
    // does the reference.
    const std::vector<float> x = c.x == DType::f32 && cpu_rounds(c) ? rounded(d.x, DType::bf16) : d.x;
    // Products of 16-bit inputs are exact in f32: only the f32 sums err (up to 5125 terms, of
    // outputs about 1 in size).
    return {want_close("y", ref::matmul(x, d.wf, c.bias ? d.bias : std::vector<float>{}, size_t(c.rows), size_t(c.cols)),
                       Tol{1e-5, 1e-4})};
}

Outputs cpu_gemm(const GemmCase& c, const GemmData& d) {
    INFO("instructions: " << isa_name(cpu_isa()) << (cpu_rounds(c) ? ", bf16 activations" : ""));
    const size_t ldy = size_t(c.rows + c.ldy_pad);
    std::vector<float> y(size_t(c.tokens) * ldy, k_nan);
    const Matrix w{d.w.data(), c.w, uint64_t(c.rows), uint64_t(c.cols)};
    matmul(test_pool(), d.x.data(), size_t(c.tokens), w, c.bias ? d.bias.data() : nullptr, y.data(),
           c.ldy_pad ? ldy : 0);
    std::vector<float> out;
    size_t touched = 0;
    for (size_t t = 0; t < size_t(c.tokens); ++t) {
        out.insert(out.end(), y.begin() + long(t * ldy), y.begin() + long(t * ldy + size_t(c.rows)));
        for (size_t r = size_t(c.rows); r < ldy; ++r) touched += !std::isnan(y[t * ldy + r]);
    }
    REQUIRE(touched == 0); // y's columns past rows
    return {got("y", out)};
}

// cuBLAS takes x in the weights' type (the compute type), without a bias.
bool cuda_takes_gemm(const GemmCase& c) { return c.x == c.w && !c.bias; }

std::vector<Group<GemmCase>> gemm_cases() {
    struct Shape {
        int64_t rows, cols, tokens;
    };
    std::vector<Shape> shapes = {{1, 1, 1},   {7, 9, 1},    {8, 16, 2},   {769, 5125, 1},
                                 {769, 131, 5}, {896, 896, 1}, {130, 896, 17}, {13, 4864, 3}};
    for (int64_t rows : {1, 37, 769})
        for (int64_t cols : {8, 129, 896})
            for (int64_t tokens : {1, 5, 13}) shapes.push_back({rows, cols, tokens});
    std::vector<GemmCase> cases;
    for (Shape s : shapes)
        for (DType w : k_dtypes) {
            // As the CUDA engine runs it: activations in the weights' type, an odd output stride.
            cases.push_back({s.rows, s.cols, s.tokens, w, w, false, 3});
            // As the CPU engine runs it: f32 activations and the projection's bias.
            cases.push_back({s.rows, s.cols, s.tokens, w, DType::f32, true, 0});
        }
    return {{"", cases}};
}

// ---- bf16 -> f16 -----------------------------------------------------------------------------

std::string describe_convert(const ConvertCase& c) {
    return std::to_string(c.count) + " elements from element " + std::to_string(c.offset);
}

ConvertData draw_convert(const ConvertCase& c, std::mt19937& rng) {
    std::vector<float> f = random_vector(size_t(c.count), rng);
    // Magnitudes from f16's subnormals to beyond its range, and the specials.
    std::uniform_int_distribution<int> exponent(-30, 20);
    for (auto& x : f) x = std::ldexp(x, exponent(rng));
    const float specials[] = {0.0f, -0.0f, 65504.0f, 65520.0f, -1e6f, 1e30f, INFINITY, -INFINITY, 1e-8f, k_nan};
    for (size_t i = 0; i < std::size(specials) && i < f.size(); ++i) f[i * 7 % f.size()] = specials[i];
    ConvertData d{std::vector<uint16_t>(size_t(c.offset + c.count + 5), k_guard)};
    for (int i = 0; i < c.count; ++i) d.bits[size_t(c.offset + i)] = f32_to_bf16(f[size_t(i)]);
    return d;
}

Outputs want_convert(const ConvertCase& c, const ConvertData& d) {
    const std::vector<uint16_t> src(d.bits.begin() + c.offset, d.bits.begin() + c.offset + c.count);
    std::vector<float> f16;
    for (uint16_t b : ref::bf16_to_f16(src)) f16.push_back(f16_to_f32(b));
    return {want_exact("f16", f16)}; // NaN stays NaN (the payload may differ); everything else bit for bit
}

std::vector<Group<ConvertCase>> convert_cases() {
    std::vector<ConvertCase> cases;
    for (int count : {1, 7, 8, 769, 5125, 100003})
        for (int offset : {0, 1, 3}) cases.push_back({count, offset}); // unaligned starts
    return {{"", cases}};
}

// ---- sampling --------------------------------------------------------------------------------

std::string describe_penalty(const PenaltyCase& c) {
    return text([&](auto& s) { s << "n " << c.n << ", penalty " << c.penalty << ", temperature " << c.temperature; });
}

PenaltyData draw_penalty(const PenaltyCase& c, std::mt19937& rng) {
    PenaltyData d{random_vector(size_t(c.n), rng, -20.0f, 20.0f), std::vector<int32_t>(size_t(c.n))};
    d.logits[0] = 0.0f;
    std::iota(d.ids.begin(), d.ids.end(), 0);
    std::shuffle(d.ids.begin(), d.ids.end(), rng);
    d.ids.resize(std::min<size_t>(d.ids.size(), 300));
    d.ids.push_back(0); // might be a duplicate for n == 1
    std::sort(d.ids.begin(), d.ids.end());
    d.ids.erase(std::unique(d.ids.begin(), d.ids.end()), d.ids.end());
    std::shuffle(d.ids.begin(), d.ids.end(), rng);
    return d;
}

Outputs want_penalty(const PenaltyCase& c, const PenaltyData& d) {
    return {want_exact("logits", ref::penalize_and_scale(d.logits, d.ids, c.penalty, c.temperature))};
}

std::string describe_argmax(const ArgmaxCase& c) {
    static const char* where[] = {"random", "a duplicate maximum", "all equal", "the maximum at the end"};
    return "n " + std::to_string(c.n) + ", " + where[int(c.max)];
}

LogitsData draw_argmax(const ArgmaxCase& c, std::mt19937& rng) {
    LogitsData d{random_vector(size_t(c.n), rng, -30.0f, 30.0f)};
    std::uniform_int_distribution<int64_t> at(0, c.n - 1);
    if (c.max == MaxAt::duplicate) {
        const int64_t a = at(rng), b = at(rng);
        d.logits[size_t(a)] = d.logits[size_t(b)] = 100.0f;
    } else if (c.max == MaxAt::all_equal) {
        std::fill(d.logits.begin(), d.logits.end(), -0.5f);
    } else if (c.max == MaxAt::last) {
        d.logits.back() = 1000.0f;
    }
    return d;
}

Outputs want_argmax(const ArgmaxCase&, const LogitsData& d) { return {want_exact("id", {float(ref::argmax(d.logits))})}; }

Outputs cpu_argmax(const ArgmaxCase&, const LogitsData& d) { return {got("id", {float(argmax(d.logits))})}; }

std::string describe_topk(const TopkCase& c) {
    return "n " + std::to_string(c.n) + ", k " + std::to_string(c.k) + (c.ties ? ", ties" : "");
}

LogitsData draw_topk(const TopkCase& c, std::mt19937& rng) {
    LogitsData d{random_vector(size_t(c.n), rng, -10.0f, 10.0f)};
    if (c.ties) // seven values, among them +0 and -0 (round(-0.3) = -0), equal to the CPU
        for (auto& l : d.logits) l = std::round(l / 4.0f);
    return d;
}

Outputs want_topk(const TopkCase& c, const LogitsData& d) {
    const std::vector<int32_t> ids = ref::topk(d.logits, size_t(c.k));
    std::vector<float> values;
    for (int32_t id : ids) values.push_back(d.logits[size_t(id)]);
    return {want_exact("ids", as_floats(ids)), want_exact("values", values)};
}

const bool k_registered_sampling = [] {
    register_row<GemmCase, GemmData>({"gemm", gemm_cases(), describe_gemm, draw_gemm, want_gemm,
        {cpu_gemm, "matmul, also with f32 activations and a bias"},
        {RABBIT_CUDA_RUNNER(cuda_gemm), "activations in the weights' type, no bias (the CUDA engine's)", cuda_takes_gemm}});
    register_row<ConvertCase, ConvertData>({"bf16 -> f16 in place", convert_cases(), describe_convert, draw_convert,
        want_convert, {nullptr, "none: the CPU computes bf16 weights as they are"}, {RABBIT_CUDA_RUNNER(cuda_bf16_to_f16)}});
    std::vector<PenaltyCase> penalty_cases;
    for (int64_t n : {1, 769, 151936})
        for (float penalty : {1.3f, 0.7f})
            for (float temperature : {0.7f, 1.0f, 1.9f}) penalty_cases.push_back({n, penalty, temperature});
    register_row<PenaltyCase, PenaltyData>({"penalty and temperature", {{"", penalty_cases}}, describe_penalty,
        draw_penalty, want_penalty,
        {nullptr, "none of its own: Sampler::sample does these operations (the sampler's own test)"},
        {RABBIT_CUDA_RUNNER(cuda_penalty)}});
    std::vector<ArgmaxCase> argmax_cases;
    for (int64_t n : {1, 2, 769, 4097, 151936, 262144})
        for (MaxAt m : {MaxAt::random, MaxAt::duplicate, MaxAt::all_equal, MaxAt::last}) argmax_cases.push_back({n, m});
    register_row<ArgmaxCase, LogitsData>({"argmax", {{"", argmax_cases}}, describe_argmax, draw_argmax, want_argmax,
        {cpu_argmax}, {RABBIT_CUDA_RUNNER(cuda_argmax)}});
    std::vector<TopkCase> topk_cases;
    for (int64_t n : {1, 300, 4096, 4097, 151936, 262144})
        for (int k : {1, 50, 256})
            for (bool ties : {false, true})
                if (k <= n) topk_cases.push_back({n, k, ties});
    register_row<TopkCase, LogitsData>({"top-k", {{"", topk_cases}}, describe_topk, draw_topk, want_topk,
        {nullptr, "none of its own: the CPU sampler sorts inside Sampler::sample"}, {RABBIT_CUDA_RUNNER(cuda_topk)}});
    return true;
}();

} // namespace
