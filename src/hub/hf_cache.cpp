// SPDX-License-Identifier: Apache-2.0
#include "hub/hf_cache.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/strings.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <unistd.h>

namespace rabbit {

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string base_name(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Every file under DIR, as paths relative to it (snapshot entries are symlinks to blobs).
void list_files(const std::string& dir, const std::string& prefix, std::vector<std::string>& out) {
    for (const std::string& name : list_directory(dir)) {
        const std::string full = join_path(dir, name);
        if (is_directory(full)) list_files(full, prefix + name + "/", out);
        else out.push_back(prefix + name);
    }
}

// "-00001-of-00003.gguf": a later part of a split GGUF set, which its first part opens.
bool is_later_gguf_part(const std::string& name) {
    const size_t of = name.rfind("-of-");
    if (of == std::string::npos || of < 6) return false;
    return name.compare(of - 6, 6, "-00001") != 0 && name[of - 6] == '-';
}

// Whether QUANT appears in NAME as a whole tag: bounded by '.', '-', '_' or the ends.
bool has_tag(const std::string& name, const std::string& quant) {
    const std::string n = lower(name), q = lower(quant);
    for (size_t at = n.find(q); at != std::string::npos; at = n.find(q, at + 1)) {
        const bool left = at == 0 || n[at - 1] == '.' || n[at - 1] == '-' || n[at - 1] == '_';
        const size_t end = at + q.size();
        const bool right = end == n.size() || n[end] == '.' || n[end] == '-';
        if (left && right) return true;
    }
    return false;
}

} // namespace

std::string hf_hub_cache_dir() {
    if (std::string c = env_or_empty("HF_HUB_CACHE"); !c.empty()) return c;
    if (std::string c = env_or_empty("HUGGINGFACE_HUB_CACHE"); !c.empty()) return c;
    if (std::string h = env_or_empty("HF_HOME"); !h.empty()) return join_path(h, "hub");
    if (std::string x = env_or_empty("XDG_CACHE_HOME"); !x.empty()) return join_path(join_path(x, "huggingface"), "hub");
    if (std::string h = env_or_empty("HOME"); !h.empty()) return join_path(h, ".cache/huggingface/hub");
    throw Error(ExitCode::usage, "no Hugging Face cache directory: set HF_HUB_CACHE, HF_HOME or HOME");
}

HfCacheRepo::HfCacheRepo(std::string cache_dir, const std::string& repo) {
    std::string folder = "models--" + repo;
    const size_t slash = folder.find('/');
    if (slash != std::string::npos) folder.replace(slash, 1, "--");
    dir_ = join_path(cache_dir, folder);
}

std::string HfCacheRepo::blob(const std::string& etag) const { return join_path(join_path(dir_, "blobs"), etag); }

std::string HfCacheRepo::snapshot(const std::string& commit) const {
    return join_path(join_path(dir_, "snapshots"), commit);
}

std::optional<std::string> HfCacheRepo::commit_of(const std::string& rev) const {
    if (is_commit_hash(rev)) return rev;
    const std::string ref = join_path(join_path(dir_, "refs"), rev);
    if (!path_exists(ref) || is_directory(ref)) return std::nullopt;
    std::string commit = read_text_file(ref, 1024);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    if (!is_commit_hash(commit)) throw bad_input(ref, "expected a 40-hex commit hash");
    return commit;
}

void HfCacheRepo::link(const std::string& commit, const std::string& path, const std::string& etag) const {
    const std::string file = join_path(snapshot(commit), path);
    make_directories(file.substr(0, file.rfind('/')));
    // Relative, as huggingface_hub makes it: the cache can move as a whole.
    std::string target = "../../blobs/" + etag;
    for (char c : path)
        if (c == '/') target = "../" + target;
    const std::string tmp = file + ".rabbit-link";
    ::unlink(tmp.c_str());
    if (::symlink(target.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), file.c_str()) != 0)
        throw output_error(file, "cannot link it to its blob: " + errno_text(errno));
}

void HfCacheRepo::write_ref(const std::string& rev, const std::string& commit) const {
    if (rev == commit) return;
    const std::string ref = join_path(join_path(dir_, "refs"), rev);
    make_directories(ref.substr(0, ref.rfind('/')));
    write_file_atomic(ref, commit);
}

bool is_pickle_weight(const std::string& path) {
    for (const char* ext : {".bin", ".pt", ".pth", ".ckpt", ".pkl"})
        if (ends_with(lower(path), ext)) return true;
    return false;
}

bool has_loadable_weights(const std::vector<std::string>& files, const std::string& what) {
    bool pickles = false;
    for (const std::string& f : files) {
        if (ends_with(f, ".safetensors") || ends_with(lower(f), ".gguf")) return true;
        pickles |= is_pickle_weight(f);
    }
    if (pickles)
        throw unsupported(what, "holds only pickle weights (.bin/.pt), no safetensors or GGUF: rabbit refuses them, because "
                                "loading a pickle runs code; use a safetensors or GGUF version of the model");
    return false;
}

std::string choose_gguf(const std::vector<std::string>& files, const std::string& quant, const std::string& what) {
    std::vector<std::string> ggufs, picked;
    for (const std::string& f : files)
        if (ends_with(lower(f), ".gguf") && !is_later_gguf_part(base_name(f))) ggufs.push_back(f);
    for (const std::string& f : ggufs)
        if (quant.empty() || has_tag(base_name(f), quant)) picked.push_back(f);
    if (picked.size() == 1) return picked[0];
    std::string names;
    for (const std::string& f : ggufs) names += (names.empty() ? "" : ", ") + base_name(f);
    if (ggufs.empty()) throw bad_input(what, "holds no .gguf file" + std::string(quant.empty() ? "" : " for :" + quant));
    if (picked.empty()) throw bad_input(what, "has no .gguf file tagged " + quant + " (there are: " + names + ")");
    throw bad_input(what, std::string(quant.empty() ? "holds several .gguf files" : "has several .gguf files tagged " + quant) +
                              ": choose one with ORG/NAME:QUANT (there are: " + names + ")");
}

std::optional<std::string> find_cached_model(const std::string& cache_dir, const HubId& id) {
    const HfCacheRepo repo(cache_dir, id.repo);
    const std::optional<std::string> commit = repo.commit_of(id.revision);
    if (!commit) return std::nullopt;
    const std::string snap = repo.snapshot(*commit);
    if (!is_directory(snap)) return std::nullopt;
    std::vector<std::string> files;
    list_files(snap, "", files);
    const std::string what = id.text() + " (" + snap + ")";
    if (!id.quant.empty()) return join_path(snap, choose_gguf(files, id.quant, what));
    if (path_exists(join_path(snap, "config.json")) || path_exists(join_path(snap, "manifest.json"))) {
        if (path_exists(join_path(snap, "manifest.json")) || has_loadable_weights(files, what)) return snap;
        throw bad_input(what, "holds config.json but no weights");
    }
    return join_path(snap, choose_gguf(files, "", what));
}

} // namespace rabbit
