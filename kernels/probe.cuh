// SPDX-License-Identifier: Apache-2.0
// The probe kernel: one thread writes a value. Launching it tells, before any real work,
// whether this binary carries code the GPU can run (SASS for its architecture, or PTX the
// driver can compile) — otherwise every later launch fails with "no kernel image".
#pragma once

#include <cuda_runtime.h>

namespace rabbit {

struct ProbeParams {
    int* out; // [1] int, device memory
    int value;
};

// Enqueues the probe on `stream`; returns the launch error (cudaSuccess when it launched).
cudaError_t launch_probe(const ProbeParams& p, cudaStream_t stream);

} // namespace rabbit
