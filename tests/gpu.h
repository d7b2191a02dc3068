// SPDX-License-Identifier: Apache-2.0
// Whether the GPU tests can run here: a binary built with the CUDA backend and a device its
// kernels run on. GPU test cases are tagged [gpu] and begin `if (!gpu_available()) return;`.
#pragma once

namespace rabbit::test {

// True when the tests can use the first usable CUDA device (made current); otherwise emits a
// visible WARN("SKIPPED: <reason>") in the calling test case and returns false.
bool gpu_available();

} // namespace rabbit::test
