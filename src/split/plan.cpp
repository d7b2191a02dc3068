// SPDX-License-Identifier: Apache-2.0
#include "split/plan.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "format/manifest.h"
#include "format/safetensors.h"
#include "split/quant_plan.h"

#include <algorithm>
#include <set>

namespace rabbit {

namespace {

constexpr DTypeChoice k_all_choices[] = {DTypeChoice::automatic, DTypeChoice::keep, DTypeChoice::f32,  DTypeChoice::f16,
                                         DTypeChoice::bf16,      DTypeChoice::q8_0, DTypeChoice::q6_k, DTypeChoice::q5_k,
                                         DTypeChoice::q5_1,      DTypeChoice::q5_0, DTypeChoice::q4_k_m, DTypeChoice::q4_k,
                                         DTypeChoice::q4_1,      DTypeChoice::q4_0};

} // namespace

std::optional<DTypeChoice> parse_dtype_choice(const std::string& s) {
    for (DTypeChoice c : k_all_choices)
        if (s == dtype_choice_name(c)) return c;
    return std::nullopt;
}

const char* dtype_choice_name(DTypeChoice c) {
    switch (c) {
    case DTypeChoice::automatic: return "auto";
    case DTypeChoice::keep: return "keep";
    case DTypeChoice::f32: return "f32";
    case DTypeChoice::f16: return "f16";
    case DTypeChoice::bf16: return "bf16";
    case DTypeChoice::q8_0: return "q8_0";
    case DTypeChoice::q4_0: return "q4_0";
    case DTypeChoice::q4_1: return "q4_1";
    case DTypeChoice::q5_0: return "q5_0";
    case DTypeChoice::q5_1: return "q5_1";
    case DTypeChoice::q4_k: return "q4_k";
    case DTypeChoice::q5_k: return "q5_k";
    case DTypeChoice::q6_k: return "q6_k";
    case DTypeChoice::q4_k_m: return "q4_k_m";
    }
    return "?";
}

bool is_quant_choice(DTypeChoice c) {
    return c != DTypeChoice::automatic && c != DTypeChoice::keep && c != DTypeChoice::f32 && c != DTypeChoice::f16 &&
           c != DTypeChoice::bf16;
}

std::vector<std::string> dtype_choice_names() {
    std::vector<std::string> out;
    for (DTypeChoice c : k_all_choices) out.push_back(dtype_choice_name(c));
    return out;
}

std::vector<DTypeChoice> quant_dtype_choices() {
    std::vector<DTypeChoice> out;
    for (DTypeChoice c : k_all_choices)
        if (is_quant_choice(c)) out.push_back(c);
    return out;
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
    default: break; // the quantized choices: quant_unit_tensors
    }
    return DType::f32;
}

// The byte ranges of one source tensor, in Hugging Face row order. A GGUF's q and k rows of a
// llama model are stored per head as interleaved pairs (llama.cpp's converter: GGUF row
// 2i + s of a head holds Hugging Face row s * head_dim/2 + i); they come back one whole row
// at a time, so a quantized row moves with its blocks intact.
void add_source_pieces(const SourceTensor& t, std::vector<SourcePiece>& pieces) {
    if (t.permuted_heads == 0) {
        pieces.push_back({t.name, t.shard, t.offset, t.nbytes, t.dtype});
        return;
    }
    const uint64_t rows = t.shape.at(0), row_bytes = t.nbytes / rows;
    const uint64_t head_dim = rows / t.permuted_heads, half = head_dim / 2;
    for (uint64_t h = 0; h < t.permuted_heads; ++h)
        for (uint64_t s = 0; s < 2; ++s)
            for (uint64_t i = 0; i < half; ++i) {
                const uint64_t from = h * head_dim + 2 * i + s;
                pieces.push_back({t.name, t.shard, t.offset + from * row_bytes, row_bytes, t.dtype});
            }
}

// A stacked matrix (qkv, gate_up) whose sources keep quantized types that differ (a Q4_K_M
// GGUF's q and k in Q4_K, v in Q6_K) is stored as its parts, each in its own type: the
// engines read "q", "k", "v" (or "gate", "up") where "qkv" is absent.
bool keeps_apart(const TensorSpec& ts, DTypeChoice choice, const std::set<DType>& src_types) {
    if (ts.vector || ts.sources.size() < 2 || src_types.size() < 2 || choice != DTypeChoice::keep) return false;
    return std::any_of(src_types.begin(), src_types.end(), [](DType t) { return is_quant_dtype(t); });
}

void add_parts_apart(const HfCheckpoint& ck, const TensorSpec& ts, std::vector<UnitTensor>& out,
                     std::vector<std::vector<SourcePiece>>& unit_pieces, std::set<DType>& matrix_dtypes) {
    const std::vector<std::string> names = stacked_part_names(ts.name);
    RABBIT_CHECK(!names.empty() && names.size() == ts.sources.size(),
                 "no part names for stacked tensor " + ts.name);
    for (size_t i = 0; i < ts.sources.size(); ++i) {
        const SourceTensor* t = ck.find(ts.sources[i]);
        std::vector<SourcePiece> pieces;
        add_source_pieces(*t, pieces);
        out.push_back({names[i], t->dtype, {ts.source_rows[i], ts.shape[1]}, 0, 0});
        matrix_dtypes.insert(t->dtype);
        unit_pieces.push_back(std::move(pieces));
    }
}

// A quantized source is copied as it is: rabbit does not dequantize while splitting.
void check_conversion(const HfCheckpoint& ck, const std::vector<SourcePiece>& pieces, DType dt) {
    for (const auto& p : pieces)
        if (is_quant_dtype(p.dtype) && p.dtype != dt)
            throw unsupported(ck.shard_path(p.shard), "tensor '" + p.name + "' is " + dtype_safetensors_name(p.dtype) +
                                                          "; a split keeps quantized tensors as they are "
                                                          "(--dtype auto or keep), it does not convert them to " +
                                                          dtype_name(dt));
}

// One unit: where its tensors' pieces come from, their stored dtypes (each matrix's added to
// matrix_dtypes) and the unit file's layout.
PlannedUnit plan_unit(const HfCheckpoint& ck, const UnitSpec& spec, const std::string& embed_source, DTypeChoice choice,
                      bool any_half, std::set<DType>& matrix_dtypes, const std::vector<TypedTensor>& quantized) {
    PlannedUnit pu;
    pu.kind = spec.kind;
    pu.layer = spec.layer;
    pu.file = spec.file;
    std::vector<UnitTensor> out;
    std::set<uint32_t> shards;
    std::vector<TensorSpec> tensors = spec.tensors; // a quantized choice may keep stacked parts apart
    if (!quantized.empty()) {
        tensors.clear();
        for (const auto& q : quantized) tensors.push_back(q.spec);
    }
    for (size_t n = 0; n < tensors.size(); ++n) {
        const TensorSpec& ts = tensors[n];
        std::vector<SourcePiece> pieces;
        std::set<DType> src_types;
        for (const auto& src : ts.sources) {
            const std::string& name = ts.name == "embed" ? embed_source : src;
            const SourceTensor* t = ck.find(name);
            add_source_pieces(*t, pieces);
            src_types.insert(t->dtype);
            shards.insert(t->shard);
        }
        if (keeps_apart(ts, choice, src_types)) {
            add_parts_apart(ck, ts, out, pu.pieces, matrix_dtypes);
            continue;
        }
        DType dt = DType::f32; // vectors (norm weights, biases) are always f32: tiny, and exact
        if (!ts.vector) {
            dt = quantized.empty() ? matrix_dtype(choice, any_half, src_types) : quantized[n].dtype;
            matrix_dtypes.insert(dt);
        }
        check_conversion(ck, pieces, dt);
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

    // A GGUF's tensors stay in their types: quantized ones are never converted by default.
    const DTypeChoice stored = ck.from_gguf() && choice == DTypeChoice::automatic ? DTypeChoice::keep : choice;
    std::set<DType> matrix_dtypes;
    FallbackLog fallbacks;
    for (const auto& spec : specs) {
        std::vector<TypedTensor> quantized;
        if (is_quant_choice(choice)) quantized = quant_unit_tensors(spec, choice, c, fallbacks);
        plan.units.push_back(plan_unit(ck, spec, embed_source, stored, any_half, matrix_dtypes, quantized));
    }
    plan.fallbacks = fallback_lines(fallbacks);
    plan.dtype = matrix_dtypes.size() == 1 ? dtype_name(*matrix_dtypes.begin()) : "mixed";
    plan.fingerprint = fingerprint(ck, choice);
    return plan;
}

} // namespace rabbit
