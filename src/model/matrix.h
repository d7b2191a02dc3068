// SPDX-License-Identifier: Apache-2.0
// A view of a weight matrix where it lies (a mapping, a ring slot, a resident buffer): what the
// kernels of both engines take.
#pragma once

#include "common/dtype.h"

#include <cstdint>

namespace rabbit {

// A linear layer's weight, row-major [rows, cols]: y = x W^T.
struct Matrix {
    const void* data = nullptr;
    DType dtype = DType::f32;
    uint64_t rows = 0, cols = 0;

    // Row r: [cols] in dtype.
    const uint8_t* row(uint64_t r) const { return static_cast<const uint8_t*>(data) + r * cols * dtype_size(dtype); }
};

} // namespace rabbit
