// SPDX-License-Identifier: Apache-2.0
// Weight rows read in their stored dtype: dotted with an activation row (dot_row, dot_f32),
// or widened to f32 (widen_row).
#include "backend/cpu/dot.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/simd.h"

#include "common/quant.h"

#include <cstring>
#include <vector>

namespace rabbit {

namespace {

float dot_f32_portable(const float* a, const float* b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef RABBIT_X86
using namespace simd;

//   w [n] T, x [n] f32
template <DType T>
RABBIT_AVX2 float dot_avx2(const void* w, const float* x, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load8<T>(w, i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(load8<T>(w, i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(load8<T>(w, i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(load8<T>(w, i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load8<T>(w, i), _mm256_loadu_ps(x + i), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    float tail[8];
    for (; i < n; ++i) {
        convert_elements(static_cast<const uint8_t*>(w) + i * dtype_size(T), T, tail, DType::f32, 1);
        s += tail[0] * x[i];
    }
    return s;
}

//   src [n] bf16 or f16, out [n] f32
RABBIT_AVX2 void widen_avx2(const void* src, DType t, float* out, size_t n) {
    size_t i = 0;
    if (t == DType::bf16)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8<DType::bf16>(src, i));
    else
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8<DType::f16>(src, i));
    convert_elements(static_cast<const uint16_t*>(src) + i, t, out + i, DType::f32, n - i);
}

//   w [n] T, x [n] f32
template <DType T>
RABBIT_AVX512 float dot_avx512(const void* w, const float* x, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(load16<T>(w, i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(load16<T>(w, i + 16), _mm512_loadu_ps(x + i + 16), s1);
        s2 = _mm512_fmadd_ps(load16<T>(w, i + 32), _mm512_loadu_ps(x + i + 32), s2);
        s3 = _mm512_fmadd_ps(load16<T>(w, i + 48), _mm512_loadu_ps(x + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(load16<T>(w, i), _mm512_loadu_ps(x + i), s0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    float tail[1];
    for (; i < n; ++i) {
        convert_elements(static_cast<const uint8_t*>(w) + i * dtype_size(T), T, tail, DType::f32, 1);
        s += tail[0] * x[i];
    }
    return s;
}
#endif

} // namespace

namespace cpu {

float dot_row(const Matrix& w, uint64_t r, const float* x) {
    const size_t n = size_t(w.cols);
    const void* row = w.row(r);
#ifdef RABBIT_X86
    const Isa isa = cpu_isa();
    if (isa >= Isa::avx512) {
        if (w.dtype == DType::f32) return dot_avx512<DType::f32>(row, x, n);
        if (w.dtype == DType::bf16) return dot_avx512<DType::bf16>(row, x, n);
        return dot_avx512<DType::f16>(row, x, n);
    }
    if (isa == Isa::avx2) {
        if (w.dtype == DType::f32) return dot_avx2<DType::f32>(row, x, n);
        if (w.dtype == DType::bf16) return dot_avx2<DType::bf16>(row, x, n);
        return dot_avx2<DType::f16>(row, x, n);
    }
#endif
    if (w.dtype == DType::f32) return dot_f32_portable(static_cast<const float*>(row), x, n);
    thread_local std::vector<float> tmp;
    tmp.resize(n);
    convert_elements(row, w.dtype, tmp.data(), DType::f32, n);
    return dot_f32_portable(tmp.data(), x, n);
}

} // namespace cpu

float dot_f32(const float* a, const float* b, size_t n) {
#ifdef RABBIT_X86
    const Isa isa = cpu_isa();
    if (isa >= Isa::avx512) return dot_avx512<DType::f32>(a, b, n);
    if (isa == Isa::avx2) return dot_avx2<DType::f32>(a, b, n);
#endif
    return dot_f32_portable(a, b, n);
}

void widen_row(const Matrix& w, uint64_t r, float* out) {
    const size_t n = size_t(w.cols);
    const uint8_t* row = w.row(r);
    if (w.dtype == DType::f32) {
        std::memcpy(out, row, n * 4);
        return;
    }
    if (is_quant_dtype(w.dtype)) return dequantize(w.dtype, row, out, n);
#ifdef RABBIT_X86
    if (cpu_isa() >= Isa::avx2) return widen_avx2(row, w.dtype, out, n);
#endif
    convert_elements(row, w.dtype, out, DType::f32, n);
}

} // namespace rabbit
