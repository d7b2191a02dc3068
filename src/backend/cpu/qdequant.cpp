// SPDX-License-Identifier: Apache-2.0
// Vectorized dequantization of weight rows for the exact products (qexact.cpp): the values of
// common/quant.h's dequantize, to f32 rounding (d * q + m may be one fused rounding; every
// other operation is the reference's). AVX-512 and AVX2 (qdequant_x86.inc) for q8_0 .. q5_1, q4_k, q5_k and q6_k;
// q2_k, q3_k and the portable build go through the scalar dequantize.
#include "backend/cpu/kernels.h"
#include "backend/cpu/qexact.h"
#include "backend/cpu/simd.h"

#include "common/error.h"
#include "common/quant.h"

#include <cstring>
#include <string>

namespace rabbit::cpu {

namespace {

#ifdef RABBIT_X86
using namespace simd;

namespace dq_avx2 {
#define DQTARGET RABBIT_AVX2
#define DQ512 0
#include "backend/cpu/qdequant_x86.inc"
#undef DQTARGET
#undef DQ512
} // namespace dq_avx2

namespace dq_avx512 {
#define DQTARGET RABBIT_AVX512
#define DQ512 1
#include "backend/cpu/qdequant_x86.inc"
#undef DQTARGET
#undef DQ512
} // namespace dq_avx512
#endif

} // namespace

bool has_fast_dequant(DType t) {
#ifdef RABBIT_X86
    return cpu_isa() >= Isa::avx2 && t != DType::q2_k && t != DType::q3_k;
#else
    (void)t;
    return false;
#endif
}

void dequant_rows(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, float* y, size_t ldy) {
#ifdef RABBIT_X86
    if (has_fast_dequant(t)) {
        const bool wide = cpu_isa() >= Isa::avx512;
        for (size_t r = 0; r < nrows; ++r)
            (wide ? dq_avx512::dequant_row : dq_avx2::dequant_row)(t, w + r * rb, y + r * ldy, cols);
        return;
    }
#endif
    for (size_t r = 0; r < nrows; ++r) dequantize(t, w + r * rb, y + r * ldy, cols);
}

void dequant_dot(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const float* x, float* out) {
    RABBIT_CHECK(has_fast_dequant(t), std::string("dequant_dot: no vector path for ") + dtype_name(t));
#ifdef RABBIT_X86
    (cpu_isa() >= Isa::avx512 ? dq_avx512::dequant_dot_rows : dq_avx2::dequant_dot_rows)(t, w, rb, nrows, x, cols, out);
#else
    (void)w, (void)rb, (void)nrows, (void)cols, (void)x, (void)out;
#endif
}

} // namespace rabbit::cpu
