// SPDX-License-Identifier: Apache-2.0
#include "format/hf_checkpoint.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "format/manifest.h"
#include "format/safetensors.h"

#include <algorithm>
#include <set>

namespace rabbit {

const SourceTensor* HfCheckpoint::find(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
}

std::string HfCheckpoint::shard_path(uint32_t shard) const { return join_path(dir, shards.at(shard).file); }

std::string HfCheckpoint::config_path() const { return from_gguf() ? gguf_file : join_path(dir, "config.json"); }

const std::vector<std::string>& hf_companion_files() {
    static const std::vector<std::string> files = {
        "config.json",          "generation_config.json", "tokenizer.json",   "tokenizer_config.json",
        "tokenizer.model",      "special_tokens_map.json", "added_tokens.json", "vocab.json",
        "merges.txt",           "chat_template.jinja",     "chat_template.json",
    };
    return files;
}

void write_deleted_shards(JsonWriter& w, const std::vector<DeletedShard>& shards) {
    w.begin_array();
    for (const auto& d : shards) {
        w.begin_object();
        w.member("file", d.shard.file).member("size", d.shard.size).member("header_hash", hex64(d.shard.header_hash));
        w.key("tensors").begin_array();
        for (const auto& t : d.tensors) {
            w.begin_object().member("name", t.name).member("dtype", dtype_name(t.dtype));
            w.key("shape").begin_array(true);
            for (uint64_t s : t.shape) w.value(s);
            w.end_array();
            w.member("offset", t.offset).member("nbytes", t.nbytes).end_object();
        }
        w.end_array();
        w.end_object();
    }
    w.end_array();
}

std::vector<DeletedShard> parse_deleted_shards(simdjson::dom::array a, const std::string& file) {
    auto need = [&](simdjson::dom::object o, const char* key) {
        auto e = json_field(o, key);
        if (!e) throw bad_input(file, std::string("a deleted shard record lacks '") + key + "'");
        return *e;
    };
    std::vector<DeletedShard> out;
    for (auto el : a) {
        auto o = json_to_object(el, file, "deleted shard");
        DeletedShard d;
        d.shard.file = json_to_string(need(o, "file"), file, "file");
        d.shard.size = json_to_uint(need(o, "size"), file, "size");
        if (!parse_hex64(json_to_string(need(o, "header_hash"), file, "header_hash"), &d.shard.header_hash))
            throw bad_input(file, "header_hash is not 16 hex digits");
        d.shard.present = false;
        for (auto te : json_to_array(need(o, "tensors"), file, "tensors")) {
            auto to = json_to_object(te, file, "tensor");
            SourceTensor t;
            t.name = json_to_string(need(to, "name"), file, "name");
            const std::string dt = json_to_string(need(to, "dtype"), file, "dtype");
            auto parsed = dtype_from_name(dt);
            if (!parsed) throw bad_input(file, "tensor '" + t.name + "' has unknown dtype '" + dt + "'");
            t.dtype = *parsed;
            for (auto s : json_to_array(need(to, "shape"), file, "shape")) t.shape.push_back(json_to_uint(s, file, "shape"));
            t.offset = json_to_uint(need(to, "offset"), file, "offset");
            t.nbytes = json_to_uint(need(to, "nbytes"), file, "nbytes");
            if (shape_bytes(t.shape, t.dtype) != t.nbytes)
                throw bad_input(file, "tensor '" + t.name + "': shape and nbytes disagree");
            d.tensors.push_back(std::move(t));
        }
        out.push_back(std::move(d));
    }
    return out;
}

bool looks_like_hf_checkpoint(const std::string& dir) { return path_exists(join_path(dir, "config.json")); }

namespace {

// Shard names come from a file we do not trust: no paths, no climbing out of the directory.
void check_shard_name(const std::string& name, const std::string& index_path) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw bad_input(index_path, "names shard '" + name + "', which is not a plain file name");
}

std::vector<std::string> read_index(const std::string& index_path, std::map<std::string, std::string>* weight_map) {
    std::string text = read_text_file(index_path);
    JsonDocument doc(text, index_path);
    auto root = doc.root_object();
    auto wm = json_field(root, "weight_map");
    if (!wm) throw bad_input(index_path, "has no weight_map");
    std::set<std::string> files;
    for (auto kv : json_to_object(*wm, index_path, "weight_map")) {
        std::string tensor(kv.key);
        std::string file = json_to_string(kv.value, index_path, "weight_map entry '" + tensor + "'");
        check_shard_name(file, index_path);
        if (!weight_map->emplace(tensor, file).second)
            throw bad_input(index_path, "weight_map names '" + tensor + "' twice");
        files.insert(file);
    }
    if (files.empty()) throw bad_input(index_path, "weight_map is empty");
    return {files.begin(), files.end()}; // sorted: model-00001-of-00004 ... in order
}

// The directory itself, config.json (required) and generation_config.json (optional).
void read_config_files(HfCheckpoint& ck, const std::string& dir) {
    if (!path_exists(dir)) throw bad_input(dir, "no such directory");
    if (!is_directory(dir)) throw bad_input(dir, "is not a directory (expected a Hugging Face model directory)");

    ck.dir = dir;
    const std::string config_path = ck.config_path();
    if (!path_exists(config_path))
        throw bad_input(config_path, "no such file: a Hugging Face model directory needs config.json");
    ck.config_text = read_text_file(config_path);
    const std::string gen_path = join_path(dir, "generation_config.json");
    if (path_exists(gen_path)) ck.generation_text = read_text_file(gen_path);
}

// The shard files, sorted: those the index names (filling weight_map), else the single
// model.safetensors, present or deleted.
std::vector<std::string> list_shard_files(const std::string& dir, const std::vector<DeletedShard>& deleted,
                                          const std::string& index_path, std::map<std::string, std::string>* weight_map) {
    const std::string single_path = join_path(dir, "model.safetensors");
    if (path_exists(index_path)) return read_index(index_path, weight_map);
    if (path_exists(single_path)) return {"model.safetensors"};
    bool has_deleted_single = std::any_of(deleted.begin(), deleted.end(),
                                          [](const DeletedShard& d) { return d.shard.file == "model.safetensors"; });
    if (has_deleted_single) return {"model.safetensors"};
    std::string hint;
    if (path_exists(join_path(dir, "pytorch_model.bin")) || path_exists(join_path(dir, "pytorch_model.bin.index.json")))
        hint = " (found pytorch_model.bin: rabbit reads safetensors only; convert the checkpoint first)";
    throw bad_input(single_path, "no such file, and no model.safetensors.index.json either" + hint);
}

// Reads shard `si` (its header, or its record when it was deleted) and adds it, its tensors
// and its metadata aliases to ck. from_index: an index names the shard (said when it is missing).
void add_shard(HfCheckpoint& ck, uint32_t si, const std::string& name, const std::vector<DeletedShard>& deleted,
               const std::string& index_path, bool from_index) {
    const std::string path = join_path(ck.dir, name);
    SourceShard shard;
    shard.file = name;
    std::vector<SourceTensor> found;
    std::map<std::string, std::string> metadata;
    if (path_exists(path)) {
        InputFile f(path);
        SafetensorsHeader h = read_safetensors_header(f);
        shard.size = f.size();
        shard.header_hash = h.header_hash;
        for (const auto& t : h.tensors)
            found.push_back({t.name, t.dtype, t.shape, si, h.data_start + t.begin, t.nbytes()});
        metadata = h.metadata;
    } else {
        auto it = std::find_if(deleted.begin(), deleted.end(), [&](const DeletedShard& d) { return d.shard.file == name; });
        if (it == deleted.end())
            throw bad_input(path, "no such file" + (from_index ? ", though " + index_path + " names it" : std::string()));
        shard = it->shard;
        shard.present = false;
        for (auto t : it->tensors) {
            t.shard = si;
            found.push_back(t);
        }
    }
    for (const auto& t : found) {
        auto [pos, fresh] = ck.tensors.emplace(t.name, t);
        if (!fresh)
            throw bad_input(path, "holds tensor '" + t.name + "', which " + ck.shards.at(pos->second.shard).file + " holds too");
    }
    // Metadata aliases: {"model.embed_tokens.weight": "lm_head.weight"} stores a tied
    // matrix once and names it twice.
    for (const auto& entry : metadata) {
        const std::string& key = entry.first;
        const std::string& value = entry.second;
        bool value_here = std::any_of(found.begin(), found.end(), [&](const SourceTensor& t) { return t.name == value; });
        if (value_here && key != value) ck.aliases[key] = value;
    }
    ck.shards.push_back(shard);
}

// Each alias becomes a tensor of its own name, unless a stored tensor has that name.
void resolve_aliases(HfCheckpoint& ck) {
    for (auto it = ck.aliases.begin(); it != ck.aliases.end();) {
        if (ck.tensors.count(it->first)) { // a stored tensor wins over an alias of the same name
            it = ck.aliases.erase(it);
            continue;
        }
        SourceTensor t = ck.tensors.at(it->second);
        t.name = it->first;
        ck.tensors.emplace(it->first, t);
        ++it;
    }
}

// Every tensor the index names is in the shard it says.
void check_weight_map(const HfCheckpoint& ck, const std::map<std::string, std::string>& weight_map,
                      const std::string& index_path) {
    for (const auto& [tensor, file] : weight_map) {
        const SourceTensor* t = ck.find(tensor);
        if (!t || ck.shards[t->shard].file != file)
            throw bad_input(join_path(ck.dir, file), "holds no tensor '" + tensor + "', though " + index_path + " says it does");
    }
}

} // namespace

HfCheckpoint open_hf_checkpoint(const std::string& dir, const std::vector<DeletedShard>& deleted) {
    HfCheckpoint ck;
    read_config_files(ck, dir);
    const std::string index_path = join_path(dir, "model.safetensors.index.json");
    std::map<std::string, std::string> weight_map;
    const std::vector<std::string> shard_files = list_shard_files(dir, deleted, index_path, &weight_map);
    for (uint32_t si = 0; si < shard_files.size(); ++si)
        add_shard(ck, si, shard_files[si], deleted, index_path, !weight_map.empty());
    resolve_aliases(ck);
    check_weight_map(ck, weight_map, index_path);
    return ck;
}

} // namespace rabbit
