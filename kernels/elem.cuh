// SPDX-License-Identifier: Apache-2.0
// The element types the kernels read and write, and the host-side launch check every launcher
// ends with. Plain CUDA: kernel headers and .cu files include nothing of the host libraries.
#pragma once

#include <cuda_runtime.h>

namespace rabbit {

// Weights arrive as f32, f16 or bf16. Activations that feed a matrix product and the KV cache
// are in the "compute type": the weights' type for 16-bit weights (f16 where the GPU has no
// bf16), f32 for f32 weights. The residual stream, matrix outputs, norms and logits are f32.
enum class Elem : int { f32 = 0, f16 = 1, bf16 = 2 };

inline size_t elem_size(Elem e) { return e == Elem::f32 ? 4 : 2; }

} // namespace rabbit
