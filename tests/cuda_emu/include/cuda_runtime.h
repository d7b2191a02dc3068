// SPDX-License-Identifier: Apache-2.0
// The emulated CUDA runtime: the subset of cuda_runtime.h that rabbit uses, implemented on the
// host (tests/cuda_emu/*.cpp). Test infrastructure only: a build with -DRABBIT_CUDA_EMULATOR=ON
// puts this directory first on the include path instead of the CUDA Toolkit, and compiles
// kernels/*.cu and src/backend/cuda/* as host C++ against it. Kernels run one fiber per CUDA
// thread with real barriers and warp rendezvous; streams run on threads of their own; device
// memory is host memory, one allocation per cudaMalloc. What it cannot show is listed in
// docs/ARCHITECTURE.md ("The emulated device").
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define RABBIT_CUDA_EMULATED 1
#define CUDART_VERSION 13000

// ---- error codes and flags (the values of the CUDA Toolkit) --------------------------------
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorSetOnActiveProcess = 708,
    cudaErrorAssert = 710,
    cudaErrorLaunchFailure = 719,
    cudaErrorUnknown = 999,
};

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

constexpr unsigned cudaStreamDefault = 0x0;
constexpr unsigned cudaStreamNonBlocking = 0x1;
constexpr unsigned cudaEventDefault = 0x0;
constexpr unsigned cudaEventBlockingSync = 0x1;
constexpr unsigned cudaEventDisableTiming = 0x2;
constexpr unsigned cudaHostAllocDefault = 0x0;
constexpr unsigned cudaHostAllocPortable = 0x1;
constexpr unsigned cudaHostAllocMapped = 0x2;
constexpr unsigned cudaHostAllocWriteCombined = 0x4;
constexpr unsigned cudaDeviceScheduleAuto = 0x0;
constexpr unsigned cudaDeviceScheduleSpin = 0x1;
constexpr unsigned cudaDeviceScheduleYield = 0x2;
constexpr unsigned cudaDeviceScheduleBlockingSync = 0x4;
constexpr unsigned cudaDeviceMapHost = 0x8;

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

// ---- vector types --------------------------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    size_t totalConstMem;
    int major;
    int minor;
    int multiProcessorCount;
    int canMapHostMemory;
    int unifiedAddressing;
    int asyncEngineCount;
    size_t sharedMemPerBlockOptin;
    size_t sharedMemPerMultiprocessor;
    int maxThreadsPerMultiProcessor;
};

// ---- the runtime API -----------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaSetDeviceFlags(unsigned flags);
cudaError_t cudaGetDeviceFlags(unsigned* flags);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned flags);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned flags);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);

template <typename T>
inline cudaError_t cudaMalloc(T** ptr, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
template <typename T>
inline cudaError_t cudaHostAlloc(T** ptr, size_t bytes, unsigned flags) {
    return cudaHostAlloc(reinterpret_cast<void**>(ptr), bytes, flags);
}
template <typename R, typename... P>
inline cudaError_t cudaFuncSetAttribute(R (*func)(P...), cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}

// ---- device code ---------------------------------------------------------------------------
// Kernels are plain functions; each emulated thread calls one with its own copy of the
// arguments. __shared__ is deliberately not defined: shared memory is declared through
// RABBIT_SHARED / RABBIT_DYNAMIC_SHARED (kernels/launch.cuh), which the emulator places in the
// block's shared memory.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __constant__ static

namespace cuda_emu {

// Where an emulated thread is; the kernel reads it through threadIdx and the rest. Defined
// here with its constant initialiser, so that no translation unit reaches it through a TLS
// wrapper (which GCC 12's -fsanitize=null miscompiles into a false null report).
struct ThreadPlace {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};
inline thread_local const ThreadPlace* t_place = nullptr;

// Barriers and warp rendezvous (fiber switches); the call site names a failure.
void sync_block(const char* file, int line);
void sync_warp(unsigned mask, const char* file, int line);
// One shuffle: deposits `bytes` of value, waits for every lane in mask, returns (in out) the
// value of lane src_of(lane) as the operation defines it.
enum class ShuffleOp { idx, up, down, bfly };
void shuffle(unsigned mask, const void* value, void* out, size_t bytes, ShuffleOp op, int operand, int width,
             const char* file, int line);
unsigned vote(unsigned mask, bool pred, const char* file, int line); // the ballot of the lanes in mask

// Shared memory of the block running on this thread: the dynamic part, and a static array
// per declaration site (key), the same address for every thread of the block.
void* shared_dynamic();
void* shared_static(const void* key, size_t bytes, size_t align, const char* name);

// A fault the kernel itself raised (an assertion); the block stops, the launch fails.
[[noreturn]] void device_fault(const char* what, const char* file, int line);

// ---- launches ----------------------------------------------------------------------------
struct KernelBody {
    virtual ~KernelBody() = default;
    virtual void run() = 0; // on an emulated thread: calls the kernel with a copy of the arguments
};

// Checks the configuration (as a launch would), then queues the kernel on the stream; the
// result is the launch's error, which cudaGetLastError then returns.
void launch(const void* func, const char* name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            KernelBody* body);

template <typename... P>
class Launch {
public:
    Launch(void (*func)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const char* name)
        : func_(func), grid_(grid), block_(block), shared_(shared_bytes), stream_(stream), name_(name) {}
    template <typename... A>
    void operator()(A&&... args) const {
        static_assert(sizeof...(A) == sizeof...(P), "a kernel launch with the wrong number of arguments");
        struct Body : KernelBody {
            void (*f)(P...);
            std::tuple<std::decay_t<P>...> args;
            Body(void (*fn)(P...), std::tuple<std::decay_t<P>...> a) : f(fn), args(std::move(a)) {}
            void run() override { std::apply(f, args); }
        };
        launch(reinterpret_cast<const void*>(func_), name_, grid_, block_, shared_, stream_,
               new Body(func_, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)));
    }

private:
    void (*func_)(P...);
    dim3 grid_, block_;
    size_t shared_;
    cudaStream_t stream_;
    const char* name_;
};

template <typename... P>
Launch<P...> make_launch(void (*func)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                         const char* name) {
    return Launch<P...>(func, grid, block, shared_bytes, stream, name);
}

inline dim3 as_dim3(dim3 d) { return d; }
inline dim3 as_dim3(unsigned v) { return dim3(v); }
inline dim3 as_dim3(int v) { return dim3(unsigned(v)); }
inline dim3 as_dim3(long v) { return dim3(unsigned(v)); }
inline dim3 as_dim3(long long v) { return dim3(unsigned(v)); }
inline dim3 as_dim3(unsigned long v) { return dim3(unsigned(v)); }
inline dim3 as_dim3(unsigned long long v) { return dim3(unsigned(v)); }

} // namespace cuda_emu

#define threadIdx (::cuda_emu::t_place->thread_idx)
#define blockIdx (::cuda_emu::t_place->block_idx)
#define blockDim (::cuda_emu::t_place->block_dim)
#define gridDim (::cuda_emu::t_place->grid_dim)
constexpr int warpSize = 32;

#define __syncthreads() ::cuda_emu::sync_block(__FILE__, __LINE__)

inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    ::cuda_emu::sync_warp(mask, file, line);
}

template <typename T>
inline T cuda_emu_shuffle(unsigned mask, T v, ::cuda_emu::ShuffleOp op, int operand, int width, const char* file,
                          int line) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 16, "a shuffle of a value up to 16 bytes");
    T out;
    ::cuda_emu::shuffle(mask, &v, &out, sizeof(T), op, operand, width, file, line);
    return out;
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, const char* file = __builtin_FILE(),
                     int line = __builtin_LINE()) {
    return cuda_emu_shuffle(mask, v, ::cuda_emu::ShuffleOp::idx, src, width, file, line);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, const char* file = __builtin_FILE(),
                        int line = __builtin_LINE()) {
    return cuda_emu_shuffle(mask, v, ::cuda_emu::ShuffleOp::up, int(delta), width, file, line);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, const char* file = __builtin_FILE(),
                          int line = __builtin_LINE()) {
    return cuda_emu_shuffle(mask, v, ::cuda_emu::ShuffleOp::down, int(delta), width, file, line);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, const char* file = __builtin_FILE(),
                         int line = __builtin_LINE()) {
    return cuda_emu_shuffle(mask, v, ::cuda_emu::ShuffleOp::bfly, lane_mask, width, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuda_emu::vote(mask, pred != 0, file, line);
}
inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuda_emu::vote(mask, pred != 0, file, line) != 0;
}
inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuda_emu::vote(mask, pred != 0, file, line) == mask;
}

// ---- device arithmetic ---------------------------------------------------------------------
namespace cuda_emu {
template <typename To, typename From>
inline To bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "a bit cast between types of one size");
    To out;
    std::memcpy(&out, &v, sizeof(To));
    return out;
}
} // namespace cuda_emu
inline float __int_as_float(int v) { return ::cuda_emu::bit_cast<float>(v); }
inline float __uint_as_float(unsigned v) { return ::cuda_emu::bit_cast<float>(v); }
inline int __float_as_int(float f) { return ::cuda_emu::bit_cast<int>(f); }
inline unsigned __float_as_uint(float f) { return ::cuda_emu::bit_cast<unsigned>(f); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
