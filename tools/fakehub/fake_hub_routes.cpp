// SPDX-License-Identifier: Apache-2.0
// The fake hub's answers: what the real hub's API and file resolution return, for the fields
// rabbit and huggingface_hub read.
#include "fake_hub.h"

#include "hub/digest.h"

namespace rabbit::fakehub {

namespace {

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string url_decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += char(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    size_t at = 0;
    while (at <= path.size()) {
        const size_t slash = path.find('/', at);
        const size_t end = slash == std::string::npos ? path.size() : slash;
        parts.push_back(path.substr(at, end - at));
        if (slash == std::string::npos) break;
        at = slash + 1;
    }
    return parts;
}

std::string join_from(const std::vector<std::string>& parts, size_t from) {
    std::string out;
    for (size_t i = from; i < parts.size(); ++i) out += (i > from ? "/" : "") + parts[i];
    return out;
}

// The pointer file git stores for an LFS file, whose size the API reports as pointerSize.
std::string pointer_text(const RepoFile& f) {
    return "version https://git-lfs.github.com/spec/v1\noid sha256:" + etag_of(f) + "\nsize " + std::to_string(f.content.size()) + "\n";
}
size_t pointer_size(const RepoFile& f) { return pointer_text(f).size(); }
// The git object id: of the pointer for an LFS file.
std::string git_oid(const RepoFile& f) { return git_blob_sha1_hex(f.lfs ? pointer_text(f) : f.content); }

std::string info_json(const Repo& r) {
    std::string s = "{\"id\":" + json_string(r.id) + ",\"modelId\":" + json_string(r.id) + ",\"sha\":\"" + r.commit +
                    "\",\"private\":false,\"gated\":" + (r.token.empty() ? "false" : "\"manual\"") + ",\"siblings\":[";
    for (size_t i = 0; i < r.files.size(); ++i) {
        const RepoFile& f = r.files[i];
        s += std::string(i ? "," : "") + "{\"rfilename\":" + json_string(f.path) + ",\"size\":" + std::to_string(f.content.size()) +
             ",\"blobId\":\"" + git_oid(f) + "\"";
        if (f.lfs)
            s += ",\"lfs\":{\"sha256\":\"" + etag_of(f) + "\",\"size\":" + std::to_string(f.content.size()) +
                 ",\"pointerSize\":" + std::to_string(pointer_size(f)) + "}";
        s += "}";
    }
    return s + "]}";
}

std::string tree_json(const Repo& r) {
    std::string s = "[";
    for (size_t i = 0; i < r.files.size(); ++i) {
        const RepoFile& f = r.files[i];
        s += std::string(i ? "," : "") + "{\"type\":\"file\",\"path\":" + json_string(f.path) +
             ",\"size\":" + std::to_string(f.content.size()) + ",\"oid\":\"" + git_oid(f) + "\"";
        if (f.lfs)
            s += ",\"lfs\":{\"oid\":\"" + etag_of(f) + "\",\"size\":" + std::to_string(f.content.size()) +
                 ",\"pointerSize\":" + std::to_string(pointer_size(f)) + "}";
        s += "}";
    }
    return s + "]";
}

// "bytes=A-B" or "bytes=A-" against SIZE: false when it cannot be satisfied.
bool parse_range(const std::string& h, uint64_t size, uint64_t& first, uint64_t& last) {
    if (h.rfind("bytes=", 0) != 0) return false;
    const size_t dash = h.find('-', 6);
    if (dash == std::string::npos) return false;
    first = std::stoull(h.substr(6, dash - 6));
    last = dash + 1 < h.size() ? std::stoull(h.substr(dash + 1)) : size - 1;
    if (last >= size) last = size - 1;
    return first < size && first <= last;
}

} // namespace

Response FakeHub::route(const std::string& method, const std::string& target,
                                 const std::map<std::string, std::string>& headers) {
    Response r;
    if (method != "GET" && method != "HEAD") return {405, {}, "method not allowed\n"};
    if (int u = faults_.unavailable.load(); u > 0 && faults_.unavailable.compare_exchange_strong(u, u - 1))
        return {503, {}, "unavailable\n"};
    const std::string path = url_decode(target.substr(0, target.find('?')));
    std::vector<std::string> p = split_path(path.substr(1));
    std::lock_guard<std::mutex> lock(mutex_);
    const auto file_response = [&](const RepoFile& f) {
        Response out;
        out.is_file = true;
        out.lfs = f.lfs;
        const auto range = headers.find("range");
        uint64_t first = 0, last = 0;
        if (range != headers.end() && !f.content.empty()) {
            if (!parse_range(range->second, f.content.size(), first, last))
                return Response{416, {{"Content-Range", "bytes */" + std::to_string(f.content.size())}}, ""};
            out.status = 206;
            out.headers.push_back({"Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                                        std::to_string(f.content.size())});
            out.body = f.content.substr(first, last - first + 1);
        } else {
            out.body = f.content;
        }
        return out;
    };
    if (p.size() == 2 && p[0] == "lfs") { // the storage LFS files redirect to (signed URLs on the real hub)
        for (const auto& [id, repo] : repos_)
            for (const RepoFile& f : repo.files)
                if (f.lfs && etag_of(f) == p[1]) return file_response(f);
        return {404, {}, "no such object\n"};
    }
    const bool api = p.size() >= 3 && p[0] == "api" && p[1] == "models";
    if (api) p.erase(p.begin(), p.begin() + 2);
    if (p.size() < 2) return {404, {{"X-Error-Code", "RepoNotFound"}}, "{\"error\":\"Repository not found\"}"};
    const auto it = repos_.find(p[0] + "/" + p[1]);
    if (it == repos_.end()) return {404, {{"X-Error-Code", "RepoNotFound"}}, "{\"error\":\"Repository not found\"}"};
    const Repo& repo = it->second;
    if (!repo.token.empty()) {
        const auto auth = headers.find("authorization");
        if (auth == headers.end()) return {401, {{"X-Error-Code", "GatedRepo"}}, "{\"error\":\"Access to this repo is restricted\"}"};
        if (auth->second != "Bearer " + repo.token) return {403, {{"X-Error-Code", "GatedRepo"}}, "{\"error\":\"no access\"}"};
    }
    const auto known_rev = [&](const std::string& rev) { return rev == "main" || rev == repo.commit; };
    const Response no_rev{404, {{"X-Error-Code", "RevisionNotFound"}}, "{\"error\":\"Invalid rev id\"}"};
    if (api) {
        if (p.size() == 2) return {200, {{"Content-Type", "application/json"}}, info_json(repo)};
        if (p.size() == 4 && p[2] == "revision")
            return known_rev(p[3]) ? Response{200, {{"Content-Type", "application/json"}}, info_json(repo)} : no_rev;
        if (p.size() >= 4 && p[2] == "tree")
            return known_rev(p[3]) ? Response{200, {{"Content-Type", "application/json"}}, tree_json(repo)} : no_rev;
        return {404, {}, "{}"};
    }
    if (p.size() < 5 || p[2] != "resolve") return {404, {}, "not found\n"};
    if (!known_rev(p[3])) return no_rev;
    const std::string file = join_from(p, 4);
    for (const RepoFile& f : repo.files) {
        if (f.path != file) continue;
        const std::vector<std::pair<std::string, std::string>> meta = {
            {"X-Repo-Commit", repo.commit}, {"ETag", "\"" + etag_of(f) + "\""}};
        if (f.lfs) { // redirected to storage, as the hub does, with the LFS metadata beside
            Response out{302, meta, ""};
            out.headers.push_back({"X-Linked-Etag", "\"" + etag_of(f) + "\""});
            out.headers.push_back({"X-Linked-Size", std::to_string(f.content.size())});
            // Another host name for the same server, as the hub's storage is another host: clients
            // keep the token from it, and huggingface_hub reads the metadata here, not there.
            out.headers.push_back({"Location", "http://localhost:" + std::to_string(port_) + "/lfs/" + etag_of(f)});
            return out;
        }
        Response out = file_response(f);
        for (const auto& h : meta) out.headers.push_back(h);
        return out;
    }
    return {404, {{"X-Error-Code", "EntryNotFound"}}, "{\"error\":\"Entry not found\"}"};
}

} // namespace rabbit::fakehub
