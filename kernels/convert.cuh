// SPDX-License-Identifier: Apache-2.0
// bf16 weights on a GPU without bf16 arithmetic (sm_75): rewritten as f16 in place once they
// arrive, so the matrix products run in f16 with f32 accumulation.
#pragma once

#include "elem.cuh"

#include <cstdint>

namespace rabbit {

// data [count] bf16 -> [count] f16, in place. Values beyond f16's range become +-inf.
cudaError_t launch_bf16_to_f16(void* data, int64_t count, cudaStream_t stream);

// A strided view of f32 rows into contiguous rows of another type: the part's queries, read in
// the qkv rows, as the 16-bit Q that cuDNN's fused attention takes (it has no f32 Q).
struct RowsToElemParams {
    const float* src = nullptr; // row r at src + r * src_stride, cols floats
    int64_t src_stride = 0;
    void* dst = nullptr;        // [rows, cols] dst_type, contiguous
    Elem dst_type = Elem::bf16; // rounded to nearest even; f16 saturates at +-65504
    int64_t rows = 0, cols = 0;
};
cudaError_t launch_rows_to_elem(const RowsToElemParams& p, cudaStream_t stream);

} // namespace rabbit
