// SPDX-License-Identifier: Apache-2.0
// The safetensors container: an 8-byte little-endian header length N, N bytes of JSON naming
// each tensor's dtype, shape and byte range, then the data section. The reader trusts nothing:
// every field is checked against the file before any byte of data is used.
#pragma once

#include "common/dtype.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rabbit {

class InputFile;

struct TensorEntry {
    std::string name;
    DType dtype;
    std::vector<uint64_t> shape;
    uint64_t begin = 0; // byte range inside the data section
    uint64_t end = 0;

    uint64_t nbytes() const { return end - begin; }
    uint64_t numel() const;
};

struct SafetensorsHeader {
    uint64_t header_size = 0; // N, the JSON's length
    uint64_t data_start = 0;  // 8 + N: where the data section starts in the file
    uint64_t data_size = 0;   // file size - data_start
    uint64_t header_hash = 0; // XXH3-64 of the first data_start bytes (read_safetensors_header)
    std::vector<TensorEntry> tensors;         // sorted by begin
    std::map<std::string, std::string> metadata;

    const TensorEntry* find(const std::string& name) const;
};

// The largest header accepted, as in the reference implementation.
constexpr uint64_t k_max_safetensors_header = 100ull << 20;

// Validates a whole safetensors header. `bytes` holds at least the first min(file_size, 8 + N)
// bytes of the file; `file` names it in errors. Throws bad_input (unsupported for a dtype
// rabbit does not know).
SafetensorsHeader parse_safetensors(const uint8_t* bytes, uint64_t available, uint64_t file_size,
                                    const std::string& file);

// Reads and validates the header of an open file.
SafetensorsHeader read_safetensors_header(const InputFile& f);

// "[151936, 896]"
std::string shape_text(const std::vector<uint64_t>& shape);

} // namespace rabbit
