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

// The tensor the embedding is read from. A tied model needs only one of the two names;
// tinystories-656k stores lm_head.weight and aliases the embedding to it, others store the
// embedding alone.
std::string embedding_source(const HfCheckpoint& ck, const ModelConfig& c, std::vector<std::string>& notes) {
    std::string embed_source = "model.embed_tokens.weight";
    if (c.tie_word_embeddings && !ck.find(embed_source) && ck.find("lm_head.weight")) {
        embed_source = "lm_head.weight";
        notes.push_back("tied embedding read from lm_head.weight");
    }
    if (c.tie_word_embeddings) notes.push_back("lm_head is tied to the embedding: stored once, in embed.rbt");
    return embed_source;
}

// Resolves every source tensor of the units and checks its shape and dtype; fills `used` with
// their names. Returns whether any matrix is stored in a half type.
bool check_sources(const HfCheckpoint& ck, const ModelConfig& c, const std::vector<UnitSpec>& specs,
                   const std::string& embed_source, const std::string& tensors_file, std::set<std::string>& used) {
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
    return any_half;
}

// A tensor the units do not use means the config does not describe the checkpoint.
void check_no_extra_tensors(const HfCheckpoint& ck, const ModelConfig& c, const std::set<std::string>& used) {
    for (const auto& [name, t] : ck.tensors) {
        if (used.count(name) || is_ignored_hf_tensor(name) || ck.aliases.count(name)) continue;
        if (c.tie_word_embeddings && name == "lm_head.weight") continue; // the tie overrides it, as in transformers
        throw bad_input(ck.shard_path(t.shard), "holds tensor '" + name + "', which a " + c.architecture + " with this " +
                                                    "config.json does not have (wrong config, or an unsupported variant)");
    }
}

// The stored dtype of a matrix whose sources have src_types.
DType matrix_dtype(DTypeChoice choice, bool any_half, const std::set<DType>& src_types) {
    switch (choice) {
    case DTypeChoice::automatic: return any_half ? DType::bf16 : DType::f32;
    case DTypeChoice::keep: return src_types.size() == 1 ? *src_types.begin() : DType::f32;
    case DTypeChoice::f32: return DType::f32;
    case DTypeChoice::f16: return DType::f16;
    case DTypeChoice::bf16: return DType::bf16;
    }
    return DType::f32;
}

// One unit: where its tensors' pieces come from, their stored dtypes (each matrix's added to
// matrix_dtypes) and the unit file's layout.
PlannedUnit plan_unit(const HfCheckpoint& ck, const UnitSpec& spec, const std::string& embed_source, DTypeChoice choice,
                      bool any_half, std::set<DType>& matrix_dtypes) {
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
            dt = matrix_dtype(choice, any_half, src_types);
            matrix_dtypes.insert(dt);
        }
        out.push_back({ts.name, dt, ts.shape, 0, 0});
        pu.pieces.push_back(std::move(pieces));
    }
    pu.layout = layout_unit(spec.name, std::move(out));
    pu.shards.assign(shards.begin(), shards.end());
    return pu;
}

} // namespace

SplitPlan plan_split(const HfCheckpoint& ck, DTypeChoice choice) {
    SplitPlan plan;
    plan.config = ModelConfig::from_hf(ck.config_text, ck.config_path(), ck.generation_text,
                                       join_path(ck.dir, "generation_config.json"));
    const ModelConfig& c = plan.config;
    const std::string tensors_file = where_tensors_live(ck);
    std::vector<UnitSpec> specs = model_units(c);
    const std::string embed_source = embedding_source(ck, c, plan.notes);

    std::set<std::string> used;
    const bool any_half = check_sources(ck, c, specs, embed_source, tensors_file, used);
    check_no_extra_tensors(ck, c, used);

    std::set<DType> matrix_dtypes;
    for (const auto& spec : specs) plan.units.push_back(plan_unit(ck, spec, embed_source, choice, any_half, matrix_dtypes));
    plan.dtype = matrix_dtypes.size() == 1 ? dtype_name(*matrix_dtypes.begin()) : "mixed";
    plan.fingerprint = fingerprint(ck, choice);
    return plan;
}

} // namespace rabbit
