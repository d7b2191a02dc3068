// SPDX-License-Identifier: Apache-2.0
// The splitter's quantizing path: a source tensor read a chunk of whole rows at a time,
// widened to f32 and quantized row by row on a thread pool (the k-quants' scale search is
// the CPU-heavy part of a split). Memory stays bounded by the chunk size (or one row, when a
// row is larger), and the output does not depend on it: every row is quantized on its own.
#pragma once

#include "common/file_io.h"
#include "common/thread_pool.h"
#include "split/plan.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace rabbit {

class RowQuantizer {
public:
    using Emit = std::function<void(const void*, size_t)>;
    RowQuantizer(size_t chunk_bytes, ThreadPool* pool) : chunk_(chunk_bytes), pool_(pool) {}

    // Reads piece (rows of `cols` elements of piece.dtype, an unquantized type) from `in`,
    // passes it to emit as rows of type `to` and returns the bytes emitted. A NaN or infinity
    // in the source is refused (bad_input naming the file and tensor): no block can hold it.
    uint64_t write_piece(const InputFile& in, const SourcePiece& piece, DType to, uint64_t cols, const Emit& emit);

private:
    size_t chunk_;
    ThreadPool* pool_;
    std::vector<uint8_t> in_, out_;
    std::vector<float> wide_;
};

} // namespace rabbit
