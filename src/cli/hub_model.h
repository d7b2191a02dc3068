// SPDX-License-Identifier: Apache-2.0
// Hub models that become splits: `rabbit pull --split`, and `-m ORG/NAME` when no copy is
// here. Each safetensors shard is downloaded only when the splitter first reads it, and
// removed once every unit read from it is written and verified (--delete-original's rule), so
// the checkpoint is never stored whole: peak extra disk is about one shard beside the split.
// Planning needs every shard's header first; those come by range requests, into placeholder
// files of the shard's full size that hold the header and nothing else (sparse).
#pragma once

#include "cli/commands.h"
#include "hub/hub_id.h"

#include <optional>
#include <string>

namespace rabbit {

// Where the split of ID at COMMIT lives: RABBIT_CACHE/splits/ORG--NAME-COMMIT[:12].
std::string hub_split_dir(const HubId& id, const std::string& commit);
// A finished split of the revision the Hugging Face cache's refs give for ID, if any.
std::optional<std::string> cached_hub_split(const HubId& id);

// Downloads and splits ID (resuming an interrupted run); returns the split directory.
std::string pull_split(const HubId& id, const GlobalOptions& global);

// -m ORG/NAME with no local copy: with --yes, or after asking on a terminal, pull_split.
// Otherwise throws bad_input saying how to fetch it.
std::string fetch_missing_model(const HubId& id, const GlobalOptions& global);

} // namespace rabbit
