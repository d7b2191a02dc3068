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

} // namespace rabbit::test
