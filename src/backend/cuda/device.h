// SPDX-License-Identifier: Apache-2.0
// CUDA devices as rabbit sees them: present, usable by this binary, and how much memory they
// offer. Built only with the CUDA backend (RABBIT_HAVE_CUDA).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

struct CudaDevice {
    int index = 0;
    std::string name;
    int cc_major = 0, cc_minor = 0;
    uint64_t total_bytes = 0, free_bytes = 0;
    bool usable = false;  // this binary's kernels run on it
    std::string problem;  // why not, when !usable
};

// Every device the driver reports; empty (with *problem set) when there is no driver or GPU.
std::vector<CudaDevice> cuda_devices(std::string* problem);

// "driver 13.0, runtime 13.0": the CUDA driver's version and the runtime's this binary holds.
std::string cuda_versions();

struct CudaBudget {
    uint64_t budget;
    std::string description; // "free memory of GPU 0 (NVIDIA H100) less a 512 MiB margin"
};

// The default --vram-budget: the free memory of the first usable device less a margin
// (512 MiB or 5 % of the card, whichever is larger); nullopt without a usable device.
std::optional<CudaBudget> default_cuda_budget();

} // namespace rabbit
