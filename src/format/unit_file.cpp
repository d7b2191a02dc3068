// SPDX-License-Identifier: Apache-2.0
#include "format/unit_file.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace rabbit {

namespace {

constexpr char k_magic[8] = {'R', 'A', 'B', 'B', 'I', 'T', 'U', '\0'};

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void put_le(std::string& s, size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s[at + size_t(i)] = char((v >> (8 * i)) & 0xff);
}

uint64_t get_le(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

std::string header_json(const UnitLayout& l) {
    JsonWriter w(false);
    w.begin_object().member("unit", l.name);
    w.key("tensors");
    write_tensor_table(w, l.tensors);
    w.end_object();
    return w.str();
}

} // namespace

uint64_t UnitTensor::numel() const { return shape_numel(shape); }

bool UnitTensor::operator==(const UnitTensor& o) const {
    return name == o.name && dtype == o.dtype && shape == o.shape && offset == o.offset && nbytes == o.nbytes;
}

const UnitTensor* UnitLayout::find(const std::string& tensor) const {
    for (const auto& t : tensors)
        if (t.name == tensor) return &t;
    return nullptr;
}

bool UnitLayout::operator==(const UnitLayout& o) const {
    return name == o.name && tensors == o.tensors && data_offset == o.data_offset && data_size == o.data_size;
}

UnitLayout layout_unit(const std::string& name, std::vector<UnitTensor> tensors) {
    UnitLayout l;
    l.name = name;
    uint64_t offset = 0;
    for (auto& t : tensors) {
        offset = align_up(offset, k_tensor_align);
        t.offset = offset;
        const auto bytes = shape_bytes(t.shape, t.dtype);
        RABBIT_CHECK(bytes, "tensor " + t.name + " of " + name + ": its shape is not whole " + dtype_name(t.dtype) + " blocks");
        t.nbytes = *bytes;
        offset += t.nbytes;
    }
    l.tensors = std::move(tensors);
    l.data_size = align_up(std::max<uint64_t>(offset, 1), k_unit_align);
    l.data_offset = align_up(k_unit_fixed_header + header_json(l).size(), k_unit_align);
    return l;
}

std::string encode_unit_header(const UnitLayout& l) {
    std::string json = header_json(l);
    RABBIT_CHECK(k_unit_fixed_header + json.size() <= l.data_offset, "unit header larger than its layout: " + l.name);
    std::string h(size_t(l.data_offset), '\0');
    std::memcpy(&h[0], k_magic, 8);
    put_le(h, 8, k_split_format_version, 4);
    put_le(h, 12, json.size(), 4);
    put_le(h, 16, l.data_offset, 8);
    put_le(h, 24, l.data_size, 8);
    std::memcpy(&h[k_unit_fixed_header], json.data(), json.size());
    return h;
}

namespace {

// Checks the fixed 32 bytes against the file size; returns the JSON's length.
uint64_t check_fixed_header(const uint8_t* bytes, uint64_t available, uint64_t file_size, const std::string& file,
                            UnitLayout* l) {
    if (file_size < k_unit_fixed_header || available < k_unit_fixed_header)
        throw bad_input(file, "truncated: " + std::to_string(file_size) + " bytes, shorter than a unit header");
    if (std::memcmp(bytes, k_magic, 8) != 0) throw bad_input(file, "is not a rabbit unit file (bad magic)");
    uint32_t version = uint32_t(get_le(bytes + 8, 4));
    if (version != k_split_format_version)
        throw unsupported(file, "unit format version " + std::to_string(version) + "; this rabbit reads version " +
                                    std::to_string(k_split_format_version) + " (split the model again)");
    const uint64_t json_len = get_le(bytes + 12, 4);
    l->data_offset = get_le(bytes + 16, 8);
    l->data_size = get_le(bytes + 24, 8);
    if (l->data_offset % k_unit_align != 0 || l->data_size % k_unit_align != 0)
        throw bad_input(file, "data section is not 4096-byte aligned");
    if (k_unit_fixed_header + json_len > l->data_offset || json_len > k_max_unit_header)
        throw bad_input(file, "header length " + std::to_string(json_len) + " runs into the data section or past the limit");
    if (l->data_offset > file_size || l->data_size != file_size - l->data_offset)
        throw bad_input(file, "is " + std::to_string(file_size) + " bytes, but its header describes " +
                                  std::to_string(l->data_offset) + " + " + std::to_string(l->data_size) +
                                  " bytes: truncated or corrupt");
    return json_len;
}

} // namespace

UnitLayout decode_unit_header(const uint8_t* bytes, uint64_t available, uint64_t file_size, const std::string& file) {
    UnitLayout l;
    const uint64_t json_len = check_fixed_header(bytes, available, file_size, file, &l);
    RABBIT_CHECK(available >= k_unit_fixed_header + json_len, "caller passed fewer bytes than the unit header");
    std::string_view json(reinterpret_cast<const char*>(bytes + k_unit_fixed_header), size_t(json_len));
    JsonDocument doc(json, file + " (unit header)");
    auto root = doc.root_object();
    auto unit = json_field(root, "unit");
    auto tensors = json_field(root, "tensors");
    if (!unit || !tensors) throw bad_input(file, "unit header lacks 'unit' or 'tensors'");
    l.name = json_to_string(*unit, file, "unit");
    l.tensors = parse_tensor_table(json_to_array(*tensors, file, "tensors"), file, "unit header");
    validate_tensor_table(l.tensors, l.data_size, file, "unit header");
    return l;
}

UnitLayout read_unit_header(const InputFile& f) {
    uint8_t fixed[k_unit_fixed_header] = {};
    const uint64_t avail = std::min<uint64_t>(f.size(), k_unit_fixed_header);
    f.read_at(fixed, size_t(avail), 0);
    UnitLayout checked;
    // Validated before anything is allocated from it.
    const uint64_t json_len = check_fixed_header(fixed, avail, f.size(), f.path(), &checked);
    std::string buf(size_t(k_unit_fixed_header + json_len), '\0');
    f.read_at(buf.data(), buf.size(), 0);
    return decode_unit_header(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(), f.size(), f.path());
}

void write_tensor_table(JsonWriter& w, const std::vector<UnitTensor>& tensors) {
    w.begin_array();
    for (const auto& t : tensors) {
        w.begin_object();
        w.member("name", t.name);
        w.member("dtype", dtype_name(t.dtype));
        w.key("shape").begin_array(true);
        for (uint64_t d : t.shape) w.value(d);
        w.end_array();
        w.member("offset", t.offset);
        w.member("size", t.nbytes);
        w.end_object();
    }
    w.end_array();
}

std::vector<UnitTensor> parse_tensor_table(simdjson::dom::array a, const std::string& file, const std::string& where) {
    std::vector<UnitTensor> out;
    for (auto el : a) {
        auto o = json_to_object(el, file, where + " tensor");
        auto need = [&](const char* key) {
            auto e = json_field(o, key);
            if (!e) throw bad_input(file, where + ": a tensor lacks '" + key + "'");
            return *e;
        };
        UnitTensor t;
        t.name = json_to_string(need("name"), file, where + " tensor name");
        std::string dt = json_to_string(need("dtype"), file, where + " tensor dtype");
        auto d = dtype_from_name(dt);
        if (!d || !is_weight_dtype(*d)) throw bad_input(file, where + ": tensor '" + t.name + "' has dtype '" + dt + "'");
        t.dtype = *d;
        for (auto s : json_to_array(need("shape"), file, where + " tensor shape"))
            t.shape.push_back(json_to_uint(s, file, where + " tensor shape"));
        t.offset = json_to_uint(need("offset"), file, where + " tensor offset");
        t.nbytes = json_to_uint(need("size"), file, where + " tensor size");
        out.push_back(std::move(t));
    }
    return out;
}

void validate_tensor_table(const std::vector<UnitTensor>& tensors, uint64_t data_size, const std::string& file,
                           const std::string& where) {
    std::set<std::string> names;
    std::vector<const UnitTensor*> by_offset;
    for (const auto& t : tensors) {
        const std::string what = where + ": tensor '" + t.name + "'";
        if (!names.insert(t.name).second) throw bad_input(file, what + " appears twice");
        if (t.offset % k_tensor_align != 0) throw bad_input(file, what + " is not 256-byte aligned");
        if (shape_bytes(t.shape, t.dtype) != t.nbytes)
            throw bad_input(file, what + " has shape " + shape_text(t.shape) + " of " + dtype_name(t.dtype) +
                                      " but size " + std::to_string(t.nbytes));
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            throw bad_input(file, what + " runs past the end of the data section");
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i)
        if (by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > by_offset[i]->offset && by_offset[i - 1]->nbytes > 0)
            throw bad_input(file, where + ": tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
}

} // namespace rabbit
