// SPDX-License-Identifier: Apache-2.0
#include "embed.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

// One block per token: its row of the table, converted to f32.
template <typename TT>
__global__ void embed_kernel(const TT* __restrict__ table,    // [vocab, hidden] TT
                             const int32_t* __restrict__ ids, // [tokens]
                             int64_t hidden,
                             float* __restrict__ out) { // [tokens, hidden] f32
    const int64_t t = blockIdx.x;
    const TT* src = table + int64_t(ids[t]) * hidden;
    float* dst = out + t * hidden;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = to_f32(src[i]);
}

} // namespace

cudaError_t launch_embed(const EmbedParams& p, cudaStream_t stream) {
    if (!p.table || !p.ids || !p.out || p.vocab <= 0 || p.hidden <= 0 || p.tokens < 0 || !valid_elem(p.table_type))
        return cudaErrorInvalidValue;
    if (p.tokens == 0) return cudaSuccess;
    constexpr int threads = 256;
    return dispatch_elem(p.table_type, [&](auto tag) {
        using TT = typename decltype(tag)::type;
        RABBIT_LAUNCH(unsigned(p.tokens), threads, 0, stream, embed_kernel<TT>)(static_cast<const TT*>(p.table), p.ids, p.hidden,
                                                                     p.out);
        return cudaGetLastError();
    });
}

} // namespace rabbit
