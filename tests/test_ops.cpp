// SPDX-License-Identifier: Apache-2.0
// The op table: every kernel of both backends against the plain loops of tests/reference.h,
// on fresh random inputs of odd and real model sizes, for every dtype the op supports (the
// machinery: tests/op_table.h; the cases' types: tests/ops.h; the CUDA runners:
// tests/test_ops_cuda.cpp). A row names its op, its cases, how to draw inputs, its reference
// and its CPU and CUDA runners; an op one backend lacks says why in that runner's note
// (`rabbit_tests "[.ops-table]"` lists them). A new op's test is a reference function and a row.
//
// Inputs stored in a 16-bit type (KV cache, embedding table, 16-bit activations) enter the
// reference rounded, as the kernel sees them. f16 outputs saturate at +-65504 (sm_75 computes
// bf16 models in f16), so the reference saturates them too. The sampling kernels agree with
// the CPU sampler's operations bit for bit.
#include "ops.h"
#include "reference.h"

#include "backend/cpu/kernels.h"
#include "common/thread_pool.h"
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace rabbit;
using namespace rabbit::test;

ThreadPool& rabbit::test::test_pool() {
    static ThreadPool p(3);
    return p;
}

namespace {

// f16 outputs saturate (kernels/elem_device.cuh).
std::vector<double> saturated(std::vector<double> v, DType type) {
    if (type == DType::f16)
        for (double& x : v) x = std::max(-65504.0, std::min(65504.0, x));
    return v;
}

// ---- rmsnorm ---------------------------------------------------------------------------------

const char* residual_name(Residual r) {
    static const char* names[] = {"no residual add", "x += delta", "x += delta + bias", "x += delta * scale + bias"};
    return names[int(r)];
}

std::string describe_rmsnorm(const RmsNormCase& c) {
    return text([&](auto& s) {
        s << c.rows << " rows of " << c.n << ", " << residual_name(c.residual) << ", out " << dtype_name(c.out)
          << (c.beyond_f16 ? ", outputs beyond f16" : "");
    });
}

RmsNormData draw_rmsnorm(const RmsNormCase& c, std::mt19937& rng) {
    const size_t count = size_t(c.rows) * c.n;
    RmsNormData d{random_vector(count, rng, -3.0f, 3.0f), random_vector(count, rng), {}, random_vector(c.n, rng),
                  c.beyond_f16 ? random_vector(c.n, rng, 5e4f, 2e5f) : random_vector(c.n, rng, 0.5f, 1.5f)};
    std::uniform_int_distribution<int> exponent(-2, 3);
    for (int r = 0; r < c.rows; ++r) d.delta_scale.push_back(std::ldexp(1.0f, exponent(rng)));
    return d;
}

Outputs want_rmsnorm(const RmsNormCase& c, const RmsNormData& d) {
    const bool bias = c.residual == Residual::delta_bias || c.residual == Residual::delta_scaled;
    const std::vector<float> x = c.residual == Residual::none
                                     ? d.x
                                     : ref::residual_add(d.x, d.delta, c.residual == Residual::delta_scaled ? d.delta_scale : std::vector<float>{},
                                                         bias ? d.bias : std::vector<float>{}, size_t(c.n));
    Tol tol = tol_for(c.out);
    if (c.out == DType::f32) tol.rtol = 1e-5; // a sum of squares and one product an element
    return {want_close("out", saturated(ref::rmsnorm(x, d.weight, size_t(c.n), 1e-6), c.out), tol),
            want_exact("residual", x)};
}

Outputs cpu_rmsnorm(const RmsNormCase& c, const RmsNormData& d) {
    std::vector<float> y(d.x.size());
    for (int r = 0; r < c.rows; ++r)
        rmsnorm(d.x.data() + size_t(r) * c.n, d.weight.data(), 1e-6f, size_t(c.n), y.data() + size_t(r) * c.n);
    return {got("out", y)};
}

std::vector<Group<RmsNormCase>> rmsnorm_cases() {
    std::vector<RmsNormCase> cases;
    for (int n : {1, 7, 64, 769, 5125}) cases.push_back({1, n, Residual::none, DType::f32});
    int variant = 0; // the output types take turns
    for (int n : {1, 769, 896, 3584, 5125, 8192, 16384})
        for (int rows : {1, 3, 37})
            for (Residual r : {Residual::none, Residual::delta, Residual::delta_bias, Residual::delta_scaled})
                cases.push_back({rows, n, r, k_dtypes[variant++ % 3]});
    for (Residual r : {Residual::none, Residual::delta_scaled}) cases.push_back({3, 896, r, DType::f16, true});
    return {{"", cases}};
}

// ---- qkv bias, q/k norm, rope, cache write -----------------------------------------------------

std::string describe_qkv_rope(const QkvRopeCase& c) {
    return text([&](auto& s) {
        s << c.heads << "/" << c.kv_heads << " heads of " << c.head_dim << ", " << c.tokens << " tokens, bias " << c.bias
          << ", norm " << c.norm << ", cache " << dtype_name(c.cache);
    });
}

QkvRopeData draw_qkv_rope(const QkvRopeCase& c, std::mt19937& rng) {
    const size_t row = size_t(c.heads + 2 * c.kv_heads) * c.head_dim, half = size_t(c.head_dim) / 2;
    QkvRopeData d{random_vector(c.tokens * row, rng), random_vector(row, rng),
                  random_vector(size_t(c.head_dim), rng, 0.5f, 1.5f), random_vector(size_t(c.head_dim), rng, 0.5f, 1.5f)};
    for (float a : random_vector(c.tokens * half, rng, -10.0f, 10.0f)) {
        d.cos.push_back(std::cos(a));
        d.sin.push_back(std::sin(a));
    }
    return d;
}

Outputs want_qkv_rope(const QkvRopeCase& c, const QkvRopeData& d) {
    const std::vector<float> none;
    const ref::QkvRope r = ref::qkv_rope(d.qkv, c.bias ? d.bias : none, c.norm ? d.q_norm : none, c.norm ? d.k_norm : none,
                                         d.cos, d.sin, 1e-6, c.tokens, c.heads, c.kv_heads, c.head_dim);
    return {want_close("q", r.q, tol_for(DType::f32)), want_close("k cache", r.k, tol_for(c.cache)),
            want_close("v cache", r.v, tol_for(c.cache))};
}

std::vector<Group<QkvRopeCase>> qkv_rope_cases() {
    struct Shape {
        int heads, kv_heads, head_dim;
    };
    std::vector<QkvRopeCase> cases;
    int variant = 0;
    for (Shape s : {Shape{14, 2, 64}, Shape{28, 4, 128}, Shape{64, 8, 128}, Shape{4, 2, 80}, Shape{8, 1, 256},
                    Shape{2, 1, 512}, Shape{3, 3, 34}})
        for (int tokens : {1, 3, 37})
            for (int mode = 0; mode < 4; ++mode) // bit 0: bias, bit 1: q/k norm
                cases.push_back({s.heads, s.kv_heads, s.head_dim, tokens, bool(mode & 1), bool(mode & 2), k_dtypes[variant++ % 3]});
    return {{"", cases}};
}

// ---- rope, one head (the CPU's) ----------------------------------------------------------------

struct RopeCase {
    int head_dim;
};
struct RopeData {
    std::vector<float> x, cos, sin;
};

std::string describe_rope(const RopeCase& c) { return "head_dim " + std::to_string(c.head_dim); }

RopeData draw_rope(const RopeCase& c, std::mt19937& rng) {
    const size_t half = size_t(c.head_dim) / 2;
    return {random_vector(size_t(c.head_dim), rng), random_vector(half, rng), random_vector(half, rng)};
}

Outputs want_rope(const RopeCase& c, const RopeData& d) {
    std::vector<double> x(d.x.begin(), d.x.end());
    ref::rope(x.data(), d.cos.data(), d.sin.data(), size_t(c.head_dim));
    return {want_close("x", x, Tol{1e-6, 1e-6})};
}

Outputs cpu_rope(const RopeCase& c, const RopeData& d) {
    std::vector<float> y = d.x;
    rope(y.data(), d.cos.data(), d.sin.data(), size_t(c.head_dim));
    return {got("x", y)};
}

// ---- softmax and dot (the CPU's) ---------------------------------------------------------------

struct VectorCase {
    int n;
    float spread = 1; // inputs in [-spread, spread]
};
struct VectorData {
    std::vector<float> a, b;
};

std::string describe_vector(const VectorCase& c) {
    return text([&](auto& s) { s << "n " << c.n << ", spread " << c.spread; });
}

VectorData draw_vector(const VectorCase& c, std::mt19937& rng) {
    return {random_vector(size_t(c.n), rng, -c.spread, c.spread), random_vector(size_t(c.n), rng)};
}

Outputs want_softmax(const VectorCase&, const VectorData& d) {
    return {want_close("p", ref::softmax(d.a), Tol{1e-7, 1e-5})}; // f32 sums of thousands of terms
}

Outputs cpu_softmax(const VectorCase& c, const VectorData& d) {
    std::vector<float> p = d.a;
    softmax(p.data(), size_t(c.n));
    return {got("p", p)};
}

Outputs want_dot(const VectorCase& c, const VectorData& d) {
    return {want_close("dot", {ref::dot(d.a, d.b)}, Tol{1e-4, 1e-5 * std::sqrt(double(c.n))})};
}

Outputs cpu_dot(const VectorCase& c, const VectorData& d) { return {got("dot", {dot_f32(d.a.data(), d.b.data(), size_t(c.n))})}; }

// ---- attention's products over the CPU's blocked cache ------------------------------------------

struct ProductsCase {
    int head_dim;
    size_t first, end; // positions
};
struct ProductsData {
    std::vector<float> q;         // [head_dim]
    std::vector<float> keys, v;   // [blocks * k_attn_block, head_dim]
    std::vector<float> p;         // [blocks * k_attn_block]
};

std::string describe_products(const ProductsCase& c) {
    return text([&](auto& s) { s << "head_dim " << c.head_dim << ", positions [" << c.first << ", " << c.end << ")"; });
}

ProductsData draw_products(const ProductsCase& c, std::mt19937& rng) {
    const size_t positions = (c.end + k_attn_block - 1) / k_attn_block * k_attn_block, hd = size_t(c.head_dim);
    return {random_vector(hd, rng), random_vector(positions * hd, rng), random_vector(positions * hd, rng),
            random_vector(positions, rng)};
}

Outputs want_products(const ProductsCase& c, const ProductsData& d) {
    const size_t hd = size_t(c.head_dim);
    return {want_close("scores", ref::attention_scores(d.q, d.keys, hd, c.first, c.end, 0.125), Tol{1e-5, 1e-5}),
            want_close("values", ref::attention_values(d.p, d.v, hd, c.first, c.end), Tol{1e-5, 1e-5})};
}

// Keys [positions, head_dim] in the CPU cache's layout: blocks of k_attn_block positions, each
// transposed ([blocks][head_dim][k_attn_block]).
std::vector<float> blocked(const float* keys, size_t positions, size_t hd) {
    const size_t B = k_attn_block;
    std::vector<float> kb((positions + B - 1) / B * B * hd, k_nan);
    for (size_t j = 0; j < positions; ++j)
        for (size_t i = 0; i < hd; ++i) kb[j / B * hd * B + i * B + j % B] = keys[j * hd + i];
    return kb;
}

Outputs cpu_products(const ProductsCase& c, const ProductsData& d) {
    const size_t hd = size_t(c.head_dim);
    const std::vector<float> kb = blocked(d.keys.data(), d.keys.size() / hd, hd);
    std::vector<float> scores(d.p.size(), -1.0f), out(hd, 7.0f);
    attention_scores(d.q.data(), kb.data(), hd, c.first, c.end, 0.125f, scores.data());
    attention_values(d.p.data(), d.v.data(), hd, c.first, c.end, out.data());
    return {got("scores", std::vector<float>(scores.begin() + long(c.first), scores.begin() + long(c.end))),
            got("values", out)};
}

std::vector<Group<ProductsCase>> products_cases() {
    std::vector<ProductsCase> cases;
    // Head sizes with and without a register-resident path; ranges that start and end inside
    // blocks, span one block or many, and a window that skips whole blocks.
    for (int hd : {8, 24, 32, 64, 96, 128, 256})
        for (auto [first, end] : {std::pair<size_t, size_t>{0, 1}, {0, 16}, {3, 14}, {0, 77}, {40, 131}, {17, 200}})
            cases.push_back({hd, first, end});
    return {{"", cases}};
}

} // namespace

namespace {

// ---- attention -------------------------------------------------------------------------------

std::string describe_attention(const AttentionCase& c) {
    return text([&](auto& s) {
        s << c.heads << "/" << c.kv_heads << " heads of " << c.head_dim << ", " << c.tokens << " tokens at " << c.pos
          << ", window " << c.window << ", cache " << dtype_name(c.cache) << ", out " << dtype_name(c.out) << ", sm_count "
          << c.sm_count << (c.mapped ? ", mapped host cache" : "") << ", scale x" << c.scale_mult;
    });
}

AttentionData draw_attention(const AttentionCase& c, std::mt19937& rng) {
    const int D = c.head_dim;
    AttentionData d;
    d.q_stride = int64_t(c.heads + 2 * c.kv_heads) * D;
    const int64_t filled = c.pos + c.tokens;
    d.cache_len = filled + 9;
    // q within a qkv row; the k and v parts are NaN, which the kernel must not read.
    d.qkv.assign(size_t(c.tokens * d.q_stride), k_nan);
    for (int t = 0; t < c.tokens; ++t) {
        const std::vector<float> q = random_vector(size_t(c.heads) * D, rng);
        std::copy(q.begin(), q.end(), d.qkv.begin() + t * d.q_stride);
    }
    // The cache up to pos + tokens (earlier steps and this one's qkv_rope); NaN beyond, where
    // nothing may be read.
    const size_t cache_elems = size_t(c.kv_heads) * d.cache_len * D;
    d.k.assign(cache_elems, k_nan);
    d.v.assign(cache_elems, k_nan);
    for (int g = 0; g < c.kv_heads; ++g) {
        const std::vector<float> k = random_vector(size_t(filled) * D, rng), v = random_vector(size_t(filled) * D, rng);
        std::copy(k.begin(), k.end(), d.k.begin() + g * d.cache_len * D);
        std::copy(v.begin(), v.end(), d.v.begin() + g * d.cache_len * D);
    }
    d.k = rounded(d.k, c.cache);
    d.v = rounded(d.v, c.cache);
    d.scale = c.scale_mult / std::sqrt(float(D));
    return d;
}

Outputs want_attention(const AttentionCase& c, const AttentionData& d) {
    const ref::AttentionShape s{c.tokens, c.heads, c.kv_heads, c.head_dim, c.pos, c.window, d.cache_len, d.scale};
    return {want_close("out", ref::attention(d.qkv, d.q_stride, d.k, d.v, s), tol_for(c.out))};
}

// The CPU engine's attention: per token and head, the scores over its blocked keys, softmax
// and the values.
Outputs cpu_attention(const AttentionCase& c, const AttentionData& d) {
    const size_t D = size_t(c.head_dim), group = size_t(c.heads / c.kv_heads), len = size_t(d.cache_len);
    std::vector<std::vector<float>> kb;
    for (int g = 0; g < c.kv_heads; ++g) kb.push_back(blocked(d.k.data() + g * len * D, len, D));
    std::vector<float> out(size_t(c.tokens) * c.heads * D), p;
    for (int t = 0; t < c.tokens; ++t) {
        const size_t end = size_t(c.pos + t + 1);
        const size_t first = c.window > 0 && end > size_t(c.window) ? end - size_t(c.window) : 0;
        p.assign((end + k_attn_block - 1) / k_attn_block * k_attn_block, 0.0f);
        for (int h = 0; h < c.heads; ++h) {
            const size_t g = size_t(h) / group;
            attention_scores(d.qkv.data() + t * d.q_stride + h * int64_t(D), kb[g].data(), D, first, end, d.scale, p.data());
            softmax(p.data() + first, end - first);
            attention_values(p.data(), d.v.data() + g * len * D, D, first, end, out.data() + (size_t(t) * c.heads + h) * D);
        }
    }
    return {got("out", out)};
}

bool cpu_takes_attention(const AttentionCase& c) { return c.cache == DType::f32 && c.out == DType::f32 && !c.mapped; }

std::vector<Group<AttentionCase>> attention_cases() {
    struct Shape {
        int heads, kv_heads, head_dim;
    };
    std::vector<Group<AttentionCase>> groups;
    auto& prompt = groups.emplace_back(Group<AttentionCase>{"over a prompt, every head_dim and group", {}}).cases;
    int variant = 0;
    // Groups 7, 7, 8, 1, 2, 8 and 7; head_dim 64, 80, 96, 128 and 256.
    for (Shape s : {Shape{14, 2, 64}, Shape{28, 4, 128}, Shape{64, 8, 128}, Shape{8, 8, 80}, Shape{16, 8, 96},
                    Shape{8, 1, 256}, Shape{7, 1, 128}})
        for (int tokens : {1, 3, 37, 77})
            for (int64_t pos : {0, 50}) {
                const int v = variant++;
                prompt.push_back({s.heads, s.kv_heads, s.head_dim, tokens, pos, 0, k_dtypes[v % 3], k_dtypes[v / 3 % 3]});
            }

    // head_dim 8 (tinystories-656k, tiny-llama3), 16 (tiny-qwen2, tiny-mistral), 24 (tiny-qwen3)
    // and 32: fewer output pairs than lanes, so lanes from D / 2 on hold nothing; f32 caches of
    // D = 8 are two 16-byte vectors a row, 16-bit ones one. Groups 1, 7, 2, 3, 4 and 8.
    auto& small = groups.emplace_back(Group<AttentionCase>{"with the small heads of tiny models, every cache and output type", {}}).cases;
    for (Shape s : {Shape{8, 8, 8}, Shape{7, 1, 8}, Shape{4, 2, 16}, Shape{6, 2, 24}, Shape{8, 2, 32}, Shape{16, 2, 32}}) {
        for (DType cache : k_dtypes)
            for (DType out : k_dtypes) {
                auto with = [&](int tokens, int64_t pos, int64_t window = 0, int sm = -1, float scale = 1) {
                    return AttentionCase{s.heads, s.kv_heads, s.head_dim, tokens, pos, window, cache, out, sm, false, scale};
                };
                small.push_back(with(5, 0));              // a prompt from position 0
                small.push_back(with(40, 33));            // a prompt after earlier ones (8-row slots)
                small.push_back(with(1, 0));              // the first decode step: one position
                small.push_back(with(1, 2999));           // a decode step split across blocks
                small.push_back(with(1, 700, 0, 0));      // the same, no split: one block walks it all
                small.push_back(with(9, 100, 7, -1, 8.0f)); // a window, peaked softmax
            }
        // Splits with many rows: an sm_count that asks for more blocks than the rows give.
        small.push_back({s.heads, s.kv_heads, s.head_dim, 37, 300, 0, DType::bf16, DType::f16, 10000});
    }

    auto& types = groups.emplace_back(Group<AttentionCase>{"for every cache and output type, softmax flat and peaked", {}}).cases;
    for (DType cache : k_dtypes)
        for (DType out : k_dtypes)
            for (float m : {1.0f, 8.0f}) {
                types.push_back({14, 2, 64, 37, 20, 0, cache, out, -1, false, m});
                types.push_back({8, 1, 256, 9, 40, 0, cache, out, -1, false, m});
                types.push_back({28, 4, 128, 1, 700, 0, cache, out, -1, false, m});
            }

    const DType f32 = DType::f32, f16 = DType::f16, bf16 = DType::bf16;
    groups.push_back({"for a decode step over long contexts, split across blocks",
                      {{14, 2, 64, 1, 2999, 0, bf16, bf16},
                       {64, 8, 128, 1, 2999, 0, f16, f32},
                       {28, 4, 128, 1, 19999, 0, bf16, f32},
                       {14, 2, 64, 1, 19999, 0, f32, f16, -1, false, 8.0f},
                       {8, 1, 256, 1, 5000, 0, f32, f32},    // one K/V buffer (f32, 256)
                       {16, 1, 80, 1, 3001, 0, f16, bf16},   // group 16: 32-row blocks
                       {14, 2, 64, 1, 2999, 0, bf16, f32, 0}, // no split (sm_count 0: unknown): one block walks it all
                       {14, 2, 64, 1, 2999, 0, f32, f32, 0},
                       // Splits with many rows: an sm_count that asks for more blocks than the rows give.
                       {14, 2, 64, 37, 300, 0, f16, f32, 10000},
                       {8, 1, 256, 77, 1000, 0, f32, f32, 10000},
                       {28, 4, 96, 5, 4000, 0, bf16, f16, 10000}}});
    groups.push_back({"with a sliding window",
                      {{14, 2, 64, 37, 50, 16, f32, f32},
                       {14, 2, 64, 77, 0, 20, bf16, f32},
                       {28, 4, 128, 37, 100, 1, f16, f32}, // only its own position
                       {28, 4, 128, 1, 2999, 1000, bf16, bf16},
                       {28, 4, 128, 1, 2999, 1000, f32, f32},
                       {64, 8, 128, 3, 5000, 333, f32, f16, 10000},
                       {16, 8, 96, 37, 10, 4096, f16, f32}, // wider than everything
                       {14, 2, 64, 37, 10, 46, f32, f32},   // cuts position 0 for the last token only
                       {14, 2, 64, 37, 10, 47, f32, f32}}}); // cuts nothing
    groups.push_back({"reads a cache in mapped pinned host memory",
                      {{14, 2, 64, 1, 2999, 0, bf16, f32, -1, true}, {28, 4, 128, 37, 100, 0, f16, f16, -1, true}}});
    return groups;
}

// ---- swiglu ----------------------------------------------------------------------------------

std::string describe_swiglu(const SwigluCase& c) {
    const char* spread = c.spread == Spread::moderate ? "gates in [-8, 8]" : c.spread == Spread::tails ? "tails" : "beyond f16";
    return text([&](auto& s) {
        s << c.tokens << " tokens, inter " << c.inter << ", out " << dtype_name(c.out) << ", " << spread
          << (c.row_scale ? ", rows scaled" : "");
    });
}

SwigluData draw_swiglu(const SwigluCase& c, std::mt19937& rng) {
    std::vector<float> gu = random_vector(size_t(c.tokens) * 2 * c.inter, rng, -8.0f, 8.0f);
    const float far = c.spread == Spread::tails ? 30.0f : c.spread == Spread::beyond_f16 ? 500.0f : 1.0f;
    for (size_t i = 0; i < gu.size(); i += 7) gu[i] *= far; // far into both tails of silu
    return {gu};
}

// The power of 2 the f16 row is divided by: the smallest that brings its largest |value| within 32768.
double row_divisor(const double* row, size_t n) {
    double mx = 0, scale = 1;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, std::fabs(row[i]));
    while (mx / scale > 32768.0) scale *= 2;
    return scale;
}

Outputs want_swiglu(const SwigluCase& c, const SwigluData& d) {
    std::vector<double> out = ref::swiglu(d.gate_up, size_t(c.inter));
    Tol tol = tol_for(c.out);
    if (c.out == DType::f32) tol.rtol = 1e-5; // one exp, a division and a product
    if (!c.row_scale) return {want_close("out", saturated(out, c.out), tol)};
    std::vector<float> scales;
    for (int t = 0; t < c.tokens; ++t) {
        double* row = out.data() + size_t(t) * c.inter;
        scales.push_back(float(row_divisor(row, size_t(c.inter))));
        for (int i = 0; i < c.inter; ++i) row[i] /= scales.back();
    }
    return {want_close("out", out, tol), want_exact("row scale", scales)};
}

Outputs cpu_swiglu(const SwigluCase& c, const SwigluData& d) {
    std::vector<float> out(size_t(c.tokens) * c.inter);
    swiglu(test_pool(), d.gate_up.data(), size_t(c.tokens), size_t(c.inter), out.data());
    return {got("out", out)};
}

bool cpu_takes_swiglu(const SwigluCase& c) { return c.out == DType::f32 && !c.row_scale; }

std::vector<Group<SwigluCase>> swiglu_cases() {
    std::vector<SwigluCase> cases;
    for (int inter : {1, 5, 176, 4864}) cases.push_back({3, inter, DType::f32, Spread::tails});
    for (int inter : {1, 769, 4864, 5125})
        for (int tokens : {1, 3, 37})
            for (DType out : k_dtypes) cases.push_back({tokens, inter, out, Spread::moderate});
    // f16 outputs of a bf16 model's MLP (sm_75): saturated, or rows scaled into range.
    for (int tokens : {1, 3, 37}) {
        cases.push_back({tokens, 769, DType::f16, Spread::beyond_f16});
        cases.push_back({tokens, 769, DType::f16, Spread::beyond_f16, true});
        cases.push_back({tokens, 4864, DType::f16, Spread::moderate, true}); // within range: divided by 1
    }
    return {{"", cases}};
}

// ---- the embedding lookup --------------------------------------------------------------------

std::string describe_embed(const EmbedCase& c) {
    return text([&](auto& s) { s << c.tokens << " tokens, hidden " << c.hidden << ", table " << dtype_name(c.table); });
}

EmbedData draw_embed(const EmbedCase& c, std::mt19937& rng) {
    EmbedData d;
    const std::vector<float> f = random_vector(size_t(k_embed_vocab) * c.hidden, rng);
    d.table.resize(f.size() * dtype_size(c.table));
    convert_elements(f.data(), DType::f32, d.table.data(), c.table, f.size());
    d.values = rounded(f, c.table);
    std::uniform_int_distribution<int32_t> pick(0, k_embed_vocab - 1);
    for (int t = 0; t < c.tokens; ++t) d.ids.push_back(pick(rng));
    d.ids[0] = k_embed_vocab - 1; // the last row too
    return d;
}

Outputs want_embed(const EmbedCase& c, const EmbedData& d) {
    return {want_exact("out", ref::embed(d.values, d.ids, size_t(c.hidden)))};
}

// The CPU engine's lookup: each row widened to f32.
Outputs cpu_embed(const EmbedCase& c, const EmbedData& d) {
    const Matrix table{d.table.data(), c.table, uint64_t(k_embed_vocab), uint64_t(c.hidden)};
    std::vector<float> out(size_t(c.tokens) * c.hidden);
    for (int t = 0; t < c.tokens; ++t) widen_row(table, uint64_t(d.ids[size_t(t)]), out.data() + size_t(t) * c.hidden);
    return {got("out", out)};
}

std::vector<Group<EmbedCase>> embed_cases() {
    std::vector<EmbedCase> cases;
    for (int hidden : {769, 896})
        for (int tokens : {1, 3, 37})
            for (DType table : k_dtypes) cases.push_back({hidden, tokens, table});
    return {{"", cases}};
}

} // namespace

// ---- the table (gemm, the conversion and sampling: tests/test_ops_sampling.cpp) -----------------

namespace {

const bool k_registered = [] {
    register_row<RmsNormCase, RmsNormData>({"rmsnorm", rmsnorm_cases(), describe_rmsnorm, draw_rmsnorm, want_rmsnorm,
        {cpu_rmsnorm, "f32 out, one row at a time, no fused residual add (the CPU engine adds it itself)",
         [](const RmsNormCase& c) { return c.out == DType::f32 && c.residual == Residual::none; }},
        {RABBIT_CUDA_RUNNER(cuda_rmsnorm)}});
    register_row<QkvRopeCase, QkvRopeData>({"qkv bias, q/k norm, rope, cache write", qkv_rope_cases(), describe_qkv_rope,
        draw_qkv_rope, want_qkv_rope,
        {nullptr, "none: the CPU engine adds the bias in its matmul, then rmsnorm and rope a head at a time "
                  "(rows rmsnorm and rope) and writes its blocked cache itself"},
        {RABBIT_CUDA_RUNNER(cuda_qkv_rope)}});
    register_row<RopeCase, RopeData>({"rope, one head", {{"", {{2}, {16}, {24}, {64}, {128}}}}, describe_rope, draw_rope,
        want_rope, {cpu_rope}, {nullptr, "none of its own: launch_qkv_rope rotates (row qkv bias, ...)"}});
    register_row<VectorCase, VectorData>({"dot", {{"", {{1}, {7}, {64}, {769}, {5125}}}}, describe_vector, draw_vector,
        want_dot, {cpu_dot, "the dot product of the CPU's rmsnorm"}, {nullptr, "none: cuBLAS's products (row gemm)"}});
    std::vector<VectorCase> softmax_cases;
    for (int n : {1, 5, 16, 17, 100, 4099})
        for (float spread : {0.01f, 3.0f, 40.0f, 300.0f}) softmax_cases.push_back({n, spread});
    register_row<VectorCase, VectorData>({"softmax, from tiny to huge spreads", {{"", softmax_cases}}, describe_vector,
        draw_vector, want_softmax, {cpu_softmax},
        {nullptr, "none of its own: launch_attention's online softmax (row attention)"}});
    register_row<ProductsCase, ProductsData>({"attention's products over the blocked cache", products_cases(),
        describe_products, draw_products, want_products, {cpu_products},
        {nullptr, "none: the GPU's attention is one kernel (row attention)"}});
    register_row<AttentionCase, AttentionData>({"attention", attention_cases(), describe_attention, draw_attention,
        want_attention,
        {cpu_attention, "f32 cache and output (the CPU engine's cache is f32): scores, softmax and values per head, "
                        "as the CPU engine runs them", cpu_takes_attention},
        {RABBIT_CUDA_RUNNER(cuda_attention)}});
    register_row<SwigluCase, SwigluData>({"swiglu", swiglu_cases(), describe_swiglu, draw_swiglu, want_swiglu,
        {cpu_swiglu, "f32 out", cpu_takes_swiglu}, {RABBIT_CUDA_RUNNER(cuda_swiglu)}});
    register_row<EmbedCase, EmbedData>({"the embedding lookup", embed_cases(), describe_embed, draw_embed, want_embed,
        {cpu_embed, "widen_row, as the CPU engine looks rows up"}, {RABBIT_CUDA_RUNNER(cuda_embed)}});
    return true;
}();

} // namespace

TEST_CASE("the op table's comparison fails on NaN, infinities and sizes that differ", "[kernels][ops]") {
    const std::vector<double> want = {1.0, -2.0, 3.0};
    for (DType t : k_dtypes) {
        INFO(dtype_name(t));
        REQUIRE(compare({1.0f, -2.0f, 3.0f}, want, tol_for(t)).bad == 0);
        REQUIRE(compare({1.0f, -2.0f, 3.00001f}, want, tol_for(t)).bad == 0);
        REQUIRE(compare({1.0f, -2.0f, 3.1f}, want, tol_for(t)).bad == 1);
        for (float bad : {k_nan, INFINITY, -INFINITY}) {
            INFO(bad);
            REQUIRE(compare({1.0f, bad, 3.0f}, want, tol_for(t)).bad == 1);
            REQUIRE(compare({1.0f, -2.0f, 3.0f}, {1.0, double(bad), 3.0}, tol_for(t)).bad >= 1); // 16-bit: the RMS too
            REQUIRE(compare({bad}, {double(bad)}, tol_for(t)).bad == 1);
        }
        REQUIRE(compare({1.0f, -2.0f}, want, tol_for(t)).bad > 0);
    }
    // The 16-bit types' absolute term is a share of the reference's RMS.
    REQUIRE(compare({1000.0f, 0.5f}, {1000.0, 0.0}, tol_for(DType::bf16)).bad == 0);
    REQUIRE(compare({1000.0f, 0.5f}, {1000.0, 0.0}, tol_for(DType::f32)).bad == 1);
}
