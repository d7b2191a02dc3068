// SPDX-License-Identifier: Apache-2.0
// GGUF test helpers: a small writer: synthetic files of any metadata and tensors, and a
// Hugging Face model directory (safetensors, as rabbit-genmodel writes it) converted to a
// GGUF the way llama.cpp's convert_hf_to_gguf.py lays it out (names, metadata, llama's q/k
// row permutation), optionally as a split set. Written from the specification, for tests.
#pragma once

#include "common/dtype.h"
#include "format/gguf.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit::test {

struct GgufWriterTensor {
    std::string name;
    uint32_t ggml_type = 0;
    std::vector<uint64_t> ne; // ne[0] the row length
    std::string data;         // exactly the tensor's bytes
};

class GgufWriter {
public:
    uint32_t version = 3;
    uint64_t alignment = 32; // written as general.alignment when not 32

    // Scalars; the value's bits as GgufValue::bits holds them.
    GgufWriter& u32(const std::string& key, uint32_t v);
    GgufWriter& i32(const std::string& key, int32_t v);
    GgufWriter& u64(const std::string& key, uint64_t v);
    GgufWriter& f32(const std::string& key, float v);
    GgufWriter& boolean(const std::string& key, bool v);
    GgufWriter& str(const std::string& key, const std::string& v);
    GgufWriter& strings(const std::string& key, const std::vector<std::string>& v);
    GgufWriter& value(const std::string& key, const GgufValue& v); // any value, nested arrays too
    GgufWriter& tensor(const std::string& name, DType t, std::vector<uint64_t> ne, std::string data);

    std::vector<std::pair<std::string, GgufValue>> kv;
    std::vector<GgufWriterTensor> tensors;

    std::string bytes() const; // the whole file
    void write(const std::string& path) const;
};

GgufValue gguf_scalar(GgufType t, uint64_t bits);
GgufValue gguf_string(const std::string& s);
GgufValue gguf_array(GgufType elem, const std::vector<GgufValue>& items); // numbers packed into raw

struct GgufConversion {
    DType matrix_type = DType::f32; // f32 or f16 (converted from the source), or keep
    bool keep_types = false;        // write every tensor in its safetensors type
    uint32_t parts = 1;             // > 1: NAME-0000i-of-0000n.gguf, tensors spread in order
};

// Converts the Hugging Face directory `hf_dir` (config.json + model.safetensors) into
// out_path (a .gguf path; for a split set, the prefix "NAME" becomes NAME-00001-of-0000n.gguf).
// Returns the path of the first file.
std::string convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path, const GgufConversion& c = {});

// GGUF's rows of q/k for llama: GGUF row h*hd + 2i + s holds HF row h*hd + s*hd/2 + i.
uint64_t gguf_row_of_hf_row(uint64_t hf_row, uint64_t head_dim);

// REQUIREs that two splits hold the same config and units, byte for byte (by checksum).
// eos: whether the bos and stop tokens must agree too (llama.cpp's converter takes them from
// the tokenizer's files, which a random-weight model borrows from another, and a model
// converted without a tokenizer has none).
void require_same_units(const std::string& a, const std::string& b, bool eos = true);

} // namespace rabbit::test
