// SPDX-License-Identifier: Apache-2.0
// The per-tensor types of a quantized split (--dtype q8_0 ... q6_k, q4_k_m): which type each
// matrix gets, where a row that is not whole blocks falls back to another, and which stacked
// matrices (qkv, gate_up) must be kept apart because their parts' types differ. plan.cpp
// uses it for the quantized choices; docs/FORMAT.md documents the rules.
#pragma once

#include "model/config.h"
#include "model/layout.h"
#include "split/plan.h"

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace rabbit {

struct TypedTensor {
    TensorSpec spec;
    DType dtype = DType::f32; // vectors: f32
};

// Matrices stored in another type than the choice asked for, by (asked, stored, row length):
// the tensors' names. Turned into SplitPlan::fallbacks lines by fallback_lines.
using FallbackLog = std::map<std::tuple<DType, DType, uint64_t>, std::set<std::string>>;

// The unit's tensors as a quantized choice stores them: a stacked matrix whose parts get
// different types becomes its parts (q, k, v / gate, up).
std::vector<TypedTensor> quant_unit_tensors(const UnitSpec& unit, DTypeChoice c, const ModelConfig& config,
                                            FallbackLog& fallbacks);
std::vector<std::string> fallback_lines(const FallbackLog& fallbacks);

} // namespace rabbit
