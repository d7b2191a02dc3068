// SPDX-License-Identifier: Apache-2.0
// The split plan: for each unit of the model, its byte layout and, for each tensor in it,
// the source byte ranges it is made of. Validates the checkpoint against the config on the
// way (every tensor present, of the expected shape and a weight dtype, nothing unexpected).
// `rabbit split` executes a plan; `rabbit inspect` reads one.
#pragma once

#include "format/hf_checkpoint.h"
#include "format/unit_file.h"
#include "model/config.h"
#include "model/layout.h"

#include <optional>
#include <string>
#include <vector>

namespace rabbit {

// --dtype: a float type for every matrix, a quantized type for every matrix (with
// llama.cpp's fallback where a row is not whole blocks), or q4_k_m, llama.cpp's Q4_K_M mix.
enum class DTypeChoice { automatic, keep, f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m };

std::optional<DTypeChoice> parse_dtype_choice(const std::string& s);
const char* dtype_choice_name(DTypeChoice c);
// Every choice's name, in the order `inspect` lists them; quantized: only those that quantize.
std::vector<std::string> dtype_choice_names();
std::vector<DTypeChoice> quant_dtype_choices();
bool is_quant_choice(DTypeChoice c);

// What a matrix is, for the choice of its quantized type.
// router: a MoE layer's router and shared-expert gate, kept f32 by a quantized choice as
// llama.cpp keeps ffn_gate_inp: a few rows that decide which experts run.
enum class MatrixRole { embed, output, q, k, v, o, gate, up, down, router };

// The type a quantized choice gives a matrix of this role in layer `layer` of n_layers,
// before the row-length fallback. `tied`: the embedding is also the output projection.
// q4_k_m, as llama.cpp's Q4_K_M: q6_k for the output projection (a tied embedding too), and
// for attn_v and ffn_down in the layers use_more_bits picks; q4_k for the rest.
DType quant_target(DTypeChoice c, MatrixRole role, uint32_t layer, uint32_t n_layers, bool tied);
// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool use_more_bits(uint32_t layer, uint32_t n_layers);
// The type a matrix with rows of `cols` elements gets instead of t when its rows are not whole
// blocks of t, as llama.cpp's quantizer: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0; a 32-block
// type that still does not fit -> f16. t itself when it fits.
DType row_fallback(DType t, uint64_t cols);

struct SourcePiece {
    std::string name;   // Hugging Face tensor name
    uint32_t shard = 0; // index into HfCheckpoint::shards
    uint64_t offset = 0;
    uint64_t nbytes = 0;
    DType dtype = DType::f32;
};

struct PlannedUnit {
    UnitKind kind = UnitKind::layer;
    uint32_t layer = 0;
    std::string file;
    UnitLayout layout;                            // the output's tensors and byte layout
    std::vector<std::vector<SourcePiece>> pieces; // per layout tensor, concatenated in order
    std::vector<uint32_t> shards;                 // the source shards it reads, sorted
};

struct SplitPlan {
    ModelConfig config;
    std::string dtype;       // the matrices' dtype, or "mixed"
    std::string fingerprint; // source identity (config, shard headers) and options
    std::vector<PlannedUnit> units;
    std::vector<std::string> notes; // decisions worth a log line (tied lm_head stored once, ...)
    std::vector<std::string> fallbacks; // matrices a quantized choice stores in another type, and why

    uint64_t total_bytes() const;
};

SplitPlan plan_split(const HfCheckpoint& ck, DTypeChoice choice);

} // namespace rabbit
