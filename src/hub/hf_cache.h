// SPDX-License-Identifier: Apache-2.0
// The Hugging Face cache, laid out exactly as huggingface_hub lays it out, so that rabbit,
// huggingface_hub and transformers share one copy of a model:
//   CACHE/models--ORG--NAME/blobs/ETAG                 the file's bytes (ETAG: sha256 for LFS files,
//                                                      the git blob sha1 otherwise)
//   CACHE/models--ORG--NAME/blobs/ETAG.incomplete      a download under way (resumed from its size)
//   CACHE/models--ORG--NAME/snapshots/COMMIT/PATH  ->  ../../blobs/ETAG (a relative symlink)
//   CACHE/models--ORG--NAME/refs/BRANCH                the commit BRANCH pointed at when fetched
#pragma once

#include "hub/hub_id.h"

#include <optional>
#include <string>
#include <vector>

namespace rabbit {

// HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else
// XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface_hub's order).
std::string hf_hub_cache_dir();

class HfCacheRepo {
public:
    HfCacheRepo(std::string cache_dir, const std::string& repo);

    const std::string& dir() const { return dir_; } // CACHE/models--ORG--NAME
    std::string blob(const std::string& etag) const;
    std::string snapshot(const std::string& commit) const;
    // The commit REV names here: REV itself when it is a hash, else refs/REV's content;
    // nullopt when the cache has no such ref.
    std::optional<std::string> commit_of(const std::string& rev) const;
    // Links snapshots/COMMIT/PATH to blobs/ETAG (replacing what is there) and records
    // refs/REV = COMMIT unless REV is the commit itself.
    void link(const std::string& commit, const std::string& path, const std::string& etag) const;
    void write_ref(const std::string& rev, const std::string& commit) const;

private:
    std::string dir_;
};

// The local path of a cached model: its snapshot directory, or the GGUF file in it that
// ID's quant tag picks. nullopt when the cache holds no snapshot of ID's revision. Throws
// bad_input when the snapshot holds no usable model (naming what it holds), unsupported for
// pickle-only weights.
std::optional<std::string> find_cached_model(const std::string& cache_dir, const HubId& id);

// The GGUF among FILES (paths in the repo) that QUANT picks (case-insensitive, the tag between
// separators of the name; a split set's first part). Empty QUANT: the one GGUF, if only one.
// Throws bad_input naming WHAT and the tags there are when none or several match.
std::string choose_gguf(const std::vector<std::string>& files, const std::string& quant, const std::string& what);

// Whether FILES (paths in a repo) hold weights rabbit may load (safetensors or GGUF); throws
// unsupported, explaining why, when they hold only pickles (.bin, .pt, .pth, .ckpt).
bool has_loadable_weights(const std::vector<std::string>& files, const std::string& what);
bool is_pickle_weight(const std::string& path);

} // namespace rabbit
