// SPDX-License-Identifier: Apache-2.0
// What the hub tests share: a fake hub serving a generated or real model, the environment that
// points rabbit at it and at temporary caches, and comparisons of caches with served files.
#pragma once

#include "fake_hub.h"
#include "helpers.h"

#include <map>
#include <string>
#include <sys/types.h>

namespace rabbit::test {

struct HubFixture {
    TempDir tmp;
    fakehub::FakeHub hub;
    std::string hf_cache() const { return tmp / "hf/hub"; }
    std::string rabbit_cache() const { return tmp / "rabbit"; }
    // HF_ENDPOINT at the fake hub, the caches under tmp, quick retries, no token of the user's.
    std::map<std::string, std::string> env() const;
    // Serves DIR as repo ID; returns the repo as served.
    const fakehub::Repo& serve(const std::string& id, const std::string& dir, const std::string& token = "");
    std::map<std::string, fakehub::Repo> served;
};

// A random-weight tiny Qwen2 in SHARDS safetensors files, written under DIR/name.
std::string make_served_model(const TempDir& dir, const std::string& name, uint32_t shards, uint64_t seed = 7);

// Problems found comparing the cache's snapshot of REPO with the served files: every file
// present, byte-identical, a relative symlink to blobs/ETAG; no .incomplete left; refs/main
// naming the commit. Empty when all is well.
std::vector<std::string> cache_problems(const std::string& hf_cache, const fakehub::Repo& repo, bool check_ref = true);

// Starts rabbit with ARGS and ENV (stdout and stderr to /dev/null).
pid_t spawn_rabbit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env);
// Waits for PID; kills it first with SIGKILL once HUB has served AT_BYTES body bytes, if it has
// not exited by then. Returns true when it was killed.
bool kill_after_bytes(pid_t pid, const fakehub::FakeHub& hub, uint64_t at_bytes);

// Bytes allocated on disk under DIR (st_blocks, so holes do not count), symlinks not followed.
uint64_t disk_usage(const std::string& dir);

// Every regular file under DIR, path relative to DIR -> bytes.
std::map<std::string, std::string> tree_contents(const std::string& dir);

} // namespace rabbit::test
