// SPDX-License-Identifier: Apache-2.0
// How the kernels are launched and declare shared memory, in one spelling for nvcc and for the
// emulated device (tests/cuda_emu, a build with -DRABBIT_CUDA_EMULATOR=ON), which compiles
// the same .cu files as host C++:
//   RABBIT_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...)   kernel<<<...>>>(args...)
//   RABBIT_SHARED(type, name, count);                __shared__ type name[count];
//   RABBIT_DYNAMIC_SHARED(type, name);               extern __shared__ __align__(16) type name[];
// The kernel comes last so that a template's commas need no parentheses. As with <<<>>>, the
// launch error is then cudaGetLastError()'s.
#pragma once

#include <cuda_runtime.h>

#ifdef RABBIT_CUDA_EMULATOR
#define RABBIT_LAUNCH(grid, block, shared_bytes, stream, ...)                                                  \
    ::cuda_emu::make_launch(__VA_ARGS__, ::cuda_emu::as_dim3(grid), ::cuda_emu::as_dim3(block), (shared_bytes), \
                            (stream), #__VA_ARGS__)
#define RABBIT_SHARED(type, name, count)                                                                         \
    static const char name##_site_ = 0;                                                                        \
    type* const name = static_cast<type*>(::cuda_emu::shared_static(&name##_site_, sizeof(type) * size_t(count), \
                                                                    alignof(type), #name))
#define RABBIT_DYNAMIC_SHARED(type, name) type* const name = static_cast<type*>(::cuda_emu::shared_dynamic())
#else
#define RABBIT_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#define RABBIT_SHARED(type, name, count) __shared__ type name[count]
#define RABBIT_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) type name[]
#endif
