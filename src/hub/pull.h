// SPDX-License-Identifier: Apache-2.0
// `rabbit pull`: a repo's files into the Hugging Face cache (hub/hf_cache.h), each downloaded
// to blobs/ETAG.incomplete, resumed from its size with a range request after a kill or a
// dropped connection, retried with backoff, and checked against the hub's sha256 (LFS files)
// or git blob sha1 (the rest) before it is renamed into place and linked into the snapshot.
// A file that fails its check is deleted, so the next run fetches it again.
#pragma once

#include "hub/hub_api.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rabbit {

class PullProgress {
public:
    virtual ~PullProgress() = default;
    virtual void start(uint64_t /*total_bytes*/, uint64_t /*cached_bytes*/, size_t /*files*/) {}
    virtual void file_start(const std::string& /*path*/, uint64_t /*size*/, uint64_t /*resumed_at*/) {}
    virtual void advance(uint64_t /*bytes*/) {}
    virtual void file_done(const std::string& /*path*/, bool /*was_cached*/) {}
    virtual void retry(const std::string& /*path*/, const std::string& /*why*/) {}
    virtual void finish() {}
};

struct PullRequest {
    HubId id;
    std::vector<std::string> include; // globs; empty: what select_files takes
    // Called once each file is in the cache and linked, with its snapshot path (--split's hook).
    std::function<void(const HubFile&, const std::string& local_path)> on_file;
    // Which files to fetch first (stable); default: the order of the listing.
    bool small_files_first = true;
};

struct PullResult {
    std::string commit;
    std::string snapshot;    // CACHE/models--ORG--NAME/snapshots/COMMIT
    std::string model_path;  // the snapshot, or the GGUF file in it the quant tag chose
    std::vector<HubFile> files;
    uint64_t bytes_downloaded = 0;
    size_t files_cached = 0; // already complete in the cache
};

// The listing, file choice and free-space check, without downloading.
struct PullPlan {
    RepoListing listing;
    std::vector<HubFile> files;
    uint64_t bytes_missing = 0;
};
PullPlan plan_pull(HttpClient& http, const HubConfig& cfg, const PullRequest& req);

PullResult pull(const HubConfig& cfg, const PullRequest& req, PullProgress& progress);

// Downloads FILE to PART (resuming what PART holds), checked against its checksum; PART is
// deleted on a mismatch. --split fetches shards this way, one at a time, beside the split.
void fetch_file(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& file,
                const std::string& part, PullProgress& progress);

// Bytes FIRST..LAST of FILE (a safetensors header), retried as downloads are.
std::string fetch_bytes(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& file,
                        uint64_t first, uint64_t last);

// fetch_file into the cache's blobs/ETAG.incomplete, then renamed to blobs/ETAG.
void fetch_blob(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& file,
                PullProgress& progress);

} // namespace rabbit
