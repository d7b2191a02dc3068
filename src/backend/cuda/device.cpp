// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/device.h"

#include "common/units.h"
#include "probe.cuh"

#include <cuda_runtime.h>

#include <algorithm>

namespace rabbit {

namespace {

std::string cuda_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Runs the probe kernel on the current device and reads its answer back.
bool probe_current_device(std::string* why) {
    int* d = nullptr;
    cudaError_t e = cudaMalloc(&d, sizeof(int));
    if (e != cudaSuccess) {
        *why = "cannot allocate on it: " + cuda_text(e);
        return false;
    }
    int got = 0;
    e = launch_probe({d, 0x5ab17}, nullptr);
    if (e == cudaSuccess) e = cudaMemcpy(&got, d, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(d);
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

} // namespace

std::vector<CudaDevice> cuda_devices(std::string* problem) {
    std::vector<CudaDevice> out;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        *problem = cuda_text(e);
        cudaGetLastError(); // clear the sticky error of a missing driver
        return out;
    }
    for (int i = 0; i < n; ++i) {
        CudaDevice d;
        d.index = i;
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
        d.name = prop.name;
        d.cc_major = prop.major;
        d.cc_minor = prop.minor;
        if (cudaSetDevice(i) == cudaSuccess) {
            size_t free_b = 0, total_b = 0;
            if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
                d.free_bytes = free_b;
                d.total_bytes = total_b;
            }
            d.usable = probe_current_device(&d.problem);
        } else {
            d.problem = "cannot select it";
        }
        out.push_back(d);
    }
    if (out.empty()) *problem = "no CUDA device";
    return out;
}

std::string cuda_versions() {
    auto text = [](int v) { return v > 0 ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : "none"; };
    int driver = 0, runtime = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) runtime = 0;
    cudaGetLastError();
    return "driver " + text(driver) + ", runtime " + text(runtime);
}

std::optional<CudaBudget> default_cuda_budget() {
    std::string problem;
    for (const auto& d : cuda_devices(&problem)) {
        if (!d.usable) continue;
        const uint64_t margin = std::max<uint64_t>(512ull << 20, d.total_bytes / 20);
        if (d.free_bytes <= margin) continue;
        return CudaBudget{d.free_bytes - margin, "free memory of GPU " + std::to_string(d.index) + " (" + d.name +
                                                     ") less a " + format_bytes(margin) + " margin"};
    }
    return std::nullopt;
}

} // namespace rabbit
