// SPDX-License-Identifier: Apache-2.0
// qdot_x86.inc compiled for AVX2 and for AVX-512 VNNI: the vector paths of the quantized
// products (qkernels.h).
#include "backend/cpu/qkernels.h"
#include "backend/cpu/simd.h"

#include "common/error.h"
#include "common/quant.h"

#include <cstring>
#include <string>
#include <vector>

namespace rabbit::cpu {

#ifdef RABBIT_X86
namespace avx2 {
#define QTARGET RABBIT_AVX2
#define QVNNI 0
#define QTILE k_qtile_avx2
#include "backend/cpu/qdot_x86.inc"
#undef QTARGET
#undef QVNNI
#undef QTILE
} // namespace avx2

namespace vnni {
#define QTARGET RABBIT_AVX512VNNI
#define QVNNI 1
#define QTILE k_qtile_vnni
#include "backend/cpu/qdot_x86.inc"
#undef QTARGET
#undef QVNNI
#undef QTILE
} // namespace vnni

void qdot_avx2(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
               size_t nt, const float* bias, float* y, size_t ldy) {
    avx2::dot_rows(t, w, rb, nrows, cols, xq, xstride, nt, bias, y, ldy);
}

void qdot_vnni(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
               size_t nt, const float* bias, float* y, size_t ldy) {
    vnni::dot_rows(t, w, rb, nrows, cols, xq, xstride, nt, bias, y, ldy);
}

void qgemm8_vnni(DType t, const uint8_t* w, size_t row_bytes, size_t cols, const uint8_t* xq, size_t xs, size_t tokens,
                 const float* bias, float* y, size_t ldy) {
    vnni::gemm8_rows(t, w, row_bytes, cols, xq, xs, tokens, bias, y, ldy);
}
#else
// No vector paths off x86: best_qpath() never names them.
void qdot_avx2(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
               size_t nt, const float* bias, float* y, size_t ldy) {
    qdot_portable(t, w, rb, nrows, cols, xq, xstride, nt, bias, y, ldy);
}
void qdot_vnni(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
               size_t nt, const float* bias, float* y, size_t ldy) {
    qdot_portable(t, w, rb, nrows, cols, xq, xstride, nt, bias, y, ldy);
}
void qgemm8_vnni(DType, const uint8_t*, size_t, size_t, const uint8_t*, size_t, size_t, const float*, float*, size_t) {
    RABBIT_CHECK(false, "qgemm8_vnni off x86");
}
#endif

bool has_gemm8(DType t) { return is_quant_dtype(t); }

void bias_act_q8(uint8_t* xq, size_t cols) {
    auto* a = reinterpret_cast<ActQ8*>(xq);
    for (size_t b = 0; b < cols / 32; ++b)
        for (auto& q : a[b].q) q = int8_t(uint8_t(q) ^ 0x80u);
}

} // namespace rabbit::cpu
