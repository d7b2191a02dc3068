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
    uint64_t row_bytes() const { return dtype_row_bytes(dtype, cols); }
    const uint8_t* row(uint64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes(); }
};

// A linear layer's weight as a unit stores it: one matrix, or up to three row blocks stacked,
// each of its own dtype. The split stacks q, k and v (gate and up) into one matrix when they
// share a dtype; a GGUF whose q, k and v have different quant types (Q4_K_M's v is Q6_K in
// some layers) keeps them apart, since rabbit never requantizes. The product's output rows
// are part 0's, then part 1's, then part 2's, as if the parts were one matrix.
struct StackedMatrix {
    Matrix part[3];
    size_t parts = 1;

    uint64_t rows() const {
        uint64_t r = 0;
        for (size_t i = 0; i < parts; ++i) r += part[i].rows;
        return r;
    }
    uint64_t cols() const { return part[0].cols; }
};

} // namespace rabbit
