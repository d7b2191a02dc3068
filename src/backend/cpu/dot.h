// SPDX-License-Identifier: Apache-2.0
// The weight-row dot product that dot.cpp defines and matmul.cpp's row-by-row paths use
// (internal to src/backend/cpu/).
#pragma once

#include "model/matrix.h"

#include <cstddef>
#include <cstdint>

namespace rabbit::cpu {

// Row r of a weight matrix, in its stored dtype, dotted with an activation row.
//   x [w.cols] f32
float dot_row(const Matrix& w, uint64_t r, const float* x);

} // namespace rabbit::cpu
