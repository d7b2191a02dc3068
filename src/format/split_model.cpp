// SPDX-License-Identifier: Apache-2.0
#include "format/split_model.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "common/interrupt.h"
#include "format/safetensors.h"

#include <vector>

namespace rabbit {

bool is_split_dir(const std::string& dir) { return path_exists(join_path(dir, k_manifest_file)); }

std::string SplitModel::unit_path(const ManifestUnit& u) const { return join_path(dir_, u.file); }

bool SplitModel::streams_per_token(size_t i) const {
    return rabbit::streams_per_token(manifest_.units.at(i).kind, roles_.tied);
}

void check_units_match_config(const Manifest& m, const std::string& file) {
    std::vector<UnitSpec> want = model_units(m.config);
    if (want.size() != m.units.size())
        throw bad_input(file, "lists " + std::to_string(m.units.size()) + " units, but the config needs " +
                                  std::to_string(want.size()));
    for (size_t i = 0; i < want.size(); ++i) {
        const UnitSpec& w = want[i];
        const ManifestUnit& u = m.units[i];
        if (u.layout.name != w.name || u.kind != w.kind || (w.kind == UnitKind::layer && u.layer != w.layer))
            throw bad_input(file, "unit " + std::to_string(i) + " is '" + u.layout.name + "', expected '" + w.name + "'");
        const auto matrix_dtype = dtype_from_name(m.dtype); // nullopt for "mixed"
        std::vector<TensorSpec> want_tensors; // a stacked matrix the unit holds as its parts counts as them
        for (const auto& ts : w.tensors) {
            std::vector<TensorSpec> parts = u.layout.find(ts.name) ? std::vector<TensorSpec>{} : unstack(ts);
            if (parts.empty()) want_tensors.push_back(ts);
            else want_tensors.insert(want_tensors.end(), parts.begin(), parts.end());
        }
        for (const auto& ts : want_tensors) {
            const UnitTensor* t = u.layout.find(ts.name);
            const std::string what = "unit '" + w.name + "' tensor '" + ts.name + "'";
            if (!t) throw bad_input(file, "unit '" + w.name + "' lacks tensor '" + ts.name + "'");
            if (t->shape != ts.shape)
                throw bad_input(file, what + " has shape " + shape_text(t->shape) + ", the config needs " + shape_text(ts.shape));
            if (ts.vector && t->dtype != DType::f32) throw bad_input(file, what + " must be f32, not " + dtype_name(t->dtype));
            if (!ts.vector && matrix_dtype && t->dtype != *matrix_dtype)
                throw bad_input(file, what + " is " + dtype_name(t->dtype) + " but the manifest's dtype is " + m.dtype);
        }
        if (u.layout.tensors.size() != want_tensors.size())
            throw bad_input(file, "unit '" + w.name + "' holds tensors the config does not use");
    }
}

SplitModel SplitModel::open(const std::string& dir) {
    SplitModel s;
    s.dir_ = dir;
    const std::string mpath = join_path(dir, k_manifest_file);
    if (!path_exists(mpath)) throw bad_input(mpath, "no such file: not a split model directory (run `rabbit split` first)");
    s.manifest_ = Manifest::parse(read_text_file(mpath), mpath);
    check_units_match_config(s.manifest_, mpath);
    std::vector<UnitKind> kinds;
    for (const auto& u : s.manifest_.units) kinds.push_back(u.kind);
    s.roles_ = unit_roles(kinds, s.manifest_.config.tie_word_embeddings);
    for (const auto& u : s.manifest_.units) {
        const std::string path = s.unit_path(u);
        InputFile f(path);
        if (f.size() != u.size())
            throw bad_input(path, "is " + std::to_string(f.size()) + " bytes, the manifest says " + std::to_string(u.size()) +
                                      " (unit " + u.layout.name + ")");
        UnitLayout header = read_unit_header(f);
        if (!(header == u.layout))
            throw bad_input(path, "its header does not match the manifest's entry for unit " + u.layout.name);
    }
    return s;
}

uint64_t hash_file(const std::string& path, bool from_disk) {
    InputFile f(path);
    f.advise_sequential();
    // Dropping the clean cached pages first makes every read below come from the disk.
    if (from_disk) f.drop_cache(0, f.size());
    Hasher h;
    std::vector<uint8_t> buf(size_t(std::min<uint64_t>(f.size(), 8u << 20)));
    for (uint64_t off = 0; off < f.size();) {
        throw_if_interrupted();
        size_t n = size_t(std::min<uint64_t>(buf.size(), f.size() - off));
        f.read_at(buf.data(), n, off);
        h.update(buf.data(), n);
        if (from_disk) f.drop_cache(off, n);
        off += n;
    }
    return h.digest();
}

void SplitModel::verify_checksum(const ManifestUnit& u) const {
    const std::string path = unit_path(u);
    uint64_t h = hash_file(path);
    if (h != u.xxh3)
        throw bad_input(path, "checksum " + hex64(h) + " differs from the manifest's " + hex64(u.xxh3) + " (unit " +
                                  u.layout.name + "): the file is corrupt; split the model again");
}

} // namespace rabbit
