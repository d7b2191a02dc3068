// SPDX-License-Identifier: Apache-2.0
// What `run` and `bench` share in reading their arguments: the model directory (a split, or
// a Hugging Face checkpoint split into the cache on first use). The device: cli/engine_choice.h.
#pragma once

#include "cli/commands.h"

#include <string>

namespace rabbit {

// A split directory for DIR: DIR itself, or its split in the cache (made now if needed).
std::string split_dir_for(const std::string& dir, const GlobalOptions& global);

} // namespace rabbit
