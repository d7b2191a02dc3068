// SPDX-License-Identifier: Apache-2.0
#include "gpu.h"

#include <catch2/catch.hpp>

#include <string>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/device.h"

#include <cuda_runtime.h>
#endif

namespace rabbit::test {

namespace {

// Empty when a device is usable (and current), else why not. Asked once per process: probing
// every device costs a context creation.
const std::string& problem() {
    static const std::string why = [] {
#ifdef RABBIT_HAVE_CUDA
        std::string p;
        const auto devices = cuda_devices(&p);
        if (devices.empty()) return "no CUDA device: " + p;
        std::string reasons;
        for (const auto& d : devices) {
            if (d.usable) {
                if (cudaSetDevice(d.index) != cudaSuccess) return "cannot select GPU " + std::to_string(d.index);
                return std::string();
            }
            reasons += (reasons.empty() ? "" : "; ") + ("GPU " + std::to_string(d.index) + " (" + d.name + "): " + d.problem);
        }
        return "no usable CUDA device: " + reasons;
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

} // namespace rabbit::test
