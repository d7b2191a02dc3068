// SPDX-License-Identifier: Apache-2.0
// The CUDA kernels against plain loops on the host (double accumulation), on fresh random
// inputs (uniform in [-1, 1], never zeros) of odd and real model sizes, for every element type,
// with a tolerance of atol + rtol * |reference| that depends on the output's type:
//   f32  1e-5 + 1e-4 |ref|: the kernels accumulate in f32 (relative error ~1e-6 for these
//        lengths), the reference in double;
//   f16  2e-3 rms + 2e-3 |ref|: rounding the result to f16 alone costs up to 2^-11 = 4.9e-4
//        relative, plus the f32 error, with margin;
//   bf16 1e-2 rms + 1e-2 |ref|: rounding to bf16 costs up to 2^-8 = 3.9e-3 relative.
// For the 16-bit types the absolute term is a share of the reference's RMS (rms above): the
// rounding of inputs stored in them (a KV cache) errs in proportion to the values' scale, not
// by a fixed amount, so that a fixed term would be too loose for small outputs and too tight
// for large ones.
// Inputs stored in a 16-bit type (KV cache, embedding table) enter the reference rounded, as the
// kernel sees them. The sampling kernels must agree bit for bit with the CPU sampler's operations.
// Every test here is tagged [gpu] and skipped, visibly, without a usable device.
#include "gpu.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "attention.cuh"
#include "backend/cuda/gemm.h"
#include "common/dtype.h"
#include "convert.cuh"
#include "embed.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "sample.cuh"
#include "swiglu.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>
#endif

using namespace rabbit;
using namespace rabbit::test;

TEST_CASE("gpu: a usable CUDA device, or a visible skip", "[gpu]") {
    if (!gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    int dev = -1;
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(dev >= 0);
#endif
}

#ifdef RABBIT_HAVE_CUDA

namespace {

const float k_nan = std::numeric_limits<float>::quiet_NaN();

// ---- device memory -------------------------------------------------------------------------
class DevBuf {
public:
    explicit DevBuf(size_t bytes) : bytes_(bytes) { REQUIRE(cudaMalloc(&p_, bytes ? bytes : 1) == cudaSuccess); }
    DevBuf(const void* host, size_t bytes) : DevBuf(bytes) { upload(host, bytes); }
    DevBuf(DevBuf&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    ~DevBuf() {
        if (p_) cudaFree(p_);
    }
    void upload(const void* host, size_t bytes) {
        REQUIRE(bytes <= bytes_);
        REQUIRE(cudaMemcpy(p_, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    }
    void download(void* host, size_t bytes) const {
        REQUIRE(bytes <= bytes_);
        REQUIRE(cudaMemcpy(host, p_, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    }
    void fill(int byte) { REQUIRE(cudaMemset(p_, byte, bytes_) == cudaSuccess); }
    template <typename T = void>
    T* get() const {
        return static_cast<T*>(p_);
    }
    size_t bytes() const { return bytes_; }

private:
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

template <typename T>
DevBuf to_device(const std::vector<T>& v) {
    return DevBuf(v.data(), v.size() * sizeof(T));
}

template <typename T>
std::vector<T> to_host(const DevBuf& b, size_t n) {
    std::vector<T> v(n);
    b.download(v.data(), n * sizeof(T));
    return v;
}

// Pinned host memory mapped into the device's address space (a KV cache in host RAM).
class MappedBuf {
public:
    explicit MappedBuf(size_t bytes) {
        REQUIRE(cudaHostAlloc(&host_, bytes, cudaHostAllocMapped) == cudaSuccess);
        REQUIRE(cudaHostGetDevicePointer(&dev_, host_, 0) == cudaSuccess);
    }
    MappedBuf(const MappedBuf&) = delete;
    MappedBuf& operator=(const MappedBuf&) = delete;
    ~MappedBuf() { cudaFreeHost(host_); }
    void* host() const { return host_; }
    void* dev() const { return dev_; }

private:
    void* host_ = nullptr;
    void* dev_ = nullptr;
};

void sync() {
    const cudaError_t e = cudaDeviceSynchronize();
    INFO(cudaGetErrorString(e));
    REQUIRE(e == cudaSuccess);
}

void require_launch(cudaError_t e) {
    INFO(cudaGetErrorName(e) << ": " << cudaGetErrorString(e));
    REQUIRE(e == cudaSuccess);
    sync();
}

// The device's opt-in shared memory, once attention_setup has opted the large shapes in to it
// (once per process, as the engine does once per engine).
size_t attention_ready() {
    static const size_t optin = [] {
        int dev = 0, bytes = 0;
        REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
        REQUIRE(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess);
        REQUIRE(attention_setup(size_t(bytes)) == cudaSuccess);
        return size_t(bytes);
    }();
    return optin;
}

int sm_count() {
    int dev = 0, n = 0;
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess);
    return n;
}

// ---- element types -------------------------------------------------------------------------
const Elem k_elems[] = {Elem::f32, Elem::f16, Elem::bf16};

DType dtype_of(Elem e) { return e == Elem::f32 ? DType::f32 : e == Elem::f16 ? DType::f16 : DType::bf16; }
const char* elem_name(Elem e) { return dtype_name(dtype_of(e)); }

std::vector<uint8_t> encode(const std::vector<float>& v, Elem e) {
    std::vector<uint8_t> b(v.size() * elem_size(e));
    convert_elements(v.data(), DType::f32, b.data(), dtype_of(e), v.size());
    return b;
}

std::vector<float> decode(const std::vector<uint8_t>& b, Elem e) {
    std::vector<float> v(b.size() / elem_size(e));
    convert_elements(b.data(), dtype_of(e), v.data(), DType::f32, v.size());
    return v;
}

std::vector<float> download_as_f32(const DevBuf& b, size_t n, Elem e) {
    return decode(to_host<uint8_t>(b, n * elem_size(e)), e);
}

struct Tol {
    double atol, rtol;
    bool atol_of_rms; // atol is a share of the reference's RMS (16-bit types)
};

Tol tol_for(Elem e) { // see the top of the file
    return e == Elem::f32 ? Tol{1e-5, 1e-4, false} : e == Elem::f16 ? Tol{2e-3, 2e-3, true} : Tol{1e-2, 1e-2, true};
}

// One REQUIRE for the whole vector (per element would be slow), naming the first bad element.
// A NaN or an infinity anywhere fails.
void require_close(const std::vector<float>& got, const std::vector<double>& want, Tol tol) {
    REQUIRE(got.size() == want.size());
    double rms = 0;
    for (double w : want) rms += w * w;
    rms = want.empty() ? 0.0 : std::sqrt(rms / double(want.size()));
    const double atol = tol.atol_of_rms ? tol.atol * rms : tol.atol;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double err = std::fabs(double(got[i]) - want[i]);
        if (!(err <= atol + tol.rtol * std::fabs(want[i])) || !std::isfinite(want[i])) { // NaN fails too
            if (bad++ == 0) first = i;
        }
    }
    INFO(bad << " of " << got.size() << " off; first: element " << first << ": " << (bad ? got[first] : 0.0f)
              << " vs " << (bad ? want[first] : 0.0));
    REQUIRE(bad == 0);
}

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

} // namespace

// ---- rmsnorm -------------------------------------------------------------------------------

TEST_CASE("gpu: rmsnorm with and without the residual add equals the plain loop", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(101);
    int variant = 0;
    for (int n : {1, 769, 896, 3584, 5125, 8192, 16384}) {
        for (int rows : {1, 3, 37}) {
            for (int mode = 0; mode < 3; ++mode) { // no delta, delta, delta + bias
                const Elem out_type = k_elems[variant++ % 3];
                INFO("n " << n << ", rows " << rows << ", mode " << mode << ", out " << elem_name(out_type));
                const size_t count = size_t(rows) * n;
                std::vector<float> x = random_vector(count, rng), delta = random_vector(count, rng);
                std::vector<float> bias = random_vector(n, rng), weight = random_vector(n, rng, 0.5f, 1.5f);
                DevBuf dx = to_device(x), dd = to_device(delta), db = to_device(bias), dw = to_device(weight);
                DevBuf dout(count * elem_size(out_type));
                dout.fill(0xff);
                RmsNormParams p;
                p.x = dx.get<float>();
                p.delta = mode >= 1 ? dd.get<float>() : nullptr;
                p.bias = mode == 2 ? db.get<float>() : nullptr;
                p.weight = dw.get<float>();
                p.eps = 1e-6f;
                p.rows = rows;
                p.n = n;
                p.out = dout.get();
                p.out_type = out_type;
                require_launch(launch_rmsnorm(p, nullptr));

                std::vector<float> xr = x;
                if (mode >= 1)
                    for (size_t i = 0; i < count; ++i) xr[i] = x[i] + (mode == 2 ? delta[i] + bias[i % n] : delta[i]);
                std::vector<double> want(count);
                for (int r = 0; r < rows; ++r) {
                    double ss = 0;
                    for (int i = 0; i < n; ++i) ss += double(xr[size_t(r) * n + i]) * xr[size_t(r) * n + i];
                    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
                    for (int i = 0; i < n; ++i) want[size_t(r) * n + i] = weight[i] * (xr[size_t(r) * n + i] * inv);
                }
                require_close(download_as_f32(dout, count, out_type), want, tol_for(out_type));
                // The residual stream, written back when there is a delta, untouched otherwise:
                // the same single f32 additions as the CPU, so exactly equal.
                const std::vector<float> x_after = to_host<float>(dx, count);
                REQUIRE(std::memcmp(x_after.data(), xr.data(), count * sizeof(float)) == 0);
            }
        }
    }
}

// ---- qkv bias, q/k norm, rope, cache write -------------------------------------------------

TEST_CASE("gpu: qkv bias, q/k norm, rope and the cache write equal the plain loop", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(202);
    struct Shape {
        int heads, kv_heads, head_dim;
    };
    int variant = 0;
    for (Shape s : {Shape{14, 2, 64}, Shape{28, 4, 128}, Shape{64, 8, 128}, Shape{4, 2, 80}, Shape{8, 1, 256},
                    Shape{2, 1, 512}, Shape{3, 3, 34}}) {
        for (int tokens : {1, 3, 37}) {
            for (int mode = 0; mode < 4; ++mode) { // bit 0: bias, bit 1: q/k norm
                const Elem cache_type = k_elems[variant++ % 3];
                const bool with_bias = mode & 1, with_norm = mode & 2;
                INFO(s.heads << "/" << s.kv_heads << " heads of " << s.head_dim << ", " << tokens << " tokens, bias "
                              << with_bias << ", norm " << with_norm << ", cache " << elem_name(cache_type));
                const int D = s.head_dim, half = D / 2;
                const int row = (s.heads + 2 * s.kv_heads) * D;
                const int64_t pos = 5, cache_len = pos + tokens + 7;
                std::vector<float> qkv = random_vector(size_t(tokens) * row, rng);
                std::vector<float> bias = random_vector(row, rng);
                std::vector<float> qn = random_vector(D, rng, 0.5f, 1.5f), kn = random_vector(D, rng, 0.5f, 1.5f);
                std::vector<float> angle = random_vector(size_t(tokens) * half, rng, -10.0f, 10.0f);
                std::vector<float> cs(angle.size()), sn(angle.size());
                for (size_t i = 0; i < angle.size(); ++i) {
                    cs[i] = std::cos(angle[i]);
                    sn[i] = std::sin(angle[i]);
                }
                DevBuf dqkv = to_device(qkv), dbias = to_device(bias), dqn = to_device(qn), dkn = to_device(kn);
                DevBuf dcos = to_device(cs), dsin = to_device(sn);
                const size_t cache_elems = size_t(s.kv_heads) * cache_len * D;
                DevBuf dk(cache_elems * elem_size(cache_type)), dv(cache_elems * elem_size(cache_type));
                dk.fill(0xff);
                dv.fill(0xff);
                QkvRopeParams p;
                p.qkv = dqkv.get<float>();
                p.bias = with_bias ? dbias.get<float>() : nullptr;
                p.q_norm = with_norm ? dqn.get<float>() : nullptr;
                p.k_norm = with_norm ? dkn.get<float>() : nullptr;
                p.cos = dcos.get<float>();
                p.sin = dsin.get<float>();
                p.eps = 1e-6f;
                p.tokens = tokens;
                p.heads = s.heads;
                p.kv_heads = s.kv_heads;
                p.head_dim = D;
                p.k_cache = dk.get();
                p.v_cache = dv.get();
                p.cache_type = cache_type;
                p.cache_len = cache_len;
                p.pos = pos;
                require_launch(launch_qkv_rope(p, nullptr));

                // Reference: each head after bias, norm and rotation.
                std::vector<double> want_q(size_t(tokens) * s.heads * D);
                std::vector<double> want_k(cache_elems, 0.0), want_v(cache_elems, 0.0);
                for (int t = 0; t < tokens; ++t) {
                    for (int slot = 0; slot < s.heads + 2 * s.kv_heads; ++slot) {
                        std::vector<double> x(D);
                        for (int d = 0; d < D; ++d) {
                            const size_t i = size_t(slot) * D + d;
                            x[d] = double(qkv[size_t(t) * row + i]) + (with_bias ? bias[i] : 0.0f);
                        }
                        const bool is_v = slot >= s.heads + s.kv_heads, is_q = slot < s.heads;
                        if (!is_v) {
                            if (with_norm) {
                                double ss = 0;
                                for (double v : x) ss += v * v;
                                const double inv = 1.0 / std::sqrt(ss / D + 1e-6);
                                for (int d = 0; d < D; ++d) x[d] = (is_q ? qn[d] : kn[d]) * (x[d] * inv);
                            }
                            std::vector<double> y(D);
                            for (int i = 0; i < half; ++i) {
                                const double c = cs[size_t(t) * half + i], si = sn[size_t(t) * half + i];
                                y[i] = x[i] * c - x[i + half] * si;
                                y[i + half] = x[i + half] * c + x[i] * si;
                            }
                            x = y;
                        }
                        if (is_q) {
                            for (int d = 0; d < D; ++d) want_q[(size_t(t) * s.heads + slot) * D + d] = x[d];
                        } else {
                            const int g = is_v ? slot - s.heads - s.kv_heads : slot - s.heads;
                            auto& dst = is_v ? want_v : want_k;
                            for (int d = 0; d < D; ++d) dst[(size_t(g) * cache_len + pos + t) * D + d] = x[d];
                        }
                    }
                }
                const std::vector<float> got_qkv = to_host<float>(dqkv, qkv.size());
                std::vector<float> got_q(want_q.size());
                for (int t = 0; t < tokens; ++t)
                    std::copy_n(got_qkv.begin() + size_t(t) * row, size_t(s.heads) * D,
                                got_q.begin() + size_t(t) * s.heads * D);
                require_close(got_q, want_q, tol_for(Elem::f32));

                // The new positions hold the keys and values; every other position is untouched.
                for (int which = 0; which < 2; ++which) {
                    const DevBuf& buf = which == 0 ? dk : dv;
                    const std::vector<uint8_t> bytes = to_host<uint8_t>(buf, cache_elems * elem_size(cache_type));
                    const std::vector<float> got = decode(bytes, cache_type);
                    std::vector<float> got_new;
                    std::vector<double> want_new;
                    size_t untouched_bad = 0;
                    for (int g = 0; g < s.kv_heads; ++g)
                        for (int64_t j = 0; j < cache_len; ++j)
                            for (int d = 0; d < D; ++d) {
                                const size_t i = (size_t(g) * cache_len + j) * D + d;
                                if (j >= pos && j < pos + tokens) {
                                    got_new.push_back(got[i]);
                                    want_new.push_back((which == 0 ? want_k : want_v)[i]);
                                } else {
                                    for (size_t b = 0; b < elem_size(cache_type); ++b)
                                        untouched_bad += bytes[i * elem_size(cache_type) + b] != 0xff;
                                }
                            }
                    INFO((which == 0 ? "k" : "v") << " cache");
                    REQUIRE(untouched_bad == 0);
                    require_close(got_new, want_new, tol_for(cache_type));
                }
            }
        }
    }
}

// ---- swiglu, embedding, bf16 -> f16 --------------------------------------------------------

TEST_CASE("gpu: swiglu equals the plain loop", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(303);
    for (int inter : {1, 769, 4864, 5125}) {
        for (int tokens : {1, 3, 37}) {
            for (Elem out_type : k_elems) {
                INFO(tokens << " tokens, inter " << inter << ", out " << elem_name(out_type));
                // Gates over a wider range, so that silu's both tails are exercised.
                std::vector<float> gu = random_vector(size_t(tokens) * 2 * inter, rng, -8.0f, 8.0f);
                DevBuf dgu = to_device(gu), dout(size_t(tokens) * inter * elem_size(out_type));
                dout.fill(0xff);
                SwigluParams p;
                p.gate_up = dgu.get<float>();
                p.tokens = tokens;
                p.inter = inter;
                p.out = dout.get();
                p.out_type = out_type;
                require_launch(launch_swiglu(p, nullptr));
                std::vector<double> want(size_t(tokens) * inter);
                for (int t = 0; t < tokens; ++t)
                    for (int i = 0; i < inter; ++i) {
                        const double g = gu[size_t(t) * 2 * inter + i], u = gu[size_t(t) * 2 * inter + inter + i];
                        want[size_t(t) * inter + i] = g / (1.0 + std::exp(-g)) * u;
                    }
                require_close(download_as_f32(dout, want.size(), out_type), want, tol_for(out_type));
            }
        }
    }
}

TEST_CASE("gpu: the embedding lookup copies the table's rows exactly", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(404);
    for (int hidden : {769, 896}) {
        for (int tokens : {1, 3, 37}) {
            for (Elem table_type : k_elems) {
                INFO(tokens << " tokens, hidden " << hidden << ", table " << elem_name(table_type));
                const int vocab = 1000;
                const std::vector<uint8_t> table = encode(random_vector(size_t(vocab) * hidden, rng), table_type);
                const std::vector<float> values = decode(table, table_type);
                std::vector<int32_t> ids(tokens);
                std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
                for (auto& id : ids) id = pick(rng);
                ids[0] = vocab - 1; // the last row too
                DevBuf dtable = to_device(table), dids = to_device(ids), dout(size_t(tokens) * hidden * sizeof(float));
                EmbedParams p;
                p.table = dtable.get();
                p.table_type = table_type;
                p.vocab = vocab;
                p.hidden = hidden;
                p.ids = dids.get<int32_t>();
                p.tokens = tokens;
                p.out = dout.get<float>();
                require_launch(launch_embed(p, nullptr));
                const std::vector<float> got = to_host<float>(dout, size_t(tokens) * hidden);
                for (int t = 0; t < tokens; ++t)
                    REQUIRE(std::memcmp(got.data() + size_t(t) * hidden, values.data() + size_t(ids[t]) * hidden,
                                        hidden * sizeof(float)) == 0);
            }
        }
    }
}

TEST_CASE("gpu: bf16 -> f16 in place rounds as the CPU conversion, overflow to inf", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(505);
    for (int count : {1, 7, 8, 769, 5125, 100003}) {
        for (int offset : {0, 1, 3}) { // elements into the buffer: unaligned starts
            INFO(count << " elements from element " << offset);
            std::vector<float> f = random_vector(size_t(count), rng);
            // Magnitudes from f16's subnormals to beyond its range, and the specials.
            std::uniform_int_distribution<int> exponent(-30, 20);
            for (auto& x : f) x = std::ldexp(x, exponent(rng));
            const float specials[] = {0.0f, -0.0f, 65504.0f, 65520.0f, -1e6f, 1e30f,
                                      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                      1e-8f, k_nan};
            for (size_t i = 0; i < std::size(specials) && i < f.size(); ++i) f[i * 7 % f.size()] = specials[i];
            std::vector<uint16_t> bits(size_t(count) + offset + 5, 0x1234);
            for (int i = 0; i < count; ++i) bits[size_t(offset) + i] = f32_to_bf16(f[i]);
            DevBuf d = to_device(bits);
            require_launch(launch_bf16_to_f16(d.get<uint16_t>() + offset, count, nullptr));
            const std::vector<uint16_t> got = to_host<uint16_t>(d, bits.size());
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < bits.size(); ++i) {
                bool ok;
                if (i < size_t(offset) || i >= size_t(offset) + count) {
                    ok = got[i] == 0x1234;
                } else {
                    const float src = bf16_to_f32(bits[i]);
                    // NaN stays NaN (the payload may differ); everything else bit for bit.
                    ok = std::isnan(src) ? std::isnan(f16_to_f32(got[i])) : got[i] == f32_to_f16(src);
                }
                if (!ok && bad++ == 0) first = i;
            }
            INFO(bad << " wrong; first at " << first << ": " << got[first] << " from bf16 " << bits[first]);
            REQUIRE(bad == 0);
        }
    }
}

// ---- the matrix products ---------------------------------------------------------------------

TEST_CASE("gpu: gemm equals the plain loop for odd rows, columns, tokens and output strides, every type", "[gpu]") {
    // y = x W^T with W [rows, cols] row-major as the split stores it, through cuBLAS with the
    // transposes and leading dimensions gemm() passes; y's columns past `rows` are untouched.
    if (!gpu_available()) return;
    std::mt19937 rng(1111);
    cublasHandle_t blas = nullptr;
    REQUIRE(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
    for (Elem type : k_elems)
        for (int64_t rows : {1, 37, 769})
            for (int64_t cols : {8, 129, 896})
                for (int64_t tokens : {1, 5, 13}) {
                    const int64_t ldy = rows + 3;
                    INFO(elem_name(type) << ": rows " << rows << ", cols " << cols << ", tokens " << tokens << ", ldy " << ldy);
                    const std::vector<uint8_t> w = encode(random_vector(size_t(rows * cols), rng), type);
                    const std::vector<uint8_t> x = encode(random_vector(size_t(tokens * cols), rng), type);
                    const std::vector<float> wf = decode(w, type), xf = decode(x, type);
                    DevBuf dw = to_device(w), dx = to_device(x), dy(size_t(tokens * ldy) * sizeof(float));
                    dy.fill(0xff);
                    GemmParams g;
                    g.w = dw.get();
                    g.w_type = type;
                    g.rows = rows;
                    g.cols = cols;
                    g.x = dx.get();
                    g.x_type = type;
                    g.tokens = tokens;
                    g.y = dy.get<float>();
                    g.ldy = ldy;
                    gemm(blas, g);
                    sync();
                    const std::vector<float> y = to_host<float>(dy, size_t(tokens * ldy));
                    std::vector<float> got;
                    std::vector<double> want;
                    size_t touched = 0;
                    for (int64_t t = 0; t < tokens; ++t) {
                        for (int64_t r = 0; r < rows; ++r) {
                            double sum = 0;
                            for (int64_t k = 0; k < cols; ++k) sum += double(wf[size_t(r * cols + k)]) * xf[size_t(t * cols + k)];
                            want.push_back(sum);
                            got.push_back(y[size_t(t * ldy + r)]);
                        }
                        for (int64_t r = rows; r < ldy; ++r) touched += !std::isnan(y[size_t(t * ldy + r)]);
                    }
                    REQUIRE(touched == 0);
                    // Products of 16-bit inputs are exact in f32: only the f32 sums err.
                    require_close(got, want, Tol{1e-5 * std::sqrt(double(cols)), 1e-4, false});
                }
    // Weights and activations of different types are refused before cuBLAS sees them.
    DevBuf d(4096);
    GemmParams bad;
    bad.w = bad.x = d.get();
    bad.w_type = Elem::bf16;
    bad.x_type = Elem::f16;
    bad.rows = bad.cols = bad.tokens = 4;
    bad.y = d.get<float>();
    bad.ldy = 4;
    REQUIRE_THROWS(gemm(blas, bad));
    REQUIRE(cublasDestroy(blas) == CUBLAS_STATUS_SUCCESS);
}

// ---- sampling ------------------------------------------------------------------------------

TEST_CASE("gpu: penalty and temperature are the CPU's operations bit for bit", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(606);
    for (int64_t n : {1, 769, 151936}) {
        std::vector<float> logits = random_vector(size_t(n), rng, -20.0f, 20.0f);
        logits[0] = 0.0f;
        std::vector<int32_t> ids(static_cast<size_t>(n));
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng);
        ids.resize(std::min<size_t>(ids.size(), 300));
        ids.push_back(0); // might be a duplicate for n == 1
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        std::shuffle(ids.begin(), ids.end(), rng);
        for (float penalty : {1.3f, 0.7f}) {
            for (float temperature : {0.7f, 1.0f, 1.9f}) {
                INFO("n " << n << ", penalty " << penalty << ", temperature " << temperature);
                DevBuf dl = to_device(logits), di = to_device(ids);
                require_launch(launch_penalize(dl.get<float>(), n, di.get<int32_t>(), int(ids.size()), penalty, nullptr));
                require_launch(launch_temperature(dl.get<float>(), n, temperature, nullptr));
                std::vector<float> want = logits;
                for (int32_t id : ids) {
                    float& l = want[size_t(id)];
                    l = l > 0 ? l / penalty : l * penalty;
                }
                for (auto& l : want) l /= temperature;
                const std::vector<float> got = to_host<float>(dl, size_t(n));
                REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
            }
        }
    }
}

TEST_CASE("gpu: argmax is the first index of the largest value", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(707);
    for (int64_t n : {1, 2, 769, 4097, 151936, 262144}) {
        for (int mode = 0; mode < 4; ++mode) { // random; duplicate max; all equal; max at the end
            INFO("n " << n << ", mode " << mode);
            std::vector<float> logits = random_vector(size_t(n), rng, -30.0f, 30.0f);
            std::uniform_int_distribution<int64_t> at(0, n - 1);
            if (mode == 1) {
                const int64_t a = at(rng), b = at(rng);
                logits[size_t(a)] = logits[size_t(b)] = 100.0f;
            } else if (mode == 2) {
                std::fill(logits.begin(), logits.end(), -0.5f);
            } else if (mode == 3) {
                logits.back() = 1000.0f;
            }
            const int32_t want = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
            DevBuf dl = to_device(logits), dout(sizeof(int32_t)), ws(sample_workspace_bytes(n));
            require_launch(launch_argmax(dl.get<float>(), n, dout.get<int32_t>(), ws.get(), nullptr));
            REQUIRE(to_host<int32_t>(dout, 1)[0] == want);
        }
    }
}

TEST_CASE("gpu: top-k is a stable descending sort's first k, ties by index", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(808);
    for (int64_t n : {1, 300, 4096, 4097, 151936, 262144}) {
        for (int k : {1, 50, 256}) {
            if (k > n) continue;
            for (bool ties : {false, true}) {
                INFO("n " << n << ", k " << k << ", ties " << ties);
                std::vector<float> logits = random_vector(size_t(n), rng, -10.0f, 10.0f);
                if (ties) // seven values, among them +0 and -0 (round(-0.3) = -0), equal to the CPU
                    for (auto& l : logits) l = std::round(l / 4.0f);
                std::vector<int32_t> order(static_cast<size_t>(n));
                std::iota(order.begin(), order.end(), 0);
                std::stable_sort(order.begin(), order.end(),
                                 [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
                DevBuf dl = to_device(logits), dv(size_t(k) * sizeof(float)), di(size_t(k) * sizeof(int32_t));
                DevBuf ws(sample_workspace_bytes(n));
                require_launch(launch_topk(dl.get<float>(), n, k, dv.get<float>(), di.get<int32_t>(), ws.get(), nullptr));
                const std::vector<float> values = to_host<float>(dv, size_t(k));
                const std::vector<int32_t> ids = to_host<int32_t>(di, size_t(k));
                for (int i = 0; i < k; ++i) {
                    INFO("rank " << i);
                    REQUIRE(ids[size_t(i)] == order[size_t(i)]);
                    const float want = logits[size_t(order[size_t(i)])];
                    REQUIRE(std::memcmp(&values[size_t(i)], &want, sizeof(float)) == 0);
                }
            }
        }
    }
}

// ---- attention -----------------------------------------------------------------------------

namespace {

struct AttnCase {
    int heads, kv_heads, head_dim, tokens;
    int64_t pos, window;
    Elem cache_type, out_type;
    int sm_count = -1;     // -1: the device's
    bool mapped = false;   // the cache in mapped pinned host memory
    float scale_mult = 1;  // times 1/sqrt(head_dim): larger makes the softmax peaked
};

std::string describe(const AttnCase& c) {
    return std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " heads of " + std::to_string(c.head_dim) +
           ", " + std::to_string(c.tokens) + " tokens at " + std::to_string(c.pos) + ", window " +
           std::to_string(c.window) + ", cache " + elem_name(c.cache_type) + ", out " + elem_name(c.out_type) +
           ", sm_count " + std::to_string(c.sm_count) + (c.mapped ? ", mapped host cache" : "") + ", scale x" +
           std::to_string(c.scale_mult);
}

void check_attention(const AttnCase& c, std::mt19937& rng) {
    INFO(describe(c));
    const int D = c.head_dim, group = c.heads / c.kv_heads;
    const int64_t q_stride = int64_t(c.heads + 2 * c.kv_heads) * D;
    const int64_t filled = c.pos + c.tokens, cache_len = filled + 9;
    // q within a qkv row; the k and v parts are NaN, which the kernel must not read.
    std::vector<float> qkv(size_t(c.tokens * q_stride), k_nan);
    for (int t = 0; t < c.tokens; ++t) {
        const std::vector<float> q = random_vector(size_t(c.heads) * D, rng);
        std::copy(q.begin(), q.end(), qkv.begin() + t * q_stride);
    }
    // The cache up to pos + tokens (earlier steps and this one's qkv_rope); NaN beyond, where
    // nothing may be read.
    const size_t cache_elems = size_t(c.kv_heads) * cache_len * D;
    std::vector<float> kf(cache_elems, k_nan), vf(cache_elems, k_nan);
    for (int g = 0; g < c.kv_heads; ++g) {
        const std::vector<float> k = random_vector(size_t(filled) * D, rng), v = random_vector(size_t(filled) * D, rng);
        std::copy(k.begin(), k.end(), kf.begin() + g * cache_len * D);
        std::copy(v.begin(), v.end(), vf.begin() + g * cache_len * D);
    }
    const std::vector<uint8_t> kb = encode(kf, c.cache_type), vb = encode(vf, c.cache_type);
    const std::vector<float> kr = decode(kb, c.cache_type), vr = decode(vb, c.cache_type);

    DevBuf dqkv = to_device(qkv);
    const size_t out_elems = size_t(c.tokens) * c.heads * D;
    DevBuf dout(out_elems * elem_size(c.out_type));
    dout.fill(0xff); // NaN: every element must be written
    DevBuf ws(k_attention_workspace);
    ws.fill(0xff);
    std::unique_ptr<DevBuf> dk, dv;
    std::unique_ptr<MappedBuf> hk, hv;
    AttentionParams p;
    if (c.mapped) {
        hk = std::make_unique<MappedBuf>(kb.size());
        hv = std::make_unique<MappedBuf>(vb.size());
        std::memcpy(hk->host(), kb.data(), kb.size());
        std::memcpy(hv->host(), vb.data(), vb.size());
        p.k_cache = hk->dev();
        p.v_cache = hv->dev();
    } else {
        dk = std::make_unique<DevBuf>(kb.data(), kb.size());
        dv = std::make_unique<DevBuf>(vb.data(), vb.size());
        p.k_cache = dk->get();
        p.v_cache = dv->get();
    }
    p.q = dqkv.get<float>();
    p.q_stride = q_stride;
    p.cache_type = c.cache_type;
    p.cache_len = cache_len;
    p.out = dout.get();
    p.out_type = c.out_type;
    p.tokens = c.tokens;
    p.heads = c.heads;
    p.kv_heads = c.kv_heads;
    p.head_dim = D;
    p.pos = c.pos;
    p.window = c.window;
    p.scale = c.scale_mult / std::sqrt(float(D));
    p.workspace = ws.get();
    p.sm_count = c.sm_count < 0 ? sm_count() : c.sm_count;
    p.smem_optin = attention_ready();
    require_launch(launch_attention(p, nullptr));

    std::vector<double> want(out_elems);
    std::vector<double> s;
    for (int t = 0; t < c.tokens; ++t) {
        const int64_t last = c.pos + t, first = c.window > 0 ? std::max<int64_t>(0, last + 1 - c.window) : 0;
        for (int h = 0; h < c.heads; ++h) {
            const int g = h / group;
            const float* q = qkv.data() + t * q_stride + int64_t(h) * D;
            s.assign(size_t(last - first + 1), 0.0);
            double mx = -1e300;
            for (int64_t j = first; j <= last; ++j) {
                const float* k = kr.data() + (g * cache_len + j) * D;
                double dot = 0;
                for (int d = 0; d < D; ++d) dot += double(q[d]) * k[d];
                s[size_t(j - first)] = dot * p.scale;
                mx = std::max(mx, s[size_t(j - first)]);
            }
            double sum = 0;
            for (auto& x : s) sum += x = std::exp(x - mx);
            double* o = want.data() + (size_t(t) * c.heads + h) * D;
            for (int64_t j = first; j <= last; ++j) {
                const float* v = vr.data() + (g * cache_len + j) * D;
                const double w = s[size_t(j - first)] / sum;
                for (int d = 0; d < D; ++d) o[d] += w * v[d];
            }
        }
    }
    require_close(download_as_f32(dout, out_elems, c.out_type), want, tol_for(c.out_type));
}

} // namespace

TEST_CASE("gpu: attention over a prompt equals the plain loop, every head_dim and group", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(909);
    struct Shape {
        int heads, kv_heads, head_dim;
    };
    int variant = 0;
    // Groups 7, 7, 8, 1, 2, 8 and 7; head_dim 64, 80, 96, 128 and 256.
    for (Shape s : {Shape{14, 2, 64}, Shape{28, 4, 128}, Shape{64, 8, 128}, Shape{8, 8, 80}, Shape{16, 8, 96},
                    Shape{8, 1, 256}, Shape{7, 1, 128}}) {
        for (int tokens : {1, 3, 37, 77}) {
            for (int64_t pos : {0, 50}) {
                const int v = variant++;
                check_attention({s.heads, s.kv_heads, s.head_dim, tokens, pos, 0, k_elems[v % 3], k_elems[v / 3 % 3]},
                                rng);
            }
        }
    }
}

TEST_CASE("gpu: attention with the small heads of tiny models, every cache and output type", "[gpu]") {
    // head_dim 8 (tinystories-656k, tiny-llama3), 16 (tiny-qwen2, tiny-mistral), 24 (tiny-qwen3)
    // and 32: fewer output pairs than lanes, so lanes from D / 2 on hold nothing; f32 caches of
    // D = 8 are two 16-byte vectors a row, 16-bit ones one.
    if (!gpu_available()) return;
    std::mt19937 rng(914);
    struct Shape {
        int heads, kv_heads, head_dim;
    };
    // Groups 1, 7, 2, 3, 4 and 8 (32-row blocks for a prompt).
    for (Shape s : {Shape{8, 8, 8}, Shape{7, 1, 8}, Shape{4, 2, 16}, Shape{6, 2, 24}, Shape{8, 2, 32},
                    Shape{16, 2, 32}}) {
        for (Elem cache_type : k_elems)
            for (Elem out_type : k_elems) {
                const AttnCase base{s.heads, s.kv_heads, s.head_dim, 1, 0, 0, cache_type, out_type};
                auto with = [&](int tokens, int64_t pos, int64_t window = 0, int sm = -1, float scale = 1) {
                    AttnCase c = base;
                    c.tokens = tokens;
                    c.pos = pos;
                    c.window = window;
                    c.sm_count = sm;
                    c.scale_mult = scale;
                    return c;
                };
                check_attention(with(5, 0), rng);              // a prompt from position 0
                check_attention(with(40, 33), rng);            // a prompt after earlier ones (8-row slots)
                check_attention(with(1, 0), rng);              // the first decode step: one position
                check_attention(with(1, 2999), rng);           // a decode step split across blocks
                check_attention(with(1, 700, 0, 0), rng);      // the same, no split: one block walks it all
                check_attention(with(9, 100, 7, -1, 8.0f), rng); // a window, peaked softmax
            }
        // Splits with many rows: an sm_count that asks for more blocks than the rows give.
        check_attention({s.heads, s.kv_heads, s.head_dim, 37, 300, 0, Elem::bf16, Elem::f16, 10000}, rng);
    }
}

TEST_CASE("gpu: attention for every cache and output type, softmax flat and peaked", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(910);
    for (Elem cache_type : k_elems)
        for (Elem out_type : k_elems)
            for (float scale_mult : {1.0f, 8.0f}) {
                check_attention({14, 2, 64, 37, 20, 0, cache_type, out_type, -1, false, scale_mult}, rng);
                check_attention({8, 1, 256, 9, 40, 0, cache_type, out_type, -1, false, scale_mult}, rng);
                check_attention({28, 4, 128, 1, 700, 0, cache_type, out_type, -1, false, scale_mult}, rng);
            }
}

TEST_CASE("gpu: attention for a decode step over long contexts, split across blocks", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(911);
    check_attention({14, 2, 64, 1, 2999, 0, Elem::bf16, Elem::bf16}, rng);
    check_attention({64, 8, 128, 1, 2999, 0, Elem::f16, Elem::f32}, rng);
    check_attention({28, 4, 128, 1, 19999, 0, Elem::bf16, Elem::f32}, rng);
    check_attention({14, 2, 64, 1, 19999, 0, Elem::f32, Elem::f16, -1, false, 8.0f}, rng);
    check_attention({8, 1, 256, 1, 5000, 0, Elem::f32, Elem::f32}, rng); // one K/V buffer (f32, 256)
    check_attention({16, 1, 80, 1, 3001, 0, Elem::f16, Elem::bf16}, rng); // group 16: 32-row blocks
    // No split (sm_count 0: unknown), one block walks everything.
    check_attention({14, 2, 64, 1, 2999, 0, Elem::bf16, Elem::f32, 0}, rng);
    // Splits with many rows: an sm_count that asks for more blocks than the rows give.
    check_attention({14, 2, 64, 37, 300, 0, Elem::f16, Elem::f32, 10000}, rng);
    check_attention({8, 1, 256, 77, 1000, 0, Elem::f32, Elem::f32, 10000}, rng);
    check_attention({28, 4, 96, 5, 4000, 0, Elem::bf16, Elem::f16, 10000}, rng);
}

TEST_CASE("gpu: attention with a sliding window", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(912);
    check_attention({14, 2, 64, 37, 50, 16, Elem::f32, Elem::f32}, rng);
    check_attention({14, 2, 64, 77, 0, 20, Elem::bf16, Elem::f32}, rng);
    check_attention({28, 4, 128, 37, 100, 1, Elem::f16, Elem::f32}, rng); // only its own position
    check_attention({28, 4, 128, 1, 2999, 1000, Elem::bf16, Elem::bf16}, rng);
    check_attention({64, 8, 128, 3, 5000, 333, Elem::f32, Elem::f16, 10000}, rng);
    check_attention({16, 8, 96, 37, 10, 4096, Elem::f16, Elem::f32}, rng); // wider than everything
    check_attention({14, 2, 64, 37, 10, 46, Elem::f32, Elem::f32}, rng); // cuts position 0 for the last token only
    check_attention({14, 2, 64, 37, 10, 47, Elem::f32, Elem::f32}, rng); // cuts nothing
}

TEST_CASE("gpu: attention reads a cache in mapped pinned host memory", "[gpu]") {
    if (!gpu_available()) return;
    std::mt19937 rng(913);
    check_attention({14, 2, 64, 1, 2999, 0, Elem::bf16, Elem::f32, -1, true}, rng);
    check_attention({28, 4, 128, 37, 100, 0, Elem::f16, Elem::f16, -1, true}, rng);
}

TEST_CASE("gpu: launchers refuse what they do not support", "[gpu]") {
    if (!gpu_available()) return;
    DevBuf buf(1 << 20);
    AttentionParams p;
    p.q = buf.get<float>();
    p.q_stride = 4 * 72;
    p.k_cache = p.v_cache = buf.get();
    p.cache_len = 16;
    p.out = buf.get();
    p.tokens = 1;
    p.heads = 4;
    p.kv_heads = 2;
    p.head_dim = 72; // not supported
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);
    // Exactly the head sizes attention_supports_head_dim lists launch.
    for (int d = 1; d <= 320; ++d) {
        INFO("head_dim " << d);
        p.head_dim = d;
        p.q_stride = 4 * d;
        REQUIRE((launch_attention(p, nullptr) == cudaSuccess) == attention_supports_head_dim(d));
    }
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    p.head_dim = 64;
    p.q_stride = 4 * 64;
    p.kv_heads = 3; // 4 % 3 != 0
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);
    p.kv_heads = 2;
    p.pos = 16; // past the cache
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);
    p.pos = 0;
    p.cache_type = static_cast<Elem>(7);
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);

    QkvRopeParams r;
    r.qkv = buf.get<float>();
    r.cos = r.sin = buf.get<float>();
    r.k_cache = r.v_cache = buf.get();
    r.tokens = 1;
    r.heads = 2;
    r.kv_heads = 1;
    r.head_dim = 63; // odd
    r.cache_len = 4;
    REQUIRE(launch_qkv_rope(r, nullptr) == cudaErrorInvalidValue);
    r.head_dim = 514; // too wide
    REQUIRE(launch_qkv_rope(r, nullptr) == cudaErrorInvalidValue);

    REQUIRE(launch_topk(buf.get<float>(), 100, 257, buf.get<float>(), buf.get<int32_t>(), buf.get(), nullptr) ==
            cudaErrorInvalidValue);
    REQUIRE(launch_topk(buf.get<float>(), 10, 11, buf.get<float>(), buf.get<int32_t>(), buf.get(), nullptr) ==
            cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaSuccess); // refusals launch nothing
}

#endif // RABBIT_HAVE_CUDA
