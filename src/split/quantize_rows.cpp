// SPDX-License-Identifier: Apache-2.0
#include "split/quantize_rows.h"

#include "common/error.h"
#include "common/interrupt.h"
#include "common/quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>

namespace rabbit {

uint64_t RowQuantizer::write_piece(const InputFile& in, const SourcePiece& piece, DType to, uint64_t cols, const Emit& emit) {
    RABBIT_CHECK(is_quant_dtype(to) && is_float_weight_dtype(piece.dtype) && cols % dtype_block(to) == 0,
                 "quantizing " + piece.name + " to " + dtype_name(to) + ": not a planned conversion");
    const size_t in_el = dtype_size(piece.dtype);
    const uint64_t in_row = cols * in_el, out_row = dtype_row_bytes(to, cols);
    const uint64_t rows = piece.nbytes / in_row;
    RABBIT_CHECK(rows * in_row == piece.nbytes, "source tensor " + piece.name + " is not whole rows");
    // The widest of a row's three forms (source, f32, quantized) sets how many fit in a chunk.
    const uint64_t widest = std::max<uint64_t>({in_row, cols * sizeof(float), out_row});
    const uint64_t chunk_rows = std::max<uint64_t>(1, chunk_ / widest);
    const size_t n_rows = size_t(std::min(chunk_rows, rows));
    in_.resize(n_rows * in_row);
    wide_.resize(n_rows * cols);
    out_.resize(n_rows * out_row);
    // Rows per thread block: enough work to be worth handing out.
    const size_t grain = size_t(std::max<uint64_t>(1, 65536 / cols));
    for (uint64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
        throw_if_interrupted();
        const size_t m = size_t(std::min(chunk_rows, rows - r0));
        in.read_at(in_.data(), m * in_row, piece.offset + r0 * in_row);
        std::atomic<uint64_t> bad{UINT64_MAX}; // the first row (of this chunk) holding a NaN or infinity
        auto quantize_rows = [&](size_t b, size_t e) {
            for (size_t r = b; r < e; ++r) {
                float* w = wide_.data() + r * cols;
                convert_elements(in_.data() + r * in_row, piece.dtype, w, DType::f32, cols);
                bool finite = true;
                for (uint64_t j = 0; j < cols; ++j) finite = finite && std::isfinite(w[j]);
                if (!finite) {
                    uint64_t prev = bad.load();
                    while (r < prev && !bad.compare_exchange_weak(prev, r)) {}
                    continue;
                }
                quantize(to, w, out_.data() + r * out_row, cols);
            }
        };
        if (pool_ && m > grain) pool_->parallel_for(m, quantize_rows, grain);
        else quantize_rows(0, m);
        if (bad.load() != UINT64_MAX)
            throw bad_input(in.path(), "tensor '" + piece.name + "' holds a NaN or infinity in row " +
                                           std::to_string(r0 + bad.load()) + "; it cannot be quantized to " + dtype_name(to));
        emit(out_.data(), m * out_row);
    }
    return rows * out_row;
}

} // namespace rabbit
