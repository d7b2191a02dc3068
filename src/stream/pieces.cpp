// SPDX-License-Identifier: Apache-2.0
#include "stream/pieces.h"

#include "common/error.h"
#include "common/units.h"

#include <algorithm>

namespace rabbit {

std::vector<const UnitTensor*> matrices_in_use_order(const ManifestUnit& unit) {
    // A stack kept apart (engine/weights.h) streams part by part.
    static const char* const layer[] = {"qkv", "q", "k", "v", "o", "gate_up", "gate", "up", "down"};
    static const char* const head[] = {"lm_head", "embed"};
    std::vector<const UnitTensor*> out;
    if (unit.kind == UnitKind::layer) {
        for (const char* name : layer)
            if (const UnitTensor* t = unit.layout.find(name)) out.push_back(t);
    } else {
        for (const char* name : head)
            if (const UnitTensor* t = unit.layout.find(name)) out.push_back(t);
    }
    return out;
}

std::vector<RingPiece> plan_pieces(const ManifestUnit& unit, size_t unit_index, uint64_t slot_bytes) {
    std::vector<RingPiece> pieces;
    const uint64_t data = unit.layout.data_size;
    if (data <= slot_bytes) {
        pieces.push_back({unit_index, 0, data, "", 0, 0, unit.layout.name});
        return pieces;
    }
    for (const UnitTensor* t : matrices_in_use_order(unit)) {
        const uint64_t rows = t->shape[0], row_bytes = t->nbytes / rows;
        if (row_bytes > slot_bytes)
            throw Error(ExitCode::resources, "a ring slot of " + format_bytes(slot_bytes) + " cannot hold one row (" +
                                                 format_bytes(row_bytes) + ") of " + unit.layout.name + "." + t->name +
                                                 "; raise --vram-budget");
        const uint64_t per_piece = slot_bytes / row_bytes;
        for (uint64_t r = 0; r < rows; r += per_piece) {
            const uint64_t n = std::min(per_piece, rows - r);
            pieces.push_back({unit_index, t->offset + r * row_bytes, n * row_bytes, t->name, r, n,
                              unit.layout.name + "." + t->name + " rows " + std::to_string(r) + "-" +
                                  std::to_string(r + n - 1)});
        }
    }
    return pieces;
}

} // namespace rabbit
