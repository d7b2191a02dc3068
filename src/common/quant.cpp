// SPDX-License-Identifier: Apache-2.0
#include "common/quant.h"

#include "common/error.h"

namespace rabbit {

void dequantize(DType t, const void* src, float* dst, size_t n) {
    RABBIT_CHECK(is_float_weight_dtype(t), std::string("dequantize ") + dtype_name(t) + ": not written yet");
    convert_elements(src, t, dst, DType::f32, n);
}

bool can_quantize(DType) { return false; }

void quantize(DType t, const float*, void*, size_t) {
    RABBIT_CHECK(false, std::string("quantize ") + dtype_name(t) + ": not written yet");
}

} // namespace rabbit
