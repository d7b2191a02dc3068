// SPDX-License-Identifier: Apache-2.0
#include "format/safetensors_writer.h"

#include "common/error.h"
#include "common/json_writer.h"

namespace rabbit {

uint64_t SafetensorsSpec::nbytes() const {
    uint64_t n = dtype_size(dtype);
    for (uint64_t d : shape) n *= d;
    return n;
}

std::string safetensors_header_bytes(const std::vector<SafetensorsSpec>& tensors,
                                     const std::map<std::string, std::string>& metadata) {
    JsonWriter w(false);
    w.begin_object();
    if (!metadata.empty()) {
        w.key("__metadata__").begin_object();
        for (const auto& [k, v] : metadata) w.member(k, v);
        w.end_object();
    }
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        w.key(t.name).begin_object();
        w.member("dtype", dtype_safetensors_name(t.dtype));
        w.key("shape").begin_array(true);
        for (uint64_t d : t.shape) w.value(d);
        w.end_array();
        w.key("data_offsets").begin_array(true).value(offset).value(offset + t.nbytes()).end_array();
        w.end_object();
        offset += t.nbytes();
    }
    w.end_object();
    std::string json = w.str();
    json.append((8 - json.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    uint64_t n = json.size();
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
    return out + json;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<SafetensorsSpec> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : out_(path) {
    std::string header = safetensors_header_bytes(tensors, metadata);
    for (const auto& t : tensors) expected_ += t.nbytes();
    expected_ += header.size();
    out_.preallocate(expected_);
    out_.write(header.data(), header.size());
}

void SafetensorsWriter::append(const void* data, size_t n) {
    RABBIT_CHECK(out_.written() + n <= expected_, "more tensor bytes than the header announced: " + out_.final_path());
    out_.write(data, n);
}

void SafetensorsWriter::fill_with_holes() { out_.extend_to(expected_); }

void SafetensorsWriter::commit() {
    RABBIT_CHECK(out_.written() == expected_, "fewer tensor bytes than the header announced: " + out_.final_path());
    out_.commit();
}

} // namespace rabbit
