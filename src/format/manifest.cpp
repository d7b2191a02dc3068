// SPDX-License-Identifier: Apache-2.0
#include "format/manifest.h"

#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"

#include <set>

namespace rabbit {

std::string hex64(uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i, v >>= 4) s[size_t(i)] = digits[v & 15];
    return s;
}

bool parse_hex64(const std::string& s, uint64_t* v) {
    if (s.size() != 16) return false;
    uint64_t r = 0;
    for (char c : s) {
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        r = (r << 4) | uint64_t(d);
    }
    *v = r;
    return true;
}

uint64_t Manifest::total_bytes() const {
    uint64_t n = 0;
    for (const auto& u : units) n += u.size();
    return n;
}

const ManifestUnit* Manifest::find(const std::string& unit) const {
    for (const auto& u : units)
        if (u.layout.name == unit) return &u;
    return nullptr;
}

std::string Manifest::to_json() const {
    JsonWriter w;
    w.begin_object();
    w.member("format", "rabbit-split");
    w.member("format_version", format_version);
    w.member("created_by", created_by);
    w.member("source_fingerprint", source_fingerprint);
    w.member("dtype", dtype);
    w.key("config");
    config.to_json(w);
    w.key("units").begin_array();
    for (const auto& u : units) {
        w.begin_object();
        w.member("name", u.layout.name);
        w.member("kind", unit_kind_name(u.kind));
        if (u.kind == UnitKind::layer) w.member("layer", u.layer);
        w.member("file", u.file);
        w.member("size", u.size());
        w.member("data_offset", u.layout.data_offset);
        w.member("data_size", u.layout.data_size);
        w.member("xxh3", hex64(u.xxh3));
        w.key("tensors");
        write_tensor_table(w, u.layout.tensors);
        w.end_object();
    }
    w.end_array();
    w.key("files").begin_array();
    for (const auto& f : files) w.value(f);
    w.end_array();
    if (!deleted_sources.empty()) {
        w.key("deleted_sources");
        write_deleted_shards(w, deleted_sources);
    }
    w.end_object();
    return w.str() + "\n";
}

Manifest Manifest::parse(const std::string& text, const std::string& file) {
    JsonDocument doc(text, file);
    auto root = doc.root_object();
    auto need = [&](simdjson::dom::object o, const char* key, const std::string& where) {
        auto e = json_field(o, key);
        if (!e) throw bad_input(file, where + " lacks '" + key + "'");
        return *e;
    };
    Manifest m;
    if (json_to_string(need(root, "format", "manifest"), file, "format") != "rabbit-split")
        throw bad_input(file, "is not a rabbit split manifest (format is not \"rabbit-split\")");
    uint64_t version = json_to_uint(need(root, "format_version", "manifest"), file, "format_version");
    if (version != k_split_format_version)
        throw unsupported(file, "split format version " + std::to_string(version) + "; this rabbit reads version " +
                                    std::to_string(k_split_format_version) + " (split the model again)");
    m.format_version = uint32_t(version);
    m.created_by = json_to_string(need(root, "created_by", "manifest"), file, "created_by");
    m.source_fingerprint = json_to_string(need(root, "source_fingerprint", "manifest"), file, "source_fingerprint");
    m.dtype = json_to_string(need(root, "dtype", "manifest"), file, "dtype");
    if (m.dtype != "mixed" && !(dtype_from_name(m.dtype) && is_weight_dtype(*dtype_from_name(m.dtype))))
        throw bad_input(file, "dtype '" + m.dtype + "' is not f32, f16, bf16 or mixed");
    m.config = ModelConfig::from_normalized(simdjson::to_string(need(root, "config", "manifest")), file);

    std::set<std::string> names, files;
    for (auto el : json_to_array(need(root, "units", "manifest"), file, "units")) {
        auto o = json_to_object(el, file, "unit");
        ManifestUnit u;
        u.layout.name = json_to_string(need(o, "name", "a unit"), file, "unit name");
        const std::string where = "unit '" + u.layout.name + "'";
        std::string kind = json_to_string(need(o, "kind", where), file, where + " kind");
        if (kind == "embed") u.kind = UnitKind::embed;
        else if (kind == "layer") u.kind = UnitKind::layer;
        else if (kind == "norm") u.kind = UnitKind::final_norm;
        else if (kind == "lm_head") u.kind = UnitKind::lm_head;
        else throw bad_input(file, where + " has unknown kind '" + kind + "'");
        if (u.kind == UnitKind::layer) {
            uint64_t layer = json_to_uint(need(o, "layer", where), file, where + " layer");
            if (layer >= m.config.num_layers) throw bad_input(file, where + " names layer " + std::to_string(layer));
            u.layer = uint32_t(layer);
        }
        u.file = json_to_string(need(o, "file", where), file, where + " file");
        if (u.file.empty() || u.file.find('/') != std::string::npos || u.file[0] == '.')
            throw bad_input(file, where + " names file '" + u.file + "', which is not a plain file name");
        u.layout.data_offset = json_to_uint(need(o, "data_offset", where), file, where + " data_offset");
        u.layout.data_size = json_to_uint(need(o, "data_size", where), file, where + " data_size");
        uint64_t size = json_to_uint(need(o, "size", where), file, where + " size");
        if (u.layout.data_offset % k_unit_align || u.layout.data_size % k_unit_align ||
            size != u.layout.data_offset + u.layout.data_size)
            throw bad_input(file, where + ": size, data_offset and data_size disagree");
        if (!parse_hex64(json_to_string(need(o, "xxh3", where), file, where + " xxh3"), &u.xxh3))
            throw bad_input(file, where + ": xxh3 must be 16 hex digits");
        u.layout.tensors = parse_tensor_table(json_to_array(need(o, "tensors", where), file, where), file, where);
        validate_tensor_table(u.layout.tensors, u.layout.data_size, file, where);
        if (!names.insert(u.layout.name).second) throw bad_input(file, where + " appears twice");
        if (!files.insert(u.file).second) throw bad_input(file, "file '" + u.file + "' is named by two units");
        m.units.push_back(std::move(u));
    }
    if (auto f = json_field(root, "files"))
        for (auto el : json_to_array(*f, file, "files")) {
            std::string name = json_to_string(el, file, "files entry");
            if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
                throw bad_input(file, "files names '" + name + "', which is not a plain file name");
            m.files.push_back(name);
        }
    if (auto d = json_field(root, "deleted_sources"))
        m.deleted_sources = parse_deleted_shards(json_to_array(*d, file, "deleted_sources"), file);
    return m;
}

} // namespace rabbit
