// SPDX-License-Identifier: Apache-2.0
// A unit file: a 4 KiB-aligned header that describes it, then one contiguous data section
// whose tensors start 256-byte aligned, so the whole section goes to the GPU in one copy and
// each tensor is used in place. Byte layout in docs/FORMAT.md.
#pragma once

#include "common/dtype.h"

#include <cstdint>
#include <string>
#include <vector>

namespace simdjson::dom {
class array;
}

namespace rabbit {

class InputFile;
class JsonWriter;

constexpr uint64_t k_unit_align = 4096;   // data section start and size
constexpr uint64_t k_tensor_align = 256;  // each tensor's offset inside the data section
constexpr uint32_t k_split_format_version = 1;
constexpr uint64_t k_unit_fixed_header = 32; // magic, version, JSON length, data offset, data size
constexpr uint64_t k_max_unit_header = 16ull << 20; // the JSON tensor table of one unit

struct UnitTensor {
    std::string name;
    DType dtype = DType::f32;
    std::vector<uint64_t> shape;
    uint64_t offset = 0; // from the start of the data section
    uint64_t nbytes = 0;

    uint64_t numel() const;
    bool operator==(const UnitTensor& o) const;
};

struct UnitLayout {
    std::string name;
    std::vector<UnitTensor> tensors;
    uint64_t data_offset = 0; // file offset of the data section
    uint64_t data_size = 0;   // bytes, padded to k_unit_align

    uint64_t file_size() const { return data_offset + data_size; }
    const UnitTensor* find(const std::string& tensor) const;
    bool operator==(const UnitLayout& o) const;
};

// Places the tensors (name, dtype, shape given; offsets and sizes computed) in order at
// aligned offsets and sizes the header to fit.
UnitLayout layout_unit(const std::string& name, std::vector<UnitTensor> tensors);

// The header, padding included: exactly layout.data_offset bytes.
std::string encode_unit_header(const UnitLayout& layout);

// Validates a header read from `file` (file_size bytes long); `bytes` holds at least its
// first min(file_size, 4096) bytes, or the whole header when it is longer.
UnitLayout decode_unit_header(const uint8_t* bytes, uint64_t available, uint64_t file_size, const std::string& file);
UnitLayout read_unit_header(const InputFile& f);

// The tensor table as JSON, shared by unit headers and the manifest.
void write_tensor_table(JsonWriter& w, const std::vector<UnitTensor>& tensors);
std::vector<UnitTensor> parse_tensor_table(simdjson::dom::array a, const std::string& file, const std::string& where);
// Checks alignment, sizes, bounds and overlaps of a tensor table inside data_size bytes.
void validate_tensor_table(const std::vector<UnitTensor>& tensors, uint64_t data_size, const std::string& file,
                           const std::string& where);

} // namespace rabbit
