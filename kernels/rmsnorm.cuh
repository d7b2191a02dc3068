// SPDX-License-Identifier: Apache-2.0
// RMSNorm of every row, fused with the residual add that precedes it (and the bias of the
// projection that produced the addend), so the residual stream is read and written once.
#pragma once

#include "elem.cuh"

namespace rabbit {

struct RmsNormParams {
    float* x = nullptr;            // [rows, n] f32, the residual stream; with delta: x += delta (+ bias) first, in place
    const float* delta = nullptr;  // [rows, n] f32 (a sublayer's output) or null
    const float* delta_scale = nullptr; // [rows] f32: delta's row r times delta_scale[r] (the down product of
                                        // swiglu's scaled f16 rows), or null; needs delta
    const float* bias = nullptr;   // [n] f32, added with delta (o_proj bias), or null; needs delta
    const float* weight = nullptr; // [n] f32
    float eps = 1e-6f;
    int rows = 0, n = 0;
    void* out = nullptr;           // [rows, n] out_type: x / sqrt(mean(x^2) + eps) * weight
    Elem out_type = Elem::f32;
};

cudaError_t launch_rmsnorm(const RmsNormParams& p, cudaStream_t stream);

} // namespace rabbit
