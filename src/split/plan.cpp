// SPDX-License-Identifier: Apache-2.0
#include "split/plan.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "format/manifest.h"
#include "format/safetensors.h"

#include <algorithm>
#include <set>

namespace rabbit {

std::optional<DTypeChoice> parse_dtype_choice(const std::string& s) {
    if (s == "auto") return DTypeChoice::automatic;
    if (s == "keep") return DTypeChoice::keep;
    if (s == "f32") return DTypeChoice::f32;
    if (s == "f16") return DTypeChoice::f16;
    if (s == "bf16") return DTypeChoice::bf16;
    return std::nullopt;
}

const char* dtype_choice_name(DTypeChoice c) {
    switch (c) {
    case DTypeChoice::automatic: return "auto";
    case DTypeChoice::keep: return "keep";
    case DTypeChoice::f32: return "f32";
    case DTypeChoice::f16: return "f16";
    case DTypeChoice::bf16: return "bf16";
    }
    return "?";
}

uint64_t SplitPlan::total_bytes() const {
    uint64_t n = 0;
    for (const auto& u : units) n += u.layout.file_size();
    return n;
}

namespace {

// Where a missing tensor should have been: the index when there is one, else the one file.
std::string where_tensors_live(const HfCheckpoint& ck) {
    if (path_exists(join_path(ck.dir, "model.safetensors.index.json"))) return join_path(ck.dir, "model.safetensors.index.json");
    return ck.shard_path(0);
}

std::string fingerprint(const HfCheckpoint& ck, DTypeChoice choice) {
    std::string id = "rabbit-split/" + std::to_string(k_split_format_version) + "/dtype=" + dtype_choice_name(choice);
    id += "/config=" + hex64(hash_bytes(ck.config_text.data(), ck.config_text.size()));
    if (ck.generation_text) id += "/generation=" + hex64(hash_bytes(ck.generation_text->data(), ck.generation_text->size()));
    for (const auto& s : ck.shards) id += "/" + s.file + ":" + std::to_string(s.size) + ":" + hex64(s.header_hash);
    return hex64(hash_bytes(id.data(), id.size()));
}

} // namespace

SplitPlan plan_split(const HfCheckpoint& ck, DTypeChoice choice) {
    SplitPlan plan;
    plan.config = ModelConfig::from_hf(ck.config_text, ck.config_path(), ck.generation_text,
                                       join_path(ck.dir, "generation_config.json"));
    const ModelConfig& c = plan.config;
    const std::string tensors_file = where_tensors_live(ck);
    std::vector<UnitSpec> specs = model_units(c);

    // A tied model needs only one of the two names; tinystories-656k stores lm_head.weight and
    // aliases the embedding to it, others store the embedding alone.
    std::string embed_source = "model.embed_tokens.weight";
    if (c.tie_word_embeddings && !ck.find(embed_source) && ck.find("lm_head.weight")) {
        embed_source = "lm_head.weight";
        plan.notes.push_back("tied embedding read from lm_head.weight");
    }
    if (c.tie_word_embeddings) plan.notes.push_back("lm_head is tied to the embedding: stored once, in embed.rbt");

    // Resolve sources and check shapes and dtypes.
    std::set<std::string> used;
    bool any_half = false;
    for (const auto& spec : specs)
        for (const auto& ts : spec.tensors)
            for (size_t i = 0; i < ts.sources.size(); ++i) {
                const std::string& name = ts.name == "embed" ? embed_source : ts.sources[i];
                const SourceTensor* t = ck.find(name);
                if (!t)
                    throw bad_input(tensors_file, "tensor '" + name + "' is missing; " + c.architecture + " with " +
                                                      std::to_string(c.num_layers) + " layers needs it");
                std::vector<uint64_t> want = {ts.source_rows[i]};
                if (!ts.vector) want.push_back(ts.shape[1]);
                const std::string shard = ck.shard_path(t->shard);
                if (!is_weight_dtype(t->dtype))
                    throw unsupported(shard, "tensor '" + name + "' has dtype " + dtype_safetensors_name(t->dtype) +
                                                 "; rabbit reads F32, F16 and BF16 weights");
                if (t->shape != want)
                    throw bad_input(shard, "tensor '" + name + "' has shape " + shape_text(t->shape) + ", but " +
                                               ck.config_path() + " implies " + shape_text(want));
                used.insert(name);
                if (!ts.vector && t->dtype != DType::f32) any_half = true;
            }
    for (const auto& [name, t] : ck.tensors) {
        if (used.count(name) || is_ignored_hf_tensor(name) || ck.aliases.count(name)) continue;
        if (c.tie_word_embeddings && name == "lm_head.weight") continue; // the tie overrides it, as in transformers
        throw bad_input(ck.shard_path(t.shard), "holds tensor '" + name + "', which a " + c.architecture + " with this " +
                                                    "config.json does not have (wrong config, or an unsupported variant)");
    }

    std::set<DType> matrix_dtypes;
    for (const auto& spec : specs) {
        PlannedUnit pu;
        pu.kind = spec.kind;
        pu.layer = spec.layer;
        pu.file = spec.file;
        std::vector<UnitTensor> out;
        std::set<uint32_t> shards;
        for (const auto& ts : spec.tensors) {
            std::vector<SourcePiece> pieces;
            std::set<DType> src_types;
            for (const auto& src : ts.sources) {
                const std::string& name = ts.name == "embed" ? embed_source : src;
                const SourceTensor* t = ck.find(name);
                pieces.push_back({name, t->shard, t->offset, t->nbytes, t->dtype});
                src_types.insert(t->dtype);
                shards.insert(t->shard);
            }
            DType dt = DType::f32; // vectors (norm weights, biases) are always f32: tiny, and exact
            if (!ts.vector) {
                switch (choice) {
                case DTypeChoice::automatic: dt = any_half ? DType::bf16 : DType::f32; break;
                case DTypeChoice::keep: dt = src_types.size() == 1 ? *src_types.begin() : DType::f32; break;
                case DTypeChoice::f32: dt = DType::f32; break;
                case DTypeChoice::f16: dt = DType::f16; break;
                case DTypeChoice::bf16: dt = DType::bf16; break;
                }
                matrix_dtypes.insert(dt);
            }
            out.push_back({ts.name, dt, ts.shape, 0, 0});
            pu.pieces.push_back(std::move(pieces));
        }
        pu.layout = layout_unit(spec.name, std::move(out));
        pu.shards.assign(shards.begin(), shards.end());
        plan.units.push_back(std::move(pu));
    }
    plan.dtype = matrix_dtypes.size() == 1 ? dtype_name(*matrix_dtypes.begin()) : "mixed";
    plan.fingerprint = fingerprint(ck, choice);
    return plan;
}

} // namespace rabbit
