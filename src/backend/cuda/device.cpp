// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/device.h"

#include "common/units.h"
#include "probe.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

namespace rabbit {

namespace {

std::string cuda_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Runs the probe kernel on the current device and reads its answer back.
bool probe_current_device(std::string* why) {
    int* d = nullptr;
    cudaError_t e = cudaMalloc(&d, sizeof(int));
    if (e != cudaSuccess) {
        *why = "cannot allocate on it: " + cuda_text(e);
        cudaGetLastError();
        return false;
    }
    int got = 0;
    e = launch_probe({d, 0x5ab17}, nullptr);
    if (e == cudaSuccess) e = cudaMemcpy(&got, d, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(d);
    cudaGetLastError();
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction) {
        *why = "this rabbit has no kernels for its architecture (rebuild with -DRABBIT_CUDA_ARCHS=<its sm number>)";
        return false;
    }
    if (e != cudaSuccess) {
        *why = "a test kernel failed: " + cuda_text(e);
        return false;
    }
    if (got != 0x5ab17) {
        *why = "a test kernel returned a wrong value";
        return false;
    }
    return true;
}

CudaDevice probe(int index) {
    CudaDevice d;
    d.index = index;
    std::string problem;
    const int n = cuda_device_count(&problem);
    if (index < 0 || index >= n) {
        d.problem = n == 0 ? problem
                           : "there are " + std::to_string(n) + " GPUs (cuda:0 .. cuda:" + std::to_string(n - 1) + ")";
        return d;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, index) != cudaSuccess || cudaSetDevice(index) != cudaSuccess) {
        cudaGetLastError();
        d.problem = "cannot select it";
        return d;
    }
    d.name = prop.name;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    // Before the context exists: host waits (stream and event synchronisation) sleep in the
    // driver instead of spinning a core that the loader's threads need. A context made
    // earlier by someone else keeps its flags.
    if (cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync) != cudaSuccess) cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        d.free_bytes = free_b;
        d.total_bytes = total_b;
    }
    cudaGetLastError();
    d.usable = probe_current_device(&d.problem);
    return d;
}

} // namespace

int cuda_device_count(std::string* problem) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        *problem = cuda_text(e);
        cudaGetLastError(); // clear the sticky error of a missing driver
        return 0;
    }
    if (n == 0) *problem = "no CUDA device";
    return n;
}

const CudaDevice& probe_cuda_device(int index) {
    static std::mutex mutex;
    static std::map<int, std::unique_ptr<CudaDevice>> probed; // never changes once written: references stay valid
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = probed[index];
    if (!slot) slot = std::make_unique<CudaDevice>(probe(index));
    return *slot;
}

std::optional<CudaDevice> first_usable_cuda_device(std::string* problem) {
    const int n = cuda_device_count(problem);
    std::string reasons;
    for (int i = 0; i < n; ++i) {
        const CudaDevice& d = probe_cuda_device(i);
        if (d.usable) return d;
        reasons += (reasons.empty() ? "" : "; ") + ("GPU " + std::to_string(i) + " (" + d.name + "): " + d.problem);
    }
    if (n > 0) *problem = reasons;
    return std::nullopt;
}

std::string cuda_versions() {
    auto text = [](int v) { return v > 0 ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : "none"; };
    int driver = 0, runtime = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) runtime = 0;
    cudaGetLastError();
    return "driver " + text(driver) + ", runtime " + text(runtime);
}

uint64_t cuda_budget_margin(uint64_t total) { return std::max<uint64_t>(512ull << 20, total / 20); }

std::optional<CudaBudget> default_cuda_budget(const CudaDevice& d) {
    if (!d.usable) return std::nullopt;
    const uint64_t margin = cuda_budget_margin(d.total_bytes);
    if (d.free_bytes <= margin) return std::nullopt;
    return CudaBudget{d.free_bytes - margin, "free memory of GPU " + std::to_string(d.index) + " (" + d.name + ") less a " +
                                                 format_bytes(margin) + " margin"};
}

} // namespace rabbit
