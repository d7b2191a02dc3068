// SPDX-License-Identifier: Apache-2.0
// Where a draft model (speculative decoding, --draft DIR) runs beside its target, the same for
// run, chat and bench: on the target's GPU with every unit resident, its share of the VRAM
// budget taken off the target's plan; or on the CPU engine with every unit resident in RAM.
#pragma once

#include "cli/engine_choice.h"

#include <CLI/CLI.hpp>

#include <string>

namespace rabbit {

class SplitModel;

// --draft-device: automatic (the GPU when the target runs there and both fit; else the CPU,
// with a one-line notice), cpu, or cuda (the GPU, or exit 6 when the two do not fit).
enum class DraftDevice { automatic, cpu, cuda };
DraftDevice draft_device_of(const std::string& name); // "auto", "cpu", "cuda"
void add_draft_device_option(CLI::App* sub, std::string& name);

struct PlacedEngines {
    MadeEngine target;
    MadeEngine draft;
};

// The target's engine for `request` and the draft's. On the GPU the draft is made first, every
// unit resident, with a context of the target's (--ctx, else the target's maximum) no longer
// than its own maximum; the target's plan then gets the budget less the draft's
// resident_share(). Where the draft or then the target does not fit, `automatic` makes the
// target alone on the GPU and the draft on the CPU, at the target's context.
PlacedEngines make_engines_with_draft(const SplitModel& target, const EngineRequest& request, const SplitModel& draft,
                                      DraftDevice where);

// Where the draft runs, for the log: "on the GPU, 41 MiB of VRAM (weights 20 MiB, KV cache 16 MiB
// for 2048 positions)", "on the CPU, 20 MiB resident in RAM".
std::string draft_placement(const MadeEngine& draft);

} // namespace rabbit
