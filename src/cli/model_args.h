// SPDX-License-Identifier: Apache-2.0
// What `run` and `bench` share in reading their arguments: the model directory (a split, or
// a Hugging Face checkpoint split into the cache on first use). The device: cli/engine_choice.h.
#pragma once

#include "cli/commands.h"

#include <string>

namespace rabbit {

// The local path that -m ARG names: ARG itself when it exists (a local path always wins), else
// a hub id ORG/NAME[@REV][:QUANT] found in the Hugging Face cache (hub/hf_cache.h); an ARG that
// is neither comes back as it is, for the caller to report as missing. A hub id nowhere here
// is downloaded and split when MAY_DOWNLOAD (cli/hub_model.h: --yes, or asking on a terminal).
std::string local_model_path(const std::string& arg, const GlobalOptions& global, bool may_download = false);

// Where splits of unsplit models are kept: $RABBIT_CACHE, else $XDG_CACHE_HOME/rabbit, else ~/.cache/rabbit.
std::string rabbit_cache_root();

// A split directory for DIR (or a hub id, as local_model_path takes it): DIR itself, or its split in the cache (made now if needed).
std::string split_dir_for(const std::string& dir, const GlobalOptions& global);

} // namespace rabbit
