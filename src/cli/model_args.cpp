// SPDX-License-Identifier: Apache-2.0
#include "cli/model_args.h"

#include "cli/hub_model.h"
#include "cli/progress.h"
#include "common/error.h"
#include "common/file_io.h"
#include "format/gguf.h"
#include "format/gguf_import.h"
#include "format/hf_checkpoint.h"
#include "format/split_model.h"
#include "hub/hf_cache.h"
#include "hub/hub_id.h"
#include "split/splitter.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace rabbit {

namespace {

// Where unsplit models are split on first use: $RABBIT_CACHE, else $XDG_CACHE_HOME/rabbit,
// else ~/.cache/rabbit.
} // namespace

std::string rabbit_cache_root() {
    if (const char* c = std::getenv("RABBIT_CACHE"); c && *c) return c;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return join_path(x, "rabbit");
    if (const char* h = std::getenv("HOME"); h && *h) return join_path(join_path(h, ".cache"), "rabbit");
    throw Error(ExitCode::usage, "no cache directory for the split: set RABBIT_CACHE or HOME");
}

namespace {

std::string basename_of(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    const size_t slash = dir.find_last_of('/');
    return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

// The source opened for splitting: a GGUF file, else a Hugging Face directory.
HfCheckpoint open_source(const std::string& dir) {
    if (looks_like_gguf(dir)) return open_gguf_checkpoint(dir);
    if (!path_exists(dir) && dir.size() > 5 && dir.compare(dir.size() - 5, 5, ".gguf") == 0)
        throw bad_input(dir, "no such file");
    if (!is_directory(dir)) throw bad_input(dir, path_exists(dir) ? "is not a directory" : "no such directory");
    if (!looks_like_hf_checkpoint(dir))
        throw bad_input(dir, "holds neither manifest.json (a rabbit split) nor config.json (a Hugging Face model)");
    return open_hf_checkpoint(dir);
}

// "m.Q4_1.gguf" -> "m.Q4_1"; a directory's name as it is.
std::string cache_name_of(const std::string& source) {
    std::string name = basename_of(source);
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
    return name;
}

// A hub id's split is named after the repo ("Qwen--Qwen2.5-0.5B-Instruct"), not its snapshot's commit.
std::string split_name_of(const std::string& arg, const std::string& dir) {
    if (path_exists(arg)) return cache_name_of(dir);
    const std::optional<HubId> id = parse_hub_id(arg);
    if (!id) return cache_name_of(dir);
    std::string name = id->repo;
    name.replace(name.find('/'), 1, "--");
    return id->quant.empty() ? name : name + "." + id->quant;
}

} // namespace

std::string local_model_path(const std::string& arg, const GlobalOptions& global, bool may_download) {
    if (path_exists(arg)) return arg;
    const std::optional<HubId> id = parse_hub_id(arg);
    if (!id) return arg; // not a hub id: the caller reports the missing path as it always did
    // A split `pull --split` made: the snapshot beside it holds the small files, not the shards.
    if (std::optional<std::string> split = cached_hub_split(*id)) return *split;
    const std::string cache = hf_hub_cache_dir();
    if (std::optional<std::string> found = find_cached_model(cache, *id)) {
        spdlog::debug("{}: found in the Hugging Face cache at {}", arg, *found);
        return *found;
    }
    if (may_download) return fetch_missing_model(*id, global);
    throw bad_input(arg, "no such path, and the Hugging Face cache (" + cache + ") holds no snapshot of it: fetch it with `rabbit pull " +
                             id->text() + "`");
}

std::string split_dir_for(const std::string& arg, const GlobalOptions& global) {
    const std::string dir = local_model_path(arg, global, true);
    if (is_split_dir(dir)) return dir;
    const HfCheckpoint ck = open_source(dir);
    const SplitPlan plan = plan_split(ck, DTypeChoice::automatic);
    const std::string out = join_path(join_path(rabbit_cache_root(), "splits"), split_name_of(arg, dir) + "-" + plan.fingerprint);
    // The fingerprint in the name covers the source files and the split options; a finished
    // split is used as it is (run_split would verify every unit again, reading it whole).
    if (is_split_dir(out)) {
        spdlog::debug("{}: using its split in {}", dir, out);
        return out;
    }
    SplitOptions opt;
    opt.model_dir = dir;
    opt.out_dir = out;
    const bool tty = stderr_is_terminal();
    ConsoleProgress progress(!global.quiet && tty, false);
    // Concurrent first runs take turns: one splits, the others wait, then use its split.
    const SplitLock lock(out);
    if (is_split_dir(out)) {
        spdlog::debug("{}: using the split another rabbit finished in {} while this one waited", dir, out);
        return out;
    }
    spdlog::info("{} is not split yet: splitting it into {} (once)", dir, out);
    run_split(opt, progress, lock);
    return out;
}

} // namespace rabbit
