// SPDX-License-Identifier: Apache-2.0
#include "format/safetensors.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "common/json_read.h"
#include "common/json_writer.h"

#include <algorithm>

namespace rabbit {

uint64_t TensorEntry::numel() const { return shape_numel(shape); }

const TensorEntry* SafetensorsHeader::find(const std::string& name) const {
    for (const auto& t : tensors)
        if (t.name == name) return &t;
    return nullptr;
}

std::string shape_text(const std::vector<uint64_t>& shape) { return json_int_list(shape); }

namespace {

uint64_t read_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

TensorEntry parse_entry(const std::string& name, simdjson::dom::element value, const std::string& file) {
    const std::string what = "tensor '" + name + "'";
    auto obj = json_to_object(value, file, what);
    TensorEntry t;
    t.name = name;

    auto dtype_el = json_field(obj, "dtype");
    if (!dtype_el) throw bad_input(file, what + " has no dtype");
    std::string dtype = json_to_string(*dtype_el, file, what + " dtype");
    auto dt = dtype_from_safetensors(dtype);
    if (!dt) throw unsupported(file, what + " has dtype '" + dtype + "', which rabbit does not know");
    t.dtype = *dt;

    auto shape_el = json_field(obj, "shape");
    if (!shape_el) throw bad_input(file, what + " has no shape");
    for (auto d : json_to_array(*shape_el, file, what + " shape"))
        t.shape.push_back(json_to_uint(d, file, what + " shape entry"));

    auto off_el = json_field(obj, "data_offsets");
    if (!off_el) throw bad_input(file, what + " has no data_offsets");
    auto offs = json_to_array(*off_el, file, what + " data_offsets");
    if (offs.size() != 2) throw bad_input(file, what + " data_offsets must hold two numbers [begin, end]");
    t.begin = json_to_uint(offs.at(0).value(), file, what + " data_offsets");
    t.end = json_to_uint(offs.at(1).value(), file, what + " data_offsets");
    if (t.end < t.begin)
        throw bad_input(file, what + " data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                  "] end before they begin");

    // shape x element size must be exactly the byte range.
    const std::optional<uint64_t> bytes = shape_bytes(t.shape, t.dtype);
    if (bytes != t.nbytes())
        throw bad_input(file, what + ": shape " + shape_text(t.shape) + " of " + dtype + " needs " +
                                  (bytes ? std::to_string(*bytes) : std::string("more than 2^64")) +
                                  " bytes but data_offsets [" + std::to_string(t.begin) + ", " +
                                  std::to_string(t.end) + "] hold " + std::to_string(t.nbytes()));
    return t;
}

} // namespace

SafetensorsHeader parse_safetensors(const uint8_t* bytes, uint64_t available, uint64_t file_size,
                                    const std::string& file) {
    if (file_size < 8)
        throw bad_input(file, "truncated: " + std::to_string(file_size) +
                                  " bytes, but a safetensors file starts with an 8-byte header length");
    SafetensorsHeader h;
    h.header_size = read_le64(bytes);
    if (h.header_size > file_size - 8)
        throw bad_input(file, "header length " + std::to_string(h.header_size) + " runs past the end of the file (" +
                                  std::to_string(file_size) + " bytes): truncated or not a safetensors file");
    if (h.header_size > k_max_safetensors_header)
        throw bad_input(file, "header length " + std::to_string(h.header_size) + " is over the " +
                                  std::to_string(k_max_safetensors_header >> 20) + " MiB limit");
    if (h.header_size < 2) throw bad_input(file, "header length " + std::to_string(h.header_size) + " is too short for a JSON object");
    RABBIT_CHECK(available >= 8 + h.header_size, "caller passed fewer bytes than the header");
    h.data_start = 8 + h.header_size;
    h.data_size = file_size - h.data_start;

    std::string_view json(reinterpret_cast<const char*>(bytes + 8), size_t(h.header_size));
    if (json.front() != '{') throw bad_input(file, "header does not start with '{': not a safetensors file");
    JsonDocument doc(json, file + " (safetensors header)");
    auto root = json_to_object(doc.root(), file, "the safetensors header");

    for (auto field : root) { // JsonDocument refused repeated names
        std::string name(field.key);
        if (name == "__metadata__") {
            for (auto m : json_to_object(field.value, file, "__metadata__"))
                h.metadata[std::string(m.key)] =
                    json_to_string(m.value, file, "__metadata__ value '" + std::string(m.key) + "'");
            continue;
        }
        h.tensors.push_back(parse_entry(name, field.value, file));
    }

    std::sort(h.tensors.begin(), h.tensors.end(),
              [](const TensorEntry& a, const TensorEntry& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
    const TensorEntry* prev = nullptr;
    for (const auto& t : h.tensors) {
        if (t.end > h.data_size)
            throw bad_input(file, "tensor '" + t.name + "' data_offsets [" + std::to_string(t.begin) + ", " +
                                      std::to_string(t.end) + "] run past the end of the data section (" +
                                      std::to_string(h.data_size) + " bytes): the file is truncated or corrupt");
        if (t.nbytes() == 0) continue;
        if (prev && prev->end > t.begin)
            throw bad_input(file, "tensors '" + prev->name + "' and '" + t.name + "' overlap in the data section");
        prev = &t;
    }
    return h;
}

SafetensorsHeader read_safetensors_header(const InputFile& f) {
    uint8_t len_bytes[8] = {};
    if (f.size() < 8) return parse_safetensors(len_bytes, 0, f.size(), f.path()); // throws "truncated"
    f.read_at(len_bytes, 8, 0);
    uint64_t n = read_le64(len_bytes);
    if (n > f.size() - 8 || n > k_max_safetensors_header || n < 2)
        return parse_safetensors(len_bytes, 8, f.size(), f.path()); // throws with the reason
    std::string buf(size_t(8 + n), '\0');
    f.read_at(buf.data(), buf.size(), 0);
    SafetensorsHeader h = parse_safetensors(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(), f.size(), f.path());
    h.header_hash = hash_bytes(buf.data(), buf.size());
    return h;
}

} // namespace rabbit
