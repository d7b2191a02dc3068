// SPDX-License-Identifier: Apache-2.0
// The emulated device itself (built with -DRABBIT_CUDA_EMULATOR=ON): that it catches what it
// is there to catch, each with a kernel written wrong on purpose, and that what it emulates
// behaves as CUDA does: barriers and shuffles, shared memory and its limits, launch limits,
// thread order, memory and its accounting, asynchronous streams and events, errors, cuBLAS.
#include "helpers.h"

#include <catch2/catch.hpp>

#include "cuda_emu.h"
#include "launch.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

// Every test starts from a device without a fault, in the settings it asks for, and puts the
// settings back.
struct Emu {
    cuda_emu::Settings saved = cuda_emu::settings();
    Emu() {
        cudaDeviceSynchronize();
        cuda_emu::clear_fault();
        REQUIRE(cudaSetDevice(0) == cudaSuccess);
    }
    ~Emu() {
        cudaDeviceSynchronize();
        cuda_emu::clear_fault();
        cuda_emu::set_settings(saved);
    }
    void order(cuda_emu::Order o) {
        cuda_emu::Settings s = cuda_emu::settings();
        s.order = o;
        cuda_emu::set_settings(s);
    }
};

template <typename T>
struct Buf {
    T* p = nullptr;
    size_t n;
    explicit Buf(size_t count) : n(count) { REQUIRE(cudaMalloc(&p, count * sizeof(T)) == cudaSuccess); }
    ~Buf() { cudaFree(p); }
    std::vector<T> get() const {
        std::vector<T> v(n);
        REQUIRE(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
        return v;
    }
    void put(const std::vector<T>& v) { REQUIRE(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess); }
};

// ---- kernels, right and wrong ----------------------------------------------------------------

// The block's sum through shared memory: every warp's partial sum, a barrier, then warp 0 adds
// them up. With `barrier` false, warp 0 reads the partials before the other warps wrote them.
void block_sum_kernel(const float* in, float* out, bool barrier) {
    RABBIT_SHARED(float, partial, 32);
    float v = in[blockIdx.x * blockDim.x + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    if (barrier) __syncthreads();
    if (threadIdx.x < 32) {
        float s = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (threadIdx.x == 0) out[blockIdx.x] = s;
    }
}

// Threads from `leave` on return before the barrier the others wait at.
void early_exit_kernel(int leave, int* out) {
    if (int(threadIdx.x) >= leave) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

// Two halves of the block at two different barriers.
void split_barrier_kernel(int* out) {
    if (threadIdx.x < 64) {
        __syncthreads();
        out[threadIdx.x] = 1;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2;
    }
}

// A full-warp shuffle that only the lanes below `lanes` reach.
void partial_shuffle_kernel(int lanes, float* out) {
    if (int(threadIdx.x) >= lanes) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, float(threadIdx.x), 1);
}

// A shuffle whose mask leaves out the calling lane (lane 5 uses lane 4's mask).
void bad_mask_kernel(float* out) {
    const unsigned mask = threadIdx.x < 16 ? 0x0000ffffu : 0xffff0000u;
    const unsigned m = threadIdx.x == 5 ? 0xffff0000u : mask;
    out[threadIdx.x] = __shfl_xor_sync(m, 1.0f, 1);
}

// Two half-warp groups with masks of their own, and a down-shuffle at a group's edge.
void half_warp_kernel(float* out) {
    const unsigned mask = threadIdx.x < 16 ? 0x0000ffffu : 0xffff0000u;
    const float a = __shfl_xor_sync(mask, float(threadIdx.x), 8);
    const float b = __shfl_down_sync(0xffffffffu, float(threadIdx.x), 4, 16); // own value at the top of each 16
    out[2 * threadIdx.x] = a;
    out[2 * threadIdx.x + 1] = b;
    __syncwarp();
}

// Records the order in which threads (and blocks) take their first turn: the emulator runs one
// thread at a time, so a plain counter is exact.
int g_turn = 0;
void order_kernel(int* turn) { turn[blockIdx.x * blockDim.x + threadIdx.x] = g_turn++; }

void static_shared_kernel(float* out, int n) {
    RABBIT_SHARED(float, big, 49 * 256); // 49 KiB: more than any block may declare statically
    big[threadIdx.x] = 1.0f;
    out[threadIdx.x] = big[threadIdx.x] + float(n);
}

void dynamic_shared_kernel(float* out, int n) {
    RABBIT_DYNAMIC_SHARED(float, s);
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) s[i] = float(i);
    __syncthreads();
    out[threadIdx.x] = s[n - 1 - int(threadIdx.x)];
}

// Reads shared memory nobody wrote: poisoned with NaN.
void uninitialised_shared_kernel(float* out) {
    RABBIT_SHARED(float, s, 64);
    out[threadIdx.x] = s[threadIdx.x];
}

// Writes element n of an n-element buffer.
void overrun_kernel(float* p, int n) {
    const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (i <= n) p[i] = 1.0f; // one too many
}

void fill_kernel(float* p, int n, float v) {
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) p[i] = v;
}

cudaError_t sync_error() {
    const cudaError_t e = cudaDeviceSynchronize();
    return e != cudaSuccess ? e : cudaGetLastError();
}

} // namespace

// ---- barriers and warp rendezvous ---------------------------------------------------------

TEST_CASE("emulator: a missing barrier gives wrong sums, the barrier right ones", "[emu]") {
    Emu emu;
    const int blocks = 3, threads = 256;
    std::vector<float> in(size_t(blocks) * threads);
    for (size_t i = 0; i < in.size(); ++i) in[i] = float(i % 7) - 3.0f;
    Buf<float> din(in.size()), dout(blocks);
    din.put(in);
    for (cuda_emu::Order o : {cuda_emu::Order::forward, cuda_emu::Order::reverse, cuda_emu::Order::random}) {
        INFO("order " << int(o));
        emu.order(o);
        for (bool barrier : {true, false}) {
            RABBIT_LAUNCH(blocks, threads, 0, nullptr, block_sum_kernel)(din.p, dout.p, barrier);
            REQUIRE(sync_error() == cudaSuccess);
            const std::vector<float> got = dout.get();
            for (int b = 0; b < blocks; ++b) {
                double want = 0;
                for (int t = 0; t < threads; ++t) want += in[size_t(b) * threads + t];
                // Without the barrier, warp 0 reads partials not yet written (NaN) when it runs
                // before the other warps' lane 0: in forward order and in random order. In
                // reverse order they all run first, which is why every order is run.
                const bool right = barrier || o == cuda_emu::Order::reverse;
                REQUIRE((got[size_t(b)] == float(want)) == right);
            }
        }
    }
}

TEST_CASE("emulator: a barrier not every thread reaches fails the launch and names it", "[emu]") {
    Emu emu;
    Buf<int> out(128);
    RABBIT_LAUNCH(1, 128, 0, nullptr, early_exit_kernel)(96, out.p);
    REQUIRE(sync_error() == cudaErrorLaunchFailure);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("early_exit_kernel") && Catch::Contains("is not reached") &&
                                             Catch::Contains("thread (96,0,0) to thread (127,0,0) exited"));
    // Sticky, as on a GPU, until cleared.
    REQUIRE(cudaMemset(out.p, 0, 4) == cudaErrorLaunchFailure);
    cuda_emu::clear_fault();
    RABBIT_LAUNCH(1, 128, 0, nullptr, early_exit_kernel)(128, out.p);
    REQUIRE(sync_error() == cudaSuccess);

    RABBIT_LAUNCH(1, 128, 0, nullptr, split_barrier_kernel)(out.p);
    REQUIRE(sync_error() == cudaErrorLaunchFailure);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("waits at __syncthreads"));
}

TEST_CASE("emulator: a shuffle whose mask does not match the lanes taking part fails the launch", "[emu]") {
    Emu emu;
    Buf<float> out(64);
    RABBIT_LAUNCH(1, 32, 0, nullptr, partial_shuffle_kernel)(20, out.p);
    REQUIRE(sync_error() == cudaErrorLaunchFailure);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("mask 0xffffffff") && Catch::Contains("has exited"));
    cuda_emu::clear_fault();

    RABBIT_LAUNCH(1, 32, 0, nullptr, bad_mask_kernel)(out.p);
    REQUIRE(sync_error() == cudaErrorLaunchFailure);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("does not include the calling lane 5"));
    cuda_emu::clear_fault();

    // A whole warp's mask in a block of 48 threads: its second warp has 16 lanes.
    RABBIT_LAUNCH(1, 48, 0, nullptr, partial_shuffle_kernel)(48, out.p);
    REQUIRE(sync_error() == cudaErrorLaunchFailure);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("which this block does not have"));
    cuda_emu::clear_fault();

    // Groups with masks of their own are fine, and shuffles follow CUDA's rules at the edges.
    RABBIT_LAUNCH(1, 32, 0, nullptr, half_warp_kernel)(out.p);
    REQUIRE(sync_error() == cudaSuccess);
    const std::vector<float> got = out.get();
    for (int lane = 0; lane < 32; ++lane) {
        INFO("lane " << lane);
        REQUIRE(got[size_t(2 * lane)] == float(lane ^ 8));
        REQUIRE(got[size_t(2 * lane + 1)] == float(lane % 16 + 4 < 16 ? lane + 4 : lane));
    }
}

TEST_CASE("emulator: threads and blocks take turns forward, in reverse and at random", "[emu]") {
    Emu emu;
    const int blocks = 2, threads = 64;
    Buf<int> turn(size_t(blocks) * threads);
    std::vector<std::vector<int>> seen;
    for (cuda_emu::Order o : {cuda_emu::Order::forward, cuda_emu::Order::reverse, cuda_emu::Order::random}) {
        emu.order(o);
        g_turn = 0;
        RABBIT_LAUNCH(blocks, threads, 0, nullptr, order_kernel)(turn.p);
        REQUIRE(sync_error() == cudaSuccess);
        seen.push_back(turn.get());
    }
    const int n = blocks * threads;
    for (int i = 0; i < n; ++i) {
        REQUIRE(seen[0][size_t(i)] == i);
        REQUIRE(seen[1][size_t(i)] == n - 1 - i);
    }
    std::vector<int> sorted = seen[2];
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < n; ++i) REQUIRE(sorted[size_t(i)] == i); // a permutation...
    REQUIRE(seen[2] != seen[0]);                                  // ...and neither of the others
    REQUIRE(seen[2] != seen[1]);
}

// ---- shared memory and launch limits --------------------------------------------------------

TEST_CASE("emulator: shared memory starts as NaN and is limited as on each architecture", "[emu]") {
    Emu emu;
    Buf<float> out(1024);
    RABBIT_LAUNCH(1, 64, 0, nullptr, uninitialised_shared_kernel)(out.p);
    REQUIRE(sync_error() == cudaSuccess);
    const std::vector<float> poison = out.get();
    for (int i = 0; i < 64; ++i) REQUIRE(std::isnan(poison[size_t(i)]));

    RABBIT_LAUNCH(1, 32, 0, nullptr, static_shared_kernel)(out.p, 1);
    REQUIRE(sync_error() == cudaErrorLaunchFailure);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("static shared memory beyond 48 KiB"));
    cuda_emu::clear_fault();

    // Dynamic shared memory: 48 KiB without opting in; more only up to the architecture's opt-in.
    const int n = 20000; // 80000 bytes
    RABBIT_LAUNCH(1, 128, 48u << 10, nullptr, dynamic_shared_kernel)(out.p, 12288);
    REQUIRE(sync_error() == cudaSuccess);
    REQUIRE(out.get()[0] == 12287.0f);
    RABBIT_LAUNCH(1, 128, n * 4, nullptr, dynamic_shared_kernel)(out.p, n);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    for (int arch : {75, 80, 86, 89, 90}) {
        INFO("sm_" << arch);
        cuda_emu::Settings s = cuda_emu::settings();
        s.arch = arch;
        cuda_emu::set_settings(s);
        cudaDeviceProp prop;
        REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
        REQUIRE(prop.major * 10 + prop.minor == arch);
        REQUIRE(prop.sharedMemPerBlockOptin == cuda_emu::optin_shared_bytes(arch));
        const int max = int(prop.sharedMemPerBlockOptin);
        REQUIRE(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max + 1) ==
                cudaErrorInvalidValue);
        cudaGetLastError();
        REQUIRE(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max) == cudaSuccess);
        const bool fits = n * 4 <= max; // not on sm_75 (64 KiB)
        RABBIT_LAUNCH(1, 128, n * 4, nullptr, dynamic_shared_kernel)(out.p, n);
        REQUIRE(cudaGetLastError() == (fits ? cudaSuccess : cudaErrorInvalidValue));
        REQUIRE(sync_error() == cudaSuccess);
        if (fits) REQUIRE(out.get()[0] == float(n - 1));
        REQUIRE(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 48 << 10) == cudaSuccess);
    }
}

TEST_CASE("emulator: launches beyond CUDA's limits are refused", "[emu][launch-limits]") {
    Emu emu;
    Buf<float> out(2048);
    RABBIT_LAUNCH(1, 1025, 0, nullptr, fill_kernel)(out.p, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    RABBIT_LAUNCH(dim3(1, 65536), 32, 0, nullptr, fill_kernel)(out.p, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    RABBIT_LAUNCH(dim3(1, 1, 65536), 32, 0, nullptr, fill_kernel)(out.p, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    RABBIT_LAUNCH(1, dim3(1, 1, 65), 0, nullptr, fill_kernel)(out.p, 2048, 1.0f);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    // At the limits: fine.
    Buf<int> turn(1);
    RABBIT_LAUNCH(dim3(1, 65535, 1), 1, 0, nullptr, order_kernel)(turn.p);
    RABBIT_LAUNCH(dim3(1, 1, 65535), dim3(1, 1, 64), 0, nullptr, order_kernel)(turn.p);
    RABBIT_LAUNCH(2, 1024, 0, nullptr, fill_kernel)(out.p, 2048, 3.0f);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    REQUIRE(sync_error() == cudaSuccess);
    REQUIRE(out.get()[2047] == 3.0f);
}

// ---- memory ---------------------------------------------------------------------------------

TEST_CASE("emulator: a write one element past a device buffer is caught", "[emu]") {
    // In a process of its own: under AddressSanitizer the overrun ends it with a report;
    // otherwise the guard bytes behind the buffer fail the launch.
    const rabbit::test::RunResult r = rabbit::test::run_program("/proc/self/exe", {"emulator child: overrun a device buffer by one element"});
    INFO(r.err);
    REQUIRE(r.exit_code != 0);
    REQUIRE((r.err.find("device buffer overrun") != std::string::npos ||
             r.err.find("heap-buffer-overflow") != std::string::npos));
}

TEST_CASE("emulator child: overrun a device buffer by one element", "[.emu-child]") {
    Emu emu;
    Buf<float> a(1000);
    RABBIT_LAUNCH(4, 256, 0, nullptr, overrun_kernel)(a.p, 1000);
    REQUIRE(sync_error() == cudaSuccess); // fails: the guard check names the overrun
}

TEST_CASE("emulator: device memory is rounded, counted, limited, and copies stay inside it", "[emu]") {
    Emu emu;
    const uint64_t before = cuda_emu::device_used(0);
    size_t free0 = 0, total = 0;
    REQUIRE(cudaMemGetInfo(&free0, &total) == cudaSuccess);
    REQUIRE(total == cuda_emu::settings().memory);
    REQUIRE(free0 == total - before);
    void* small = nullptr;
    REQUIRE(cudaMalloc(&small, 1) == cudaSuccess);
    REQUIRE(cuda_emu::device_used(0) == before + (2u << 20)); // cudaMalloc's 2 MiB granularity
    REQUIRE(reinterpret_cast<uintptr_t>(small) % 256 == 0);
    cuda_emu::reset_device_peak(0);
    void* big = nullptr;
    REQUIRE(cudaMalloc(&big, (3u << 20) + 1) == cudaSuccess);
    REQUIRE(cuda_emu::device_peak(0) == before + (2u << 20) + (4u << 20));
    REQUIRE(cudaFree(big) == cudaSuccess);
    REQUIRE(cuda_emu::device_peak(0) == before + (6u << 20)); // the peak stays
    REQUIRE(cuda_emu::device_used(0) == before + (2u << 20));
    void* huge = nullptr;
    REQUIRE(cudaMalloc(&huge, size_t(total)) == cudaErrorMemoryAllocation);
    REQUIRE(cudaGetLastError() == cudaErrorMemoryAllocation);
    REQUIRE(cudaGetLastError() == cudaSuccess); // not sticky

    // A copy must lie inside its allocation.
    std::vector<unsigned char> host(4096);
    Buf<unsigned char> d(1000);
    REQUIRE(cudaMemcpy(d.p, host.data(), 1000, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(d.p, host.data(), 1001, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    REQUIRE(cudaMemcpy(host.data(), d.p + 1, 1000, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    REQUIRE(cudaMemcpy(host.data(), host.data() + 8, 8, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    cudaGetLastError();
    REQUIRE(cudaFree(small) == cudaSuccess);

    // Pinned memory is visible to the device at the same address when mapped.
    void* pinned = nullptr;
    REQUIRE(cudaHostAlloc(&pinned, 4096, cudaHostAllocMapped | cudaHostAllocWriteCombined) == cudaSuccess);
    REQUIRE(cuda_emu::host_alloc_flags(pinned) == int64_t(cudaHostAllocMapped | cudaHostAllocWriteCombined));
    REQUIRE(cuda_emu::host_alloc_flags(host.data()) == -1);
    void* dev = nullptr;
    REQUIRE(cudaHostGetDevicePointer(&dev, pinned, 0) == cudaSuccess);
    RABBIT_LAUNCH(1, 256, 0, nullptr, fill_kernel)(static_cast<float*>(dev), 1024, 3.0f);
    REQUIRE(sync_error() == cudaSuccess);
    REQUIRE(static_cast<float*>(pinned)[1023] == 3.0f);
    REQUIRE(cudaFreeHost(pinned) == cudaSuccess);
}

// ---- streams, events, errors ------------------------------------------------------------------

TEST_CASE("emulator: streams run asynchronously; only events order them", "[emu]") {
    Emu emu;
    cuda_emu::Settings s = cuda_emu::settings();
    s.kernel_delay_us = 20000; // the kernel lags behind the copy stream
    cuda_emu::set_settings(s);
    cudaStream_t compute = nullptr, copy = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking) == cudaSuccess);
    cudaEvent_t done = nullptr;
    REQUIRE(cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess);
    const int n = 4096;
    Buf<float> d(n);
    REQUIRE(cudaMemset(d.p, 0, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    float* host = nullptr;
    REQUIRE(cudaHostAlloc(&host, n * sizeof(float), 0) == cudaSuccess);
#if defined(__SANITIZE_THREAD__)
    // The unordered copy is a data race between the streams' threads, which ThreadSanitizer
    // reports, as it should: only the ordered case here.
    for (bool ordered : {true}) {
#else
    for (bool ordered : {false, true}) {
#endif
        INFO("ordered by an event: " << ordered);
        RABBIT_LAUNCH(4, 256, 0, compute, fill_kernel)(d.p, n, 7.0f);
        REQUIRE(cudaEventRecord(done, compute) == cudaSuccess);
        if (ordered) REQUIRE(cudaStreamWaitEvent(copy, done, 0) == cudaSuccess);
        std::fill(host, host + n, 0.0f);
        REQUIRE(cudaMemcpyAsync(host, d.p, n * sizeof(float), cudaMemcpyDeviceToHost, copy) == cudaSuccess);
        REQUIRE(cudaStreamSynchronize(copy) == cudaSuccess);
        REQUIRE((host[n - 1] == 7.0f) == ordered); // unordered, the copy ran before the late kernel
        REQUIRE(cudaStreamSynchronize(compute) == cudaSuccess);
        REQUIRE(cudaMemset(d.p, 0, n * sizeof(float)) == cudaSuccess);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    }
    // A query before the work is done: cudaErrorNotReady, which the runtime also leaves as the
    // thread's last error (the next launcher's cudaGetLastError() would report it).
    RABBIT_LAUNCH(1, 32, 0, compute, fill_kernel)(d.p, n, 1.0f);
    REQUIRE(cudaEventRecord(done, compute) == cudaSuccess);
    REQUIRE(cudaEventQuery(done) == cudaErrorNotReady);
    REQUIRE(cudaGetLastError() == cudaErrorNotReady);
    REQUIRE(cudaEventSynchronize(done) == cudaSuccess);
    REQUIRE(cudaEventQuery(done) == cudaSuccess);
    REQUIRE(cudaEventDestroy(done) == cudaSuccess);
    REQUIRE(cudaFreeHost(host) == cudaSuccess);
    REQUIRE(cudaStreamDestroy(compute) == cudaSuccess);
    REQUIRE(cudaStreamDestroy(copy) == cudaSuccess);
}

TEST_CASE("emulator: timed events measure the work between them; async copies from pageable memory are counted", "[emu]") {
    Emu emu;
    cuda_emu::Settings s = cuda_emu::settings();
    s.kernel_delay_us = 30000;
    s.quiet = true;
    cuda_emu::set_settings(s);
    cudaStream_t st = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
    cudaEvent_t a = nullptr, b = nullptr;
    REQUIRE(cudaEventCreate(&a) == cudaSuccess);
    REQUIRE(cudaEventCreate(&b) == cudaSuccess);
    Buf<float> d(256);
    REQUIRE(cudaEventRecord(a, st) == cudaSuccess);
    RABBIT_LAUNCH(1, 256, 0, st, fill_kernel)(d.p, 256, 1.0f);
    REQUIRE(cudaEventRecord(b, st) == cudaSuccess);
    float ms = 0;
    REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaErrorNotReady);
    cudaGetLastError();
    REQUIRE(cudaEventSynchronize(b) == cudaSuccess);
    REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
    REQUIRE(ms >= 25.0f);

    const uint64_t pageable = cuda_emu::counters().pageable_async_copies;
    std::vector<float> host(256);
    float* pinned = nullptr;
    REQUIRE(cudaHostAlloc(&pinned, 256 * sizeof(float), 0) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(pinned, d.p, 1024, cudaMemcpyDeviceToHost, st) == cudaSuccess);
    REQUIRE(cuda_emu::counters().pageable_async_copies == pageable);
    REQUIRE(cudaMemcpyAsync(host.data(), d.p, 1024, cudaMemcpyDeviceToHost, st) == cudaSuccess);
    REQUIRE(cuda_emu::counters().pageable_async_copies == pageable + 1);
    REQUIRE(host[255] == 1.0f); // synchronous, as on a GPU
    REQUIRE(cudaStreamSynchronize(st) == cudaSuccess);
    REQUIRE(cudaFreeHost(pinned) == cudaSuccess);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaStreamDestroy(st);
}

// ---- cuBLAS ---------------------------------------------------------------------------------

TEST_CASE("emulator: cuBLAS GemmEx equals the plain loop for every transpose, odd sizes and leading dimensions", "[emu]") {
    Emu emu;
    cublasHandle_t h = nullptr;
    REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1, 1);
    const int m = 37, n = 5, k = 129;
    for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
        for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
            INFO("transa " << int(ta) << ", transb " << int(tb));
            const int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
            const int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
            const int lda = ar + 3, ldb = br + 1, ldc = m + 2;
            std::vector<float> A(size_t(lda) * ac), B(size_t(ldb) * bc), C(size_t(ldc) * n, 0.5f);
            for (auto& v : A) v = u(rng);
            for (auto& v : B) v = u(rng);
            Buf<float> dA(A.size()), dB(B.size()), dC(C.size());
            dA.put(A);
            dB.put(B);
            dC.put(C);
            const float alpha = 1.5f, beta = 0.25f;
            REQUIRE(cublasGemmEx(h, ta, tb, m, n, k, &alpha, dA.p, CUDA_R_32F, lda, dB.p, CUDA_R_32F, ldb, &beta, dC.p,
                                 CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
            const std::vector<float> got = dC.get();
            for (int j = 0; j < n; ++j)
                for (int i = 0; i < m; ++i) {
                    double s = 0;
                    for (int p = 0; p < k; ++p) {
                        const float a = ta == CUBLAS_OP_N ? A[size_t(p) * lda + i] : A[size_t(i) * lda + p];
                        const float b = tb == CUBLAS_OP_N ? B[size_t(j) * ldb + p] : B[size_t(p) * ldb + j];
                        s += double(a) * b;
                    }
                    REQUIRE(got[size_t(j) * ldc + i] == Approx(alpha * s + beta * 0.5).epsilon(1e-5).margin(1e-5));
                }
            // The rows between m and ldc are untouched.
            for (int j = 0; j < n; ++j) REQUIRE(got[size_t(j) * ldc + m + 1] == 0.5f);
        }
    // What cuBLAS refuses, the emulator refuses.
    Buf<float> d(4096);
    const float one = 1.0f, zero = 0.0f;
    REQUIRE(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 4, 16, &one, d.p, CUDA_R_32F, 7, d.p, CUDA_R_32F, 16, &zero, d.p,
                         CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE); // lda < m
    REQUIRE(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 8, 4, 16, &one, d.p, CUDA_R_32F, 8, d.p, CUDA_R_32F, 16, &zero, d.p,
                         CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE); // lda < k
    REQUIRE(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 4, 16, &one, d.p, CUDA_R_16BF, 8, d.p, CUDA_R_16F, 16, &zero, d.p,
                         CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED);
    REQUIRE(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 4, 16, &one, d.p, CUDA_R_16BF, 8, d.p, CUDA_R_16BF, 16, &zero, d.p,
                         CUDA_R_16F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED);
    // An operand past the end of its allocation is an illegal address.
    REQUIRE(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 65, 65, 65, &one, d.p, CUDA_R_32F, 65, d.p, CUDA_R_32F, 65, &zero, d.p,
                         CUDA_R_32F, 65, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_EXECUTION_FAILED);
    REQUIRE_THAT(cuda_emu::last_fault(), Catch::Contains("not inside one device allocation"));
    cuda_emu::clear_fault();
    REQUIRE(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
}

TEST_CASE("emulator: a cuBLAS handle and its first GEMM take device memory, as cuBLAS's do", "[emu]") {
    Emu emu;
    Buf<float> d(64 * 64);
    const uint64_t before = cuda_emu::device_used(0);
    cublasHandle_t h = nullptr;
    REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cuda_emu::device_used(0) > before);
    const uint64_t created = cuda_emu::device_used(0);
    const float one = 1.0f, zero = 0.0f;
    REQUIRE(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &one, d.p, CUDA_R_32F, 8, d.p, CUDA_R_32F, 8, &zero, d.p + 64,
                         CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const uint64_t after = cuda_emu::device_used(0);
    REQUIRE(after > created); // the default workspace (and the kernels, on a device's first GEMM)
    REQUIRE(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(after - cuda_emu::device_used(0) >= (2u << 20) + (4u << 20)); // the handle and its workspace go; the code stays
}
