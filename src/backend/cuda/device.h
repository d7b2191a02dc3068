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
    uint64_t total_bytes = 0, free_bytes = 0; // free: when it was probed
    bool usable = false;  // this binary's kernels run on it
    std::string problem;  // why not, when !usable
};

// How many devices the driver reports; 0 (with *problem set) when there is no driver or GPU.
// Makes no context.
int cuda_device_count(std::string* problem);

// Device `index`, probed: its context is made (host waits on it block rather than spin), a
// buffer allocated and the probe kernel run, which tells whether this binary has code for it.
// Once per device and process; later calls return the first answer. An index the driver
// does not have is a device with a problem.
const CudaDevice& probe_cuda_device(int index);

// The first device the probe finds usable, probing in order only until one is; nullopt (with
// *problem saying why) when none is.
std::optional<CudaDevice> first_usable_cuda_device(std::string* problem);

// "driver 13.0, runtime 13.0": the CUDA driver's version and the runtime's this binary holds.
std::string cuda_versions();

struct CudaBudget {
    uint64_t budget;
    std::string description; // "free memory of GPU 0 (NVIDIA H100) less a 512 MiB margin"
};

// The memory the default --vram-budget leaves free on a card of `total` bytes: 512 MiB or 5 %
// of it, whichever is larger.
uint64_t cuda_budget_margin(uint64_t total);
// The default --vram-budget of a probed, usable device: its free memory less that margin;
// nullopt when nothing is left.
std::optional<CudaBudget> default_cuda_budget(const CudaDevice& d);

} // namespace rabbit
