// SPDX-License-Identifier: Apache-2.0
#include "cli/model_args.h"

#include "cli/progress.h"
#include "common/error.h"
#include "common/file_io.h"
#include "format/gguf.h"
#include "format/gguf_import.h"
#include "format/hf_checkpoint.h"
#include "format/split_model.h"
#include "split/splitter.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace rabbit {

namespace {

// Where unsplit models are split on first use: $RABBIT_CACHE, else $XDG_CACHE_HOME/rabbit,
// else ~/.cache/rabbit.
std::string cache_root() {
    if (const char* c = std::getenv("RABBIT_CACHE"); c && *c) return c;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return join_path(x, "rabbit");
    if (const char* h = std::getenv("HOME"); h && *h) return join_path(join_path(h, ".cache"), "rabbit");
    throw Error(ExitCode::usage, "no cache directory for the split: set RABBIT_CACHE or HOME");
}

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

} // namespace

std::string split_dir_for(const std::string& dir, const GlobalOptions& global) {
    if (is_split_dir(dir)) return dir;
    const HfCheckpoint ck = open_source(dir);
    const SplitPlan plan = plan_split(ck, DTypeChoice::automatic);
    const std::string out = join_path(join_path(cache_root(), "splits"), cache_name_of(dir) + "-" + plan.fingerprint);
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
