// SPDX-License-Identifier: Apache-2.0
#include "gpu.h"

#include <catch2/catch.hpp>

#include <string>

#ifdef RABBIT_HAVE_CUDA
#include "attention.cuh"
#include "backend/cuda/device.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include <utility>
#endif

namespace rabbit::test {

namespace {

// Empty when a device is usable (and current), else why not. Asked once per process: probing
// every device costs a context creation.
const std::string& problem() {
    static const std::string why = [] {
#ifdef RABBIT_HAVE_CUDA
        std::string p;
        const auto d = first_usable_cuda_device(&p);
        if (!d) return "no usable CUDA device: " + p;
        if (cudaSetDevice(d->index) != cudaSuccess) return "cannot select GPU " + std::to_string(d->index);
        return std::string();
#else
        return std::string("built without the CUDA backend");
#endif
    }();
    return why;
}

} // namespace

bool gpu_available() {
    if (problem().empty()) return true;
    WARN("SKIPPED: " << problem());
    return false;
}

#ifdef RABBIT_HAVE_CUDA

// ---- device memory -------------------------------------------------------------------------

DevBuf::DevBuf(size_t bytes) : bytes_(bytes) { REQUIRE(cudaMalloc(&p_, bytes ? bytes : 1) == cudaSuccess); }

DevBuf::~DevBuf() {
    if (p_) cudaFree(p_);
}

void DevBuf::upload(const void* host, size_t bytes) {
    REQUIRE(bytes <= bytes_);
    REQUIRE(cudaMemcpy(p_, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
}

void DevBuf::download(void* host, size_t bytes) const {
    REQUIRE(bytes <= bytes_);
    REQUIRE(cudaMemcpy(host, p_, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
}

void DevBuf::fill(int byte) { REQUIRE(cudaMemset(p_, byte, bytes_) == cudaSuccess); }

MappedBuf::MappedBuf(size_t bytes) {
    REQUIRE(cudaHostAlloc(&host_, bytes, cudaHostAllocMapped) == cudaSuccess);
    REQUIRE(cudaHostGetDevicePointer(&dev_, host_, 0) == cudaSuccess);
}

MappedBuf::~MappedBuf() { cudaFreeHost(host_); }

// ---- element types -------------------------------------------------------------------------

DType dtype_of(Elem e) { return e == Elem::f32 ? DType::f32 : e == Elem::f16 ? DType::f16 : DType::bf16; }
Elem elem_of(DType t) { return t == DType::f32 ? Elem::f32 : t == DType::f16 ? Elem::f16 : Elem::bf16; }

std::vector<uint8_t> encode(const std::vector<float>& v, Elem e) {
    std::vector<uint8_t> b(v.size() * elem_size(e));
    convert_elements(v.data(), DType::f32, b.data(), dtype_of(e), v.size());
    return b;
}

std::vector<float> decode(const std::vector<uint8_t>& b, Elem e) {
    std::vector<float> v(b.size() / elem_size(e));
    convert_elements(b.data(), dtype_of(e), v.data(), DType::f32, v.size());
    return v;
}

std::vector<float> download_as_f32(const DevBuf& b, size_t n, Elem e) {
    return decode(to_host<uint8_t>(b, n * elem_size(e)), e);
}

// ---- launches ------------------------------------------------------------------------------

namespace {

struct Timing {
    std::vector<std::pair<std::string, double>> cases; // label, microseconds (summed over its launches)
};

Timing& timing() {
    static Timing t;
    return t;
}

constexpr int k_timed_runs = 5;

// The median of k_timed_runs launches, in microseconds (the checked launch before warmed it up).
double time_launch(const std::function<cudaError_t()>& launch) {
    cudaEvent_t start = nullptr, stop = nullptr;
    REQUIRE(cudaEventCreate(&start) == cudaSuccess);
    REQUIRE(cudaEventCreate(&stop) == cudaSuccess);
    std::vector<double> us;
    for (int i = 0; i < k_timed_runs; ++i) {
        REQUIRE(cudaEventRecord(start, nullptr) == cudaSuccess);
        REQUIRE(launch() == cudaSuccess);
        REQUIRE(cudaEventRecord(stop, nullptr) == cudaSuccess);
        REQUIRE(cudaEventSynchronize(stop) == cudaSuccess);
        float ms = 0;
        REQUIRE(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess);
        us.push_back(double(ms) * 1000.0);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
}

} // namespace

void sync() {
    const cudaError_t e = cudaDeviceSynchronize();
    INFO(cudaGetErrorString(e));
    REQUIRE(e == cudaSuccess);
}

void launch_checked(const std::function<cudaError_t()>& launch) {
    const cudaError_t e = launch();
    INFO(cudaGetErrorName(e) << ": " << cudaGetErrorString(e));
    REQUIRE(e == cudaSuccess);
    sync();
}

void time_kernel(const std::function<cudaError_t()>& launch) {
    if (ops_timing() && !timing().cases.empty()) timing().cases.back().second += time_launch(launch);
}

size_t attention_ready() {
    static const size_t optin = [] {
        int dev = 0, bytes = 0;
        REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
        REQUIRE(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess);
        REQUIRE(attention_setup(size_t(bytes)) == cudaSuccess);
        return size_t(bytes);
    }();
    return optin;
}

int sm_count() {
    int dev = 0, n = 0;
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess);
    return n;
}

// ---- timing mode ---------------------------------------------------------------------------

bool ops_timing() {
    static const bool on = [] {
        const char* v = std::getenv("RABBIT_OPS_TIMING");
        if (!v || std::string(v) != "1") return false;
#ifdef RABBIT_CUDA_EMULATOR
        std::fprintf(stderr, "RABBIT_OPS_TIMING: ignored on the emulated device, whose times mean nothing\n");
        return false;
#else
        return true;
#endif
    }();
    return on;
}

void timing_start_case(const std::string& label) {
    if (ops_timing()) timing().cases.emplace_back(label, 0.0);
}

void timing_print(const std::string& title) {
    if (!ops_timing()) return;
    std::printf("\n%s: kernel time per case (CUDA events, median of %d)\n%12s  %s\n", title.c_str(), k_timed_runs,
                "us", "case");
    for (const auto& [label, us] : timing().cases) std::printf("%12.1f  %s\n", us, label.c_str());
    std::fflush(stdout);
    timing().cases.clear();
}

#endif // RABBIT_HAVE_CUDA

} // namespace rabbit::test
