// SPDX-License-Identifier: Apache-2.0
// The embedding lookup on the GPU, for an embedding table that is resident there (a tied
// model's, which is also the output projection); otherwise rows are gathered on the host.
#pragma once

#include "elem.cuh"

#include <cstdint>

namespace rabbit {

struct EmbedParams {
    const void* table = nullptr; // [vocab, hidden] table_type
    Elem table_type = Elem::f32;
    int64_t vocab = 0, hidden = 0;
    const int32_t* ids = nullptr; // [tokens] device memory, each in [0, vocab) (checked on the host)
    int tokens = 0;
    float* out = nullptr;         // [tokens, hidden] f32
};

cudaError_t launch_embed(const EmbedParams& p, cudaStream_t stream);

} // namespace rabbit
