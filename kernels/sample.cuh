// SPDX-License-Identifier: Apache-2.0
// Choosing the next token on the GPU, so a decode step copies back one id (greedy) or k
// candidates (top-k), not the vocabulary: the repetition penalty, the temperature, argmax and
// top-k, each as the CPU sampler (src/engine/sampler.cpp) does it, bit for bit.
#pragma once

#include "elem.cuh"
#include "workspace.h" // k_topk_max, sample_workspace_bytes

#include <cstdint>

namespace rabbit {

// logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty for each id.
//   logits [n] f32; ids [n_ids] int32 device memory, distinct, each in [0, n)
cudaError_t launch_penalize(float* logits, int64_t n, const int32_t* ids, int n_ids, float penalty, cudaStream_t stream);

// logits[i] = logits[i] / temperature (a division, as the CPU sampler does).   logits [n] f32
cudaError_t launch_temperature(float* logits, int64_t n, float temperature, cudaStream_t stream);

// out[0] = the first index of the largest value (as torch.argmax).
//   logits [n] f32; out [1] int32 device memory
cudaError_t launch_argmax(const float* logits, int64_t n, int32_t* out, void* workspace, cudaStream_t stream);

// The k largest values in order: larger first, the lower index first among equal values
// (a stable descending sort's first k).   1 <= k <= min(n, k_topk_max)
//   logits [n] f32; values [k] f32, ids [k] int32, device memory
cudaError_t launch_topk(const float* logits, int64_t n, int k, float* values, int32_t* ids, void* workspace,
                        cudaStream_t stream);

} // namespace rabbit
