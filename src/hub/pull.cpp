// SPDX-License-Identifier: Apache-2.0
#include "hub/pull.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/interrupt.h"
#include "common/units.h"
#include "hub/digest.h"
#include "hub/hf_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rabbit {

namespace {

bool blob_complete(const std::string& blob, uint64_t size) {
    struct stat st{};
    return ::stat(blob.c_str(), &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) == size;
}

uint64_t size_or_zero(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

// Checks PART against FILE's published checksum; deletes it on a mismatch.
void verify_download(const std::string& part, const HubFile& file) {
    const uint64_t got = size_or_zero(part);
    std::string actual;
    if (got == file.size) actual = file.lfs ? sha256_file(part) : git_blob_sha1_file(part);
    if (got == file.size && actual == file.etag) return;
    ::unlink(part.c_str());
    const std::string expected = file.lfs ? "sha256 " + file.etag : "git blob sha1 (etag) " + file.etag;
    if (got != file.size)
        throw bad_input(file.path, "downloaded " + std::to_string(got) + " bytes, expected " + std::to_string(file.size) +
                                       "; the download was deleted: run again to fetch it again");
    throw bad_input(file.path, "checksum mismatch: expected " + expected + ", got " + actual +
                                   "; the download was deleted: run again to fetch it again");
}

// One attempt at the bytes of PART from its current size on. Returns the reply; bytes that
// arrived are in PART (and counted in ADDED) whatever happened.
HttpReply attempt_range(HttpClient& http, const std::string& url, const std::string& part, uint64_t offset,
                        PullProgress& progress, uint64_t& added, TransferFailure& failure) {
    const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw output_error(part, "cannot create it: " + errno_text(errno));
    if (::ftruncate(fd, off_t(offset)) != 0 || ::lseek(fd, off_t(offset), SEEK_SET) < 0) {
        const int err = errno;
        ::close(fd);
        throw output_error(part, "cannot resize it: " + errno_text(err));
    }
    const HttpReply reply = http.fetch_range(url, offset, fd,
                                             [&](uint64_t n) {
                                                 added += n;
                                                 progress.advance(n);
                                                 return !interrupted();
                                             },
                                             failure);
    if (::close(fd) != 0 && failure.kind == TransferFailure::Kind::none) {
        failure.kind = TransferFailure::Kind::write_error;
        failure.write_errno = errno;
    }
    return reply;
}

} // namespace

void fetch_file(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& file,
                const std::string& part, PullProgress& progress) {
    const std::string url = resolve_url(cfg, id, commit, file.path);
    uint64_t offset = size_or_zero(part);
    if (offset > file.size) offset = 0; // not a prefix of this file: start again
    progress.file_start(file.path, file.size, offset);
    for (int attempt = 1; offset < file.size; ++attempt) {
        uint64_t added = 0;
        TransferFailure failure;
        const HttpReply reply = attempt_range(http, url, part, offset, progress, added, failure);
        if (failure.kind == TransferFailure::Kind::write_error)
            throw output_error(part, "cannot write the download: " + errno_text(failure.write_errno) +
                                         "; free some space and run again to resume");
        if (failure.kind == TransferFailure::Kind::aborted || interrupted()) {
            throw_if_interrupted();
            throw Error(ExitCode::interrupted, file.path + ": download interrupted; run again to resume");
        }
        offset = size_or_zero(part);
        if (reply.status == 416) offset = 0; // the partial file is not one the server knows
        const bool ok = reply.status == 200 || reply.status == 206;
        if (reply.status != 0 && !ok && reply.status != 416 && reply.status != 429 && reply.status < 500)
            throw hub_status_error(cfg, id, reply, file.path);
        if (ok && offset >= file.size) break;
        // Progress resets the count: a long download survives any number of drops that each move it on.
        if (added > 0) attempt = 1;
        const std::string why = reply.status ? "HTTP " + std::to_string(reply.status)
                                             : (ok ? "the transfer ended early" : failure.text);
        if (attempt >= cfg.attempts) {
            if (failure.kind == TransferFailure::Kind::no_network) throw hub_unreachable(cfg, failure);
            throw network_error(file.path + ": the download kept failing (" + why + ") after " + std::to_string(cfg.attempts) +
                                " attempts; run again to resume from " + format_bytes(offset));
        }
        progress.retry(file.path, why);
        backoff(cfg, attempt);
    }
    verify_download(part, file);
}

std::string fetch_bytes(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& file,
                        uint64_t first, uint64_t last) {
    const std::string url = resolve_url(cfg, id, commit, file.path);
    for (int attempt = 1;; ++attempt) {
        TransferFailure failure;
        HttpReply reply = http.get_range(url, first, last, failure);
        if (reply.status == 206 && reply.body.size() == last - first + 1) return reply.body;
        if (reply.status == 200 && reply.body.size() > last) return reply.body.substr(first, last - first + 1);
        if (reply.status != 0 && reply.status < 500 && reply.status != 429 && reply.status != 200 && reply.status != 206)
            throw hub_status_error(cfg, id, reply, file.path);
        if (failure.kind == TransferFailure::Kind::aborted) throw_if_interrupted();
        if (attempt >= cfg.attempts) {
            if (failure.kind == TransferFailure::Kind::no_network) throw hub_unreachable(cfg, failure);
            throw network_error(file.path + ": bytes " + std::to_string(first) + "-" + std::to_string(last) + " kept failing (" +
                                (reply.status ? "HTTP " + std::to_string(reply.status) : failure.text) + ")");
        }
        backoff(cfg, attempt);
    }
}

void fetch_blob(HttpClient& http, const HubConfig& cfg, const HubId& id, const std::string& commit, const HubFile& file,
                PullProgress& progress) {
    const HfCacheRepo repo(cfg.cache_dir, id.repo);
    const std::string blob = repo.blob(file.etag);
    if (blob_complete(blob, file.size)) return;
    make_directories(join_path(repo.dir(), "blobs"));
    const std::string part = blob + ".incomplete";
    fetch_file(http, cfg, id, commit, file, part, progress);
    if (::rename(part.c_str(), blob.c_str()) != 0) throw output_error(blob, "cannot rename the download into place: " + errno_text(errno));
}

PullPlan plan_pull(HttpClient& http, const HubConfig& cfg, const PullRequest& req) {
    PullPlan plan;
    plan.listing = fetch_listing(http, cfg, req.id);
    plan.files = select_files(plan.listing, req.id, req.include);
    if (req.small_files_first)
        std::stable_sort(plan.files.begin(), plan.files.end(), [](const HubFile& a, const HubFile& b) { return a.lfs < b.lfs; });
    const HfCacheRepo repo(cfg.cache_dir, req.id.repo);
    for (const HubFile& f : plan.files)
        if (!blob_complete(repo.blob(f.etag), f.size)) plan.bytes_missing += f.size - std::min(f.size, size_or_zero(repo.blob(f.etag) + ".incomplete"));
    return plan;
}

PullResult pull(const HubConfig& cfg, const PullRequest& req, PullProgress& progress) {
    HttpClient http(cfg.token);
    const PullPlan plan = plan_pull(http, cfg, req);
    const HfCacheRepo repo(cfg.cache_dir, req.id.repo);
    make_directories(repo.dir());
    if (const uint64_t free = free_space(repo.dir()); plan.bytes_missing > free)
        throw output_error(repo.dir(), "the download needs " + format_bytes(plan.bytes_missing) + " and only " + format_bytes(free) +
                                           " is free; free some space (or set HF_HUB_CACHE to another disk)");
    PullResult r;
    r.commit = plan.listing.commit;
    r.snapshot = repo.snapshot(r.commit);
    r.files = plan.files;
    uint64_t total = 0, cached = 0;
    for (const HubFile& f : plan.files) total += f.size;
    cached = total - plan.bytes_missing;
    progress.start(total, cached, plan.files.size());
    for (const HubFile& f : plan.files) {
        throw_if_interrupted();
        const bool was_cached = blob_complete(repo.blob(f.etag), f.size);
        if (was_cached) ++r.files_cached;
        else fetch_blob(http, cfg, req.id, r.commit, f, progress);
        repo.link(r.commit, f.path, f.etag);
        progress.file_done(f.path, was_cached);
        if (req.on_file) req.on_file(f, join_path(r.snapshot, f.path));
    }
    r.bytes_downloaded = plan.bytes_missing;
    // The ref last: until every file is in, `-m ORG/NAME` does not take the snapshot for a model.
    repo.write_ref(req.id.revision, r.commit);
    progress.finish();
    r.model_path = r.snapshot;
    if (!req.id.quant.empty()) {
        std::vector<std::string> paths;
        for (const HubFile& f : plan.files) paths.push_back(f.path);
        r.model_path = join_path(r.snapshot, choose_gguf(paths, req.id.quant, req.id.text()));
    }
    return r;
}

} // namespace rabbit
