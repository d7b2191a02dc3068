// SPDX-License-Identifier: Apache-2.0
#include "hub/hub_api.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/interrupt.h"
#include "common/json_read.h"
#include "common/strings.h"
#include "hub/hf_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fnmatch.h>
#include <thread>

namespace rabbit {

namespace {

std::string trimmed(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
    return s;
}

// huggingface-cli login keeps the token in HF_TOKEN_PATH, else HF_HOME/token.
std::string token_from_file() {
    std::string path = env_or_empty("HF_TOKEN_PATH");
    if (path.empty()) {
        std::string home = env_or_empty("HF_HOME");
        if (home.empty() && !env_or_empty("XDG_CACHE_HOME").empty()) home = join_path(env_or_empty("XDG_CACHE_HOME"), "huggingface");
        if (home.empty() && !env_or_empty("HOME").empty()) home = join_path(env_or_empty("HOME"), ".cache/huggingface");
        if (home.empty()) return "";
        path = join_path(home, "token");
    }
    if (!path_exists(path) || is_directory(path)) return "";
    return trimmed(read_text_file(path, 4096));
}

bool is_weight(const std::string& path) {
    return ends_with(path, ".safetensors") || ends_with(path, ".gguf") || is_pickle_weight(path) ||
           ends_with(path, ".h5") || ends_with(path, ".msgpack") || ends_with(path, ".onnx") || ends_with(path, ".ot");
}

simdjson::dom::element required(simdjson::dom::object o, const char* key, const std::string& what, const std::string& where) {
    const auto e = json_field(o, key);
    if (!e) throw bad_input(what, where + ": expected '" + key + "' (the API's blobs=true listing)");
    return *e;
}

HubFile parse_sibling(simdjson::dom::object s, const std::string& what) {
    HubFile f;
    f.path = json_to_string(required(s, "rfilename", what, "siblings[]"), what, "siblings[].rfilename");
    if (f.path.empty() || f.path.front() == '/' || f.path.find("..") != std::string::npos)
        throw bad_input(what, "file name '" + f.path + "' leaves the repo");
    const auto lfs = json_field(s, "lfs");
    if (lfs && lfs->is_object()) {
        const simdjson::dom::object l = json_to_object(*lfs, what, f.path + ": lfs");
        f.lfs = true;
        f.etag = json_to_string(required(l, "sha256", what, f.path + ": lfs"), what, f.path + ": lfs.sha256");
        f.size = json_to_uint(required(l, "size", what, f.path + ": lfs"), what, f.path + ": lfs.size");
    } else {
        f.etag = json_to_string(required(s, "blobId", what, f.path), what, f.path + ": blobId");
        f.size = json_to_uint(required(s, "size", what, f.path), what, f.path + ": size");
    }
    const size_t hex = f.lfs ? 64 : 40;
    if (f.etag.size() != hex || f.etag.find_first_not_of("0123456789abcdef") != std::string::npos)
        throw bad_input(what, f.path + ": expected a " + std::to_string(hex) + "-hex checksum, got '" + f.etag + "'");
    return f;
}

} // namespace

HubConfig hub_config_from_env() {
    HubConfig c;
    c.endpoint = env_or_empty("HF_ENDPOINT");
    if (c.endpoint.empty()) c.endpoint = "https://huggingface.co";
    while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
    c.token = env_or_empty("HF_TOKEN");
    if (c.token.empty()) c.token = env_or_empty("HUGGING_FACE_HUB_TOKEN");
    if (c.token.empty()) c.token = token_from_file();
    c.cache_dir = hf_hub_cache_dir();
    if (std::string a = env_or_empty("RABBIT_HUB_ATTEMPTS"); !a.empty()) c.attempts = std::max(1, std::atoi(a.c_str()));
    if (std::string b = env_or_empty("RABBIT_HUB_BACKOFF_S"); !b.empty()) c.backoff_s = std::max(0.0, std::atof(b.c_str()));
    return c;
}

std::string url_encode(const std::string& text, bool keep_slash) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) out += char(c);
        else out += std::string("%") + hex[c >> 4] + hex[c & 15];
    }
    return out;
}

std::string resolve_url(const HubConfig& cfg, const HubId& id, const std::string& commit, const std::string& path) {
    return cfg.endpoint + "/" + id.repo + "/resolve/" + commit + "/" + url_encode(path, true);
}

void backoff(const HubConfig& cfg, int attempt) {
    const double s = std::min(30.0, cfg.backoff_s * std::pow(2.0, attempt - 1));
    for (auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
         std::chrono::steady_clock::now() < until;) {
        throw_if_interrupted();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

Error hub_unreachable(const HubConfig& cfg, const TransferFailure& failure) {
    return network_error("cannot reach the hub at " + cfg.endpoint + " (" + failure.text +
                         "): check the network connection, or point HF_ENDPOINT at a mirror");
}

Error hub_status_error(const HubConfig& cfg, const HubId& id, const HttpReply& reply, const std::string& what) {
    const std::string code = std::to_string(reply.status);
    const auto ec = reply.headers.find("x-error-code");
    const std::string hub_code = ec == reply.headers.end() ? "" : ec->second;
    if (reply.status == 401 || reply.status == 403) {
        if (cfg.token.empty())
            return network_error(id.repo + ": the hub refused " + what + " (" + code +
                                 "): the repo is gated or private; pass a token with access in HF_TOKEN (from "
                                 "huggingface.co/settings/tokens, after accepting the model's terms)");
        return network_error(id.repo + ": the hub refused " + what + " (" + code +
                             ") with the token given: it has no access to this gated or private repo");
    }
    if (reply.status == 404 && hub_code == "RevisionNotFound")
        return network_error(id.repo + ": no revision '" + id.revision + "' on " + cfg.endpoint + " (404)");
    if (reply.status == 404)
        return network_error(id.repo + ": no such repo on " + cfg.endpoint + " (404; or it is private: then set HF_TOKEN)");
    return network_error(id.repo + ": the hub answered " + what + " with HTTP " + code);
}

RepoListing fetch_listing(HttpClient& http, const HubConfig& cfg, const HubId& id) {
    // huggingface_hub's switch for "use the cache, never the network": honoured here too.
    if (const std::string off = env_or_empty("HF_HUB_OFFLINE"); !off.empty() && off != "0" && off != "false")
        throw network_error(id.text() + ": HF_HUB_OFFLINE is set, so the hub is not asked; unset it to download");
    const std::string url = cfg.endpoint + "/api/models/" + id.repo + "/revision/" + url_encode(id.revision, false) + "?blobs=true";
    HttpReply reply;
    for (int attempt = 1;; ++attempt) {
        TransferFailure failure;
        reply = http.get(url, failure);
        const bool transient = reply.status == 0 || reply.status == 429 || reply.status >= 500;
        if (!transient || attempt >= cfg.attempts) {
            if (reply.status == 0) throw hub_unreachable(cfg, failure);
            break;
        }
        spdlog::debug("{}: {}; retrying ({} of {})", url, reply.status ? "HTTP " + std::to_string(reply.status) : failure.text,
                     attempt + 1, cfg.attempts);
        backoff(cfg, attempt);
    }
    if (reply.status != 200) throw hub_status_error(cfg, id, reply, "the model info");
    const std::string what = url.substr(0, url.find('?'));
    const JsonDocument doc(reply.body, what);
    const simdjson::dom::object root = doc.root_object();
    RepoListing listing;
    const auto sha = json_field(root, "sha");
    if (!sha) throw bad_input(what, "expected the commit in 'sha'");
    listing.commit = json_to_string(*sha, what, "sha");
    if (!is_commit_hash(listing.commit)) throw bad_input(what, "'sha' is not a 40-hex commit: " + listing.commit);
    const auto siblings = json_field(root, "siblings");
    if (!siblings) throw bad_input(what, "expected the file list in 'siblings'");
    for (simdjson::dom::element s : json_to_array(*siblings, what, "siblings"))
        listing.files.push_back(parse_sibling(json_to_object(s, what, "siblings[]"), what));
    return listing;
}

std::vector<HubFile> select_files(const RepoListing& listing, const HubId& id, const std::vector<std::string>& include) {
    std::vector<std::string> all;
    for (const HubFile& f : listing.files) all.push_back(f.path);
    const std::string what = id.text();
    has_loadable_weights(all, what);
    const bool safetensors = std::any_of(all.begin(), all.end(), [](const std::string& p) { return ends_with(p, ".safetensors"); });
    std::string gguf;
    if (!id.quant.empty() || (!safetensors && include.empty())) gguf = choose_gguf(all, id.quant, what);
    std::vector<HubFile> out;
    for (const HubFile& f : listing.files) {
        bool take = true;
        if (!include.empty()) {
            take = false;
            for (const std::string& g : include) take |= ::fnmatch(g.c_str(), f.path.c_str(), 0) == 0;
        } else if (!gguf.empty()) {
            // The chosen GGUF (and its later parts), no other weights.
            const std::string stem = gguf.size() > 5 ? gguf.substr(0, gguf.size() - 5) : gguf;
            const std::string set = stem.find("-00001-of-") != std::string::npos ? stem.substr(0, stem.find("-00001-of-")) : stem;
            take = !is_weight(f.path) || f.path == gguf || (ends_with(f.path, ".gguf") && f.path.rfind(set + "-", 0) == 0 && set != stem);
        } else if (is_weight(f.path)) {
            // Only the weights rabbit loads: never pickles beside safetensors, nor framework copies.
            take = ends_with(f.path, ".safetensors") || (!safetensors && ends_with(f.path, ".gguf"));
        }
        if (take) out.push_back(f);
    }
    if (out.empty()) throw bad_input(what, "no file of the repo matches --include");
    return out;
}

} // namespace rabbit
