// SPDX-License-Identifier: Apache-2.0
// How streamed units cross to the GPU: cut into pieces no larger than a ring slot. A unit
// that fits a slot goes whole, in one copy. A larger one (a 72B model's layer or lm_head on a
// small GPU) goes matrix by matrix in row blocks, each block a contiguous byte range of the
// unit file, used by the matrix product of those rows and then released. The f32 vectors of
// a unit (norms, biases) are not in its pieces: they stay on the GPU from load on.
#pragma once

#include "format/manifest.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

struct RingPiece {
    size_t unit = 0;       // index in the manifest
    uint64_t offset = 0;   // bytes into the unit's data section
    uint64_t bytes = 0;
    std::string tensor;    // the matrix whose rows these are; empty: the whole data section
    uint64_t row0 = 0, rows = 0;
    std::string label;     // for the trace: "layer.3", "lm_head output.weight rows 0-4095"
    // A place, not a piece: the experts a MoE layer's tokens route to, known only once its
    // router has run; the consumer names them then (Ring::route) and they stream here.
    bool routed = false;
};

// The matrices of a unit in the order the forward pass uses them: qkv, o, gate_up, down for a
// layer; the one matrix of an lm_head (or of a tied embedding, the output projection).
std::vector<const UnitTensor*> matrices_in_use_order(const ManifestUnit& unit);

// The pieces of one unit for slots of slot_bytes. Throws Error(resources) when a single row
// of some matrix is larger than a slot.
std::vector<RingPiece> plan_pieces(const ManifestUnit& unit, size_t unit_index, uint64_t slot_bytes);

} // namespace rabbit
