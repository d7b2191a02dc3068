// SPDX-License-Identifier: Apache-2.0
// The MLP's activation: silu(gate) * up in one pass over the fused gate_up projection.
#pragma once

#include "elem.cuh"

namespace rabbit {

struct SwigluParams {
    const float* gate_up = nullptr; // [tokens, 2 inter] f32: gate = columns [0, inter), up = [inter, 2 inter)
    int tokens = 0, inter = 0;
    void* out = nullptr;            // [tokens, inter] out_type
    Elem out_type = Elem::f32;
};

cudaError_t launch_swiglu(const SwigluParams& p, cudaStream_t stream);

} // namespace rabbit
