// SPDX-License-Identifier: Apache-2.0
// GGUF files (llama.cpp's format, versions 2 and 3): the header, the metadata key-value pairs
// of all 13 value types, and the tensor table, validated against the file's size before any
// of it is trusted. Tensor data is not read here: each tensor's absolute byte range is.
// Layout in docs/FORMAT.md ("From GGUF"); the specification is ggml's docs/gguf.md.
#pragma once

#include "common/dtype.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

// The value types of GGUF metadata, numbered as in the file.
enum class GgufType : uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12,
};

const char* gguf_type_name(GgufType t); // "u32", "string", "array", ...

struct GgufValue {
    GgufType type = GgufType::u8;
    uint64_t bits = 0;   // a number or bool: its little-endian bytes, zero-extended
    std::string str;     // a string
    // An array: elements of type `elem`. Numbers and bools packed in `raw` as in the file,
    // strings and nested arrays in `items`.
    GgufType elem = GgufType::u8;
    uint64_t count = 0;
    std::string raw;
    std::vector<GgufValue> items;

    // A number of any integer type (or bool) that fits; nullopt otherwise.
    std::optional<int64_t> as_int() const;
    // Any number (integer or float).
    std::optional<double> as_number() const;
    std::optional<bool> as_bool() const;
    const std::string* as_string() const;
    // Element i of a numeric array, as as_int / as_number would give it.
    std::optional<int64_t> int_at(uint64_t i) const;
    std::optional<double> number_at(uint64_t i) const;
};

struct GgufTensorInfo {
    std::string name;
    uint32_t ggml_type = 0;
    DType dtype = DType::f32;
    std::vector<uint64_t> ne;    // as stored: ne[0] is the row length (fastest)
    std::vector<uint64_t> shape; // rabbit's row-major order: reversed ne, [rows, cols]
    uint64_t offset = 0;         // absolute byte offset in the file
    uint64_t nbytes = 0;
};

class GgufFile {
public:
    // Opens and validates a file. Throws bad_input(path, ...) for anything malformed or
    // truncated and unsupported(path, ...) for a tensor type rabbit does not keep.
    static GgufFile open(const std::string& path);
    // The same over `size` bytes in memory, the whole file (the fuzzer; tests).
    static GgufFile parse(const uint8_t* data, uint64_t size, const std::string& path);

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return file_size_; }
    uint64_t data_start() const { return data_start_; } // absolute offset of the data section
    uint64_t alignment() const { return alignment_; }
    uint64_t header_hash() const { return header_hash_; } // XXH3-64 of bytes [0, data_start)

    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(const std::string& key) const;
    // Typed getters: nullopt when the key is absent; bad_input when it has another type.
    std::optional<std::string> get_string(const std::string& key) const;
    std::optional<int64_t> get_int(const std::string& key) const;
    std::optional<double> get_float(const std::string& key) const;
    std::optional<bool> get_bool(const std::string& key) const;
    std::optional<std::vector<std::string>> get_strings(const std::string& key) const;
    std::optional<std::vector<double>> get_floats(const std::string& key) const;
    std::optional<std::vector<int64_t>> get_ints(const std::string& key) const;
    // The same, where absence is an error too ("has no key 'llama.block_count'").
    std::string need_string(const std::string& key) const;
    int64_t need_int(const std::string& key) const;

    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(const std::string& name) const;

private:
    std::string path_;
    uint32_t version_ = 0;
    uint64_t file_size_ = 0;
    uint64_t data_start_ = 0;
    uint64_t alignment_ = 32;
    uint64_t header_hash_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::map<std::string, size_t> kv_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;

    friend class GgufParser;
};

// A model in one GGUF or in a split set NAME-00001-of-0000N.gguf (llama.cpp's gguf-split:
// split.no, split.count, split.tensors.count): every part, in order.
struct GgufSet {
    std::vector<GgufFile> parts; // parts[0] holds the model's metadata
    const GgufFile& first() const { return parts.front(); }
    // The part holding tensor `name` and its info, or {nullptr, nullptr}.
    std::pair<const GgufFile*, const GgufTensorInfo*> find_tensor(const std::string& name) const;
};

// Opens `path` (a single file, or any part of a split set: every part is opened) and checks
// that the parts agree and hold every tensor once.
GgufSet open_gguf_set(const std::string& path);

// Whether `path` names a GGUF file: a regular file ending in ".gguf", or one starting "GGUF".
bool looks_like_gguf(const std::string& path);

} // namespace rabbit
