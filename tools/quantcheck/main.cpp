// SPDX-License-Identifier: Apache-2.0
// rabbit-quantcheck: rabbit's block (de)quantization on a pipe, for scripts/quant_reference.py
// to compare against gguf-py.
//   rabbit-quantcheck dequantize TYPE   blocks of TYPE on stdin -> f32 little-endian on stdout
//   rabbit-quantcheck quantize TYPE     f32 little-endian on stdin -> blocks of TYPE on stdout
// TYPE is a rabbit dtype name (q8_0, q4_k, f16, ...). Any error is one line on stderr, exit 2.
#include "common/dtype.h"
#include "common/quant.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

using namespace rabbit;

namespace {

int usage_error(const std::string& what) {
    std::fprintf(stderr, "rabbit-quantcheck: %s\n", what.c_str());
    return 2;
}

std::vector<unsigned char> read_stdin() {
    std::vector<unsigned char> data;
    unsigned char buf[1 << 16];
    size_t got = 0;
    while ((got = std::fread(buf, 1, sizeof buf, stdin)) > 0) data.insert(data.end(), buf, buf + got);
    return data;
}

bool write_stdout(const void* p, size_t bytes) { return std::fwrite(p, 1, bytes, stdout) == bytes && std::fflush(stdout) == 0; }

// Bytes per block and elements per block of a weight type (a float type: one element).
void block_shape(DType t, size_t* bytes, size_t* elems) {
    *elems = is_quant_dtype(t) ? dtype_block(t) : 1;
    *bytes = is_quant_dtype(t) ? dtype_block_bytes(t) : size_t(dtype_row_bytes(t, 1));
}

int run(const std::string& mode, DType t) {
    size_t block_bytes = 0, block_elems = 0;
    block_shape(t, &block_bytes, &block_elems);
    const std::vector<unsigned char> in = read_stdin();
    if (mode == "dequantize") {
        if (in.size() % block_bytes != 0)
            return usage_error("stdin: " + std::to_string(in.size()) + " bytes are not whole " + dtype_name(t) +
                               " blocks of " + std::to_string(block_bytes) + " bytes");
        std::vector<float> out(in.size() / block_bytes * block_elems);
        dequantize(t, in.data(), out.data(), out.size());
        return write_stdout(out.data(), out.size() * 4) ? 0 : usage_error("stdout: write failed");
    }
    if (!can_quantize(t)) return usage_error(std::string("quantize: rabbit does not write ") + dtype_name(t));
    const size_t group = block_elems * 4;
    if (in.size() % group != 0)
        return usage_error("stdin: " + std::to_string(in.size()) + " bytes are not whole blocks of " +
                           std::to_string(block_elems) + " f32 values");
    const size_t n = in.size() / 4;
    std::vector<float> x(n);
    std::memcpy(x.data(), in.data(), in.size());
    std::vector<unsigned char> out(n / block_elems * block_bytes);
    quantize(t, x.data(), out.data(), n);
    return write_stdout(out.data(), out.size()) ? 0 : usage_error("stdout: write failed");
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) return usage_error("usage: rabbit-quantcheck dequantize|quantize TYPE");
    const std::string mode = argv[1];
    if (mode != "dequantize" && mode != "quantize")
        return usage_error("unknown mode '" + mode + "' (expected dequantize or quantize)");
    const auto t = dtype_from_name(argv[2]);
    if (!t || !is_weight_dtype(*t)) return usage_error(std::string("unknown weight type '") + argv[2] + "'");
    try {
        return run(mode, *t);
    } catch (const std::exception& e) {
        return usage_error(e.what());
    }
}
