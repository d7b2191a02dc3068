// SPDX-License-Identifier: Apache-2.0
// The hub's HTTP API as huggingface_hub speaks it: the model info with its file list
// (GET ENDPOINT/api/models/ORG/NAME/revision/REV?blobs=true: each file's size, git blob id and,
// for LFS files, sha256) and file resolution (ENDPOINT/ORG/NAME/resolve/COMMIT/PATH, which
// redirects LFS files to their storage). Every refusal becomes one line and an exit code.
#pragma once

#include "common/error.h"
#include "hub/http.h"
#include "hub/hub_id.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

struct HubConfig {
    std::string endpoint;  // HF_ENDPOINT, else https://huggingface.co; no trailing '/'
    std::string token;     // HF_TOKEN, else the token file huggingface-cli login writes; never logged
    std::string cache_dir; // hf_hub_cache_dir()
    int attempts = 6;      // per request, with backoff between them (RABBIT_HUB_ATTEMPTS)
    double backoff_s = 0.5; // doubles after each failure, at most 30 s (RABBIT_HUB_BACKOFF_S)
};

HubConfig hub_config_from_env();

struct HubFile {
    std::string path;   // in the repo
    uint64_t size = 0;
    std::string etag;   // the blob's name in the cache: the LFS sha256, else the git blob sha1
    bool lfs = false;   // checked by sha256; a git file by its git blob sha1
};

struct RepoListing {
    std::string commit;
    std::vector<HubFile> files;
};

RepoListing fetch_listing(HttpClient& http, const HubConfig& cfg, const HubId& id);

// What `rabbit pull` fetches of LISTING: the files INCLUDE's globs match (all when empty); of
// a GGUF repo with a quant tag, the GGUF files of that tag and no other weights; pickle weights
// never when safetensors are there. Throws unsupported for a pickle-only repo, bad_input when
// nothing matches.
std::vector<HubFile> select_files(const RepoListing& listing, const HubId& id, const std::vector<std::string>& include);

std::string resolve_url(const HubConfig& cfg, const HubId& id, const std::string& commit, const std::string& path);

// The error for an HTTP status the hub answered REPO's request with (401, 403, 404, 5xx...).
Error hub_status_error(const HubConfig& cfg, const HubId& id, const HttpReply& reply, const std::string& what);
// The error for a transfer that got no answer (no network).
Error hub_unreachable(const HubConfig& cfg, const TransferFailure& failure);

// Sleeps before attempt N (1-based) of a retried request, doubling from cfg.backoff_s.
void backoff(const HubConfig& cfg, int attempt);

// "a%20b" for "a b": for revisions and paths in URLs ('/' kept where KEEP_SLASH).
std::string url_encode(const std::string& text, bool keep_slash);

} // namespace rabbit
