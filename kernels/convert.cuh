// SPDX-License-Identifier: Apache-2.0
// bf16 weights on a GPU without bf16 arithmetic (sm_75): rewritten as f16 in place once they
// arrive, so the matrix products run in f16 with f32 accumulation.
#pragma once

#include "elem.cuh"

#include <cstdint>

namespace rabbit {

// data [count] bf16 -> [count] f16, in place. Values beyond f16's range become +-inf.
cudaError_t launch_bf16_to_f16(void* data, int64_t count, cudaStream_t stream);

} // namespace rabbit
