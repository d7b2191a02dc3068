// SPDX-License-Identifier: Apache-2.0
// The VRAM plan in words, as `inspect --vram-budget` and `run -v` print it.
#pragma once

#include "engine/memory_plan.h"

#include <string>
#include <utility>
#include <vector>

namespace rabbit {

// (key, text) lines: a resident draft model's share of the budget (when there is one), what is
// always on the GPU, the verdict, what is resident and streamed.
//   unit_names, unit_kinds: the plan input's units, in order
std::vector<std::pair<std::string, std::string>> plan_lines(const MemoryPlan& plan, const MemoryPlanInput& in);

} // namespace rabbit
