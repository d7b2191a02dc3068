// SPDX-License-Identifier: Apache-2.0
#include "quant.cuh"

#include "quant_device.cuh"

namespace rabbit {

namespace {

constexpr int k_matvec_threads = 256;          // 8 warps
constexpr int k_matvec_shared_floats = 8192;   // x of all tokens for a chunk of columns, f32 (32 KiB)
// Shared x is stored with one padding float after every 32: lane s reads element i of its
// group s at 33 s + i, bank (s + i) % 32, so the 32 lanes of a warp never share a bank.
__host__ __device__ constexpr int padded(int c) { return c + c / 32; }

__device__ __forceinline__ float load_elem(const void* x, int64_t i, Elem type) {
    switch (type) {
    case Elem::f32: return static_cast<const float*>(x)[i];
    case Elem::f16: return __half2float(static_cast<const __half*>(x)[i]);
    case Elem::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(x)[i]);
    }
    return 0.0f;
}

// y [tokens, ldy] = x [tokens, cols] w^T. Each warp owns rows_per_warp consecutive rows; the
// block's warps share x, staged in shared memory (f32) a chunk of columns at a time. Within a
// chunk, lane s of a warp decodes the row's 32-element groups s, s + 32, ... into registers
// (neighbouring lanes read neighbouring blocks: the warp reads a contiguous span of the row)
// and accumulates their products with every token's x; a warp-shuffle sum per row and token
// at the end. The quantized weights are read once per decode step, which is what bounds it.
template <WType T>
__global__ void __launch_bounds__(k_matvec_threads)
    matvec_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, int64_t row_bytes,
                  const void* __restrict__ x, Elem x_type, int tokens, int chunk, int rows_per_warp,
                  float* __restrict__ y, int64_t ldy) {
    RABBIT_SHARED(float, xs, padded(k_matvec_shared_floats));
    constexpr int R = 4; // the most rows per warp
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int64_t row0 = (int64_t(blockIdx.x) * warps + (threadIdx.x >> 5)) * rows_per_warp;
    const int stride = padded(chunk);
    float acc[R][k_matvec_max_tokens];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < k_matvec_max_tokens; ++t) acc[r][t] = 0.0f;

    for (int64_t c0 = 0; c0 < cols; c0 += chunk) {
        const int len = int(cols - c0 < chunk ? cols - c0 : chunk);
        __syncthreads(); // the previous chunk's readers are done with xs
        for (int i = threadIdx.x; i < tokens * len; i += blockDim.x) {
            const int t = i / len, c = i % len;
            xs[t * stride + padded(c)] = load_elem(x, int64_t(t) * cols + c0 + c, x_type);
        }
        __syncthreads();
        const int groups = len / 32;
        // Unrolled, as every loop that indexes acc: the accumulators stay in registers.
#pragma unroll
        for (int r = 0; r < R; ++r) {
            if (r >= rows_per_warp) break;
            const int64_t row = row0 + r;
            if (row >= rows) break; // the same for the whole warp
            const uint8_t* wr = w + row * row_bytes;
            for (int s = lane; s < groups; s += 32) {
                float v[32];
                decode32<T>(wr, c0 / 32 + s, v);
                const float* xg = xs + 33 * s;
#pragma unroll
                for (int t = 0; t < k_matvec_max_tokens; ++t) {
                    if (t >= tokens) break;
                    float d = 0.0f;
#pragma unroll
                    for (int i = 0; i < 32; ++i) d += v[i] * xg[t * stride + i];
                    acc[r][t] += d;
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int64_t row = row0 + r;
        if (r >= rows_per_warp || row >= rows) break;
#pragma unroll
        for (int t = 0; t < k_matvec_max_tokens; ++t) {
            if (t >= tokens) break;
            const float v = warp_sum(acc[r][t]);
            if (lane == 0) y[int64_t(t) * ldy + row] = v;
        }
    }
}

// out [rows, ldo] = rows of w (ids[i], or i), one 32-element group per thread (grid-stride).
template <WType T, typename O>
__global__ void dequant_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int64_t cols, int64_t rows,
                               const int32_t* __restrict__ ids, O* __restrict__ out, int64_t ldo) {
    const int64_t groups = cols / 32, total = rows * groups;
    const int64_t step = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
        const int64_t r = i / groups, s = i % groups;
        const int64_t src = ids ? int64_t(ids[r]) : r;
        float v[32];
        decode32<T>(w + src * row_bytes, s, v);
        O* o = out + r * ldo + 32 * s;
#pragma unroll
        for (int k = 0; k < 32; ++k) o[k] = from_f32<O>(v[k]);
    }
}

// The same for the float types, one element per thread.
template <typename S, typename O>
__global__ void convert_rows_kernel(const S* __restrict__ w, int64_t cols, int64_t rows,
                                    const int32_t* __restrict__ ids, O* __restrict__ out, int64_t ldo) {
    const int64_t total = rows * cols, step = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
        const int64_t r = i / cols, c = i % cols;
        const int64_t src = ids ? int64_t(ids[r]) : r;
        out[r * ldo + c] = from_f32<O>(to_f32(w[src * cols + c]));
    }
}

template <typename F>
cudaError_t dispatch_float(WType t, F&& f) {
    switch (t) {
    case WType::f32: return f(ElemTag<float>{});
    case WType::f16: return f(ElemTag<__half>{});
    case WType::bf16: return f(ElemTag<__nv_bfloat16>{});
    default: break;
    }
    return cudaErrorInvalidValue;
}

} // namespace

cudaError_t launch_quant_matvec(const QuantMatvecParams& p, cudaStream_t stream) {
    if (!wtype_is_quant(p.w_type) || !p.w || !p.x || !p.y || !valid_elem(p.x_type) || p.rows <= 0 || p.cols <= 0 ||
        p.cols % wtype_block(p.w_type) != 0 || p.tokens < 1 || p.tokens > k_matvec_max_tokens || p.ldy < p.rows ||
        reinterpret_cast<uintptr_t>(p.w) % 2 != 0)
        return cudaErrorInvalidValue;
    // A chunk of columns: as many as shared memory holds for every token, in whole
    // super-blocks (256), so that no block straddles two chunks.
    const int chunk = k_matvec_shared_floats / p.tokens / 256 * 256;
    // More rows per warp for more tokens: x, read from shared memory by every row, costs as
    // much as the weights when a warp has one row and eight tokens.
    const int rows_per_warp = p.tokens <= 2 ? 2 : 4;
    const int64_t per_block = (k_matvec_threads / 32) * rows_per_warp;
    const int64_t blocks = (p.rows + per_block - 1) / per_block;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    const int64_t row_bytes = wtype_row_bytes(p.w_type, p.cols);
    return dispatch_quant(p.w_type, [&](auto tag) {
        RABBIT_LAUNCH(unsigned(blocks), k_matvec_threads, 0, stream, matvec_kernel<decltype(tag)::type>)(
            static_cast<const uint8_t*>(p.w), p.rows, p.cols, row_bytes, p.x, p.x_type, p.tokens, chunk, rows_per_warp,
            p.y, p.ldy);
        return cudaGetLastError();
    });
}

cudaError_t launch_dequant(const DequantParams& p, cudaStream_t stream) {
    if (!valid_wtype(p.w_type) || !valid_elem(p.out_type) || !p.w || !p.out || p.rows < 0 || p.cols <= 0 ||
        p.ldo < p.cols || (wtype_is_quant(p.w_type) && p.cols % 32 != 0) || p.cols % wtype_block(p.w_type) != 0 ||
        reinterpret_cast<uintptr_t>(p.w) % 2 != 0)
        return cudaErrorInvalidValue;
    if (p.rows == 0) return cudaSuccess;
    constexpr int threads = 256;
    const int64_t row_bytes = wtype_row_bytes(p.w_type, p.cols);
    return dispatch_elem(p.out_type, [&](auto out_tag) {
        using O = typename decltype(out_tag)::type;
        O* out = static_cast<O*>(p.out);
        if (!wtype_is_quant(p.w_type))
            return dispatch_float(p.w_type, [&](auto in_tag) {
                using S = typename decltype(in_tag)::type;
                RABBIT_LAUNCH(grid_for(p.rows * p.cols, threads), threads, 0, stream, convert_rows_kernel<S, O>)(
                    static_cast<const S*>(p.w), p.cols, p.rows, p.ids, out, p.ldo);
                return cudaGetLastError();
            });
        return dispatch_quant(p.w_type, [&](auto tag) {
            RABBIT_LAUNCH(grid_for(p.rows * (p.cols / 32), threads), threads, 0, stream,
                          dequant_kernel<decltype(tag)::type, O>)(static_cast<const uint8_t*>(p.w), row_bytes, p.cols,
                                                                   p.rows, p.ids, out, p.ldo);
            return cudaGetLastError();
        });
    });
}

} // namespace rabbit
