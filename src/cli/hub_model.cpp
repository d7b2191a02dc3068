// SPDX-License-Identifier: Apache-2.0
#include "cli/hub_model.h"

#include "cli/model_args.h"
#include "cli/progress.h"
#include "cli/pull_progress.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/strings.h"
#include "common/units.h"
#include "format/split_model.h"
#include "hub/hf_cache.h"
#include "hub/pull.h"
#include "split/journal.h"
#include "split/splitter.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <iostream>
#include <unistd.h>

namespace rabbit {

namespace {

std::string repo_name(const HubId& id) {
    std::string n = id.repo;
    n.replace(n.find('/'), 1, "--");
    return n;
}

uint64_t le64(const std::string& b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | uint8_t(b[size_t(i)]);
    return v;
}

// A file of the shard's full size holding its 8-byte length and JSON header, the rest a hole:
// what planning reads (open_hf_checkpoint checks sizes and headers, never the data).
void write_placeholder(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& shard,
                       const std::string& path) {
    if (shard.size < 8) throw bad_input(shard.path, "is too small for a safetensors file");
    const uint64_t n = le64(fetch_bytes(http, cfg, id, commit, shard, 0, 7));
    if (n > (100u << 20) || 8 + n > shard.size)
        throw bad_input(shard.path, "header length " + std::to_string(n) + " does not fit a file of " + std::to_string(shard.size) + " bytes");
    std::string head = fetch_bytes(http, cfg, id, commit, shard, 0, 7 + n);
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw output_error(tmp, "cannot create it: " + errno_text(errno));
    const bool ok = ::write(fd, head.data(), head.size()) == ssize_t(head.size()) && ::ftruncate(fd, off_t(shard.size)) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) throw output_error(path, "cannot write its header: " + errno_text(err));
}

bool deleted_by_journal(const std::optional<SplitJournal>& j, const std::string& file) {
    if (!j) return false;
    return std::any_of(j->deleted.begin(), j->deleted.end(), [&](const DeletedShard& d) { return d.shard.file == file; });
}

void remove_tree(const std::string& dir) {
    for (const std::string& name : list_directory(dir)) {
        const std::string p = join_path(dir, name);
        struct stat st{};
        if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else ::unlink(p.c_str());
    }
    ::rmdir(dir.c_str());
}

} // namespace

std::string hub_split_dir(const HubId& id, const std::string& commit) {
    std::string name = repo_name(id) + "-" + commit.substr(0, 12);
    return join_path(join_path(rabbit_cache_root(), "splits"), name);
}

std::optional<std::string> cached_hub_split(const HubId& id) {
    if (!id.quant.empty()) return std::nullopt; // a GGUF is split by its file's name (split_dir_for)
    const HfCacheRepo repo(hf_hub_cache_dir(), id.repo);
    const std::optional<std::string> commit = repo.commit_of(id.revision);
    if (!commit) return std::nullopt;
    const std::string dir = hub_split_dir(id, *commit);
    if (!is_split_dir(dir)) return std::nullopt;
    return dir;
}

std::string pull_split(const HubId& id, const GlobalOptions& global) {
    const HubConfig cfg = hub_config_from_env();
    HttpClient http(cfg.token);
    PullRequest req;
    req.id = id;
    const PullPlan plan = plan_pull(http, cfg, req);
    const std::string commit = plan.listing.commit;
    const bool safetensors =
        std::any_of(plan.files.begin(), plan.files.end(), [](const HubFile& f) { return ends_with(f.path, ".safetensors"); });
    const bool tty = stderr_is_terminal();
    // On a terminal the split's bar shows the bytes; a line per download would break it.
    ConsolePullProgress downloads(false, !global.quiet && !tty);
    if (!safetensors) { // a GGUF is one file the splitter reads through: fetch it whole, then split it
        const PullResult r = pull(cfg, req, downloads);
        return split_dir_for(r.model_path, global);
    }
    const std::string out = hub_split_dir(id, commit);
    const HfCacheRepo repo(cfg.cache_dir, id.repo);
    if (is_split_dir(out)) {
        repo.write_ref(id.revision, commit);
        spdlog::info("{} is split already in {}", id.text(), out);
        return out;
    }
    const std::string staging = join_path(join_path(rabbit_cache_root(), "downloads"), repo_name(id) + "-" + commit.substr(0, 12));
    make_directories(staging);
    std::string problem;
    const std::optional<SplitJournal> journal = read_journal(out, &problem);
    uint64_t total = 0;
    for (const HubFile& f : plan.files) total += f.size;
    downloads.start(total, total - plan.bytes_missing, plan.files.size());
    std::vector<HubFile> shards;
    for (const HubFile& f : plan.files) {
        const std::string local = join_path(staging, f.path);
        if (ends_with(f.path, ".safetensors")) {
            if (f.path.find('/') != std::string::npos) throw unsupported(id.text(), f.path + ": a shard in a subfolder");
            shards.push_back(f);
            if (!path_exists(local) && !deleted_by_journal(journal, f.path)) write_placeholder(http, cfg, id, commit, f, local);
            continue;
        }
        // The small files go to the Hugging Face cache as `pull` puts them, linked from here.
        fetch_blob(http, cfg, id, commit, f, downloads);
        repo.link(commit, f.path, f.etag);
        downloads.file_done(f.path, false);
        make_directories(local.substr(0, local.rfind('/')));
        ::unlink(local.c_str());
        if (::symlink(join_path(repo.snapshot(commit), f.path).c_str(), local.c_str()) != 0)
            throw output_error(local, "cannot link it: " + errno_text(errno));
    }
    SplitOptions opt;
    opt.model_dir = staging;
    opt.out_dir = out;
    opt.delete_original = true;
    opt.before_reading_shard = [&](const std::string& path) {
        const std::string name = path.substr(path.rfind('/') + 1);
        const auto it = std::find_if(shards.begin(), shards.end(), [&](const HubFile& f) { return f.path == name; });
        RABBIT_CHECK(it != shards.end(), "the splitter asked for a shard the repo does not list: " + name);
        const std::string verified = path + ".verified";
        if (path_exists(verified)) return;
        fetch_file(http, cfg, id, commit, *it, path + ".incomplete", downloads);
        if (::rename((path + ".incomplete").c_str(), path.c_str()) != 0)
            throw output_error(path, "cannot rename the download into place: " + errno_text(errno));
        write_file_atomic(verified, it->etag);
        downloads.file_done(it->path, false);
    };
    ConsoleProgress progress(!global.quiet && tty, false);
    spdlog::info("{}: splitting into {} as its {} shards arrive ({} in all)", id.text(), out, shards.size(),
                 format_bytes(plan.bytes_missing));
    run_split(opt, progress);
    remove_tree(staging);
    ::rmdir(staging.substr(0, staging.rfind('/')).c_str()); // downloads/, when no other model is under way
    repo.write_ref(id.revision, commit);
    return out;
}

std::string fetch_missing_model(const HubId& id, const GlobalOptions& global) {
    const std::string how = "fetch it with `rabbit pull " + id.text() + "`, or pass --yes to download and split it now";
    if (!global.yes) {
        if (::isatty(STDIN_FILENO) != 1 || !stderr_is_terminal())
            throw bad_input(id.text(), "no such path, and the Hugging Face cache (" + hf_hub_cache_dir() + ") holds no copy: " + how);
        std::fprintf(stderr, "%s is not here. Download it from %s and split it (the download is removed as it is split)? [y/N] ",
                     id.text().c_str(), hub_config_from_env().endpoint.c_str());
        std::fflush(stderr);
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "Y" && answer != "yes")
            throw bad_input(id.text(), "not downloaded: " + how);
    }
    return pull_split(id, global);
}

} // namespace rabbit
