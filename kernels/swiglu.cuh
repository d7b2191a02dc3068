// SPDX-License-Identifier: Apache-2.0
// The MLP's activation: silu(gate) * up in one pass over the fused gate_up projection.
#pragma once

#include "elem.cuh"

namespace rabbit {

struct SwigluParams {
    float* gate_up = nullptr;       // [tokens, 2 inter] f32: gate = columns [0, inter), up = [inter, 2 inter);
                                    // with row_scale, the gate columns are overwritten (scratch)
    int tokens = 0, inter = 0;
    void* out = nullptr;            // [tokens, inter] out_type
    Elem out_type = Elem::f32;
    // f16 out only, or null: each row is divided by a power of 2 that brings its largest
    // value within 32768, so that activations beyond f16's range (Qwen2.x MLPs reach them)
    // survive; the down product's row r is then multiplied back by row_scale[r] (rmsnorm's
    // delta_scale). Rows within range are divided by 1: unchanged.
    float* row_scale = nullptr;     // [tokens] f32
};

cudaError_t launch_swiglu(const SwigluParams& p, cudaStream_t stream);

} // namespace rabbit
