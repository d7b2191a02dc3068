// SPDX-License-Identifier: Apache-2.0
// The tree's layering, as docs/ARCHITECTURE.md states it: each folder of src/ includes only its
// own folder and the folders below it, and the kernels only themselves. A new include that
// points upward fails here, naming the file, the line and the two folders.
#include "helpers.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <dirent.h>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace rabbit::test {
namespace {

// Lowest first. A folder may include any folder at or before its own place.
const std::vector<std::string> k_layers = {"common", "model",  "format",  "tokenizer", "split", "hub",
                                           "engine", "stream", "backend", "bench",     "cli"};

// The kernels' own headers, which src/ names without a folder (the include path has kernels/).
// Only the CUDA backend launches kernels; the planner reads their workspace sizes.
bool may_include_kernels(const std::string& folder, const std::string& header) {
    return folder == "backend/cuda" || (folder == "engine" && header == "workspace.h");
}

struct Include {
    std::string file;
    int line;
    std::string target; // as written between the quotes
};

bool is_dir(const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void list_sources(const std::string& dir, std::vector<std::string>& out) {
    DIR* d = ::opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        const std::string path = dir + "/" + name;
        if (is_dir(path)) {
            list_sources(path, out);
            continue;
        }
        for (const char* ext : {".h", ".cpp", ".cu", ".cuh"})
            if (name.size() > std::string(ext).size() && name.compare(name.size() - std::string(ext).size(), std::string::npos, ext) == 0)
                out.push_back(path);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
}

std::vector<Include> includes_of(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    std::vector<Include> out;
    std::string text;
    for (int n = 1; std::getline(in, text); ++n) {
        const auto start = text.find_first_not_of(" \t");
        if (start == std::string::npos || text.compare(start, 10, "#include \"") != 0) continue;
        const auto open = start + 10;
        const auto close = text.find('"', open);
        if (close == std::string::npos) continue;
        out.push_back({path, n, text.substr(open, close - open)});
    }
    return out;
}

// "src/backend/cuda/gemm.cpp" -> "backend/cuda"; the layer is the first component.
std::string folder_of(const std::string& relative) {
    const auto slash = relative.rfind('/');
    return slash == std::string::npos ? "" : relative.substr(0, slash);
}

int layer_of(const std::string& folder) {
    const std::string top = folder.substr(0, folder.find('/'));
    const auto it = std::find(k_layers.begin(), k_layers.end(), top);
    return it == k_layers.end() ? -1 : int(it - k_layers.begin());
}

} // namespace

TEST_CASE("src/ includes only downward, and only the CUDA backend includes the kernels", "[layout]") {
    const std::string root = source_dir();
    std::vector<std::string> files;
    list_sources(root + "/src", files);
    REQUIRE(files.size() > 50);
    std::vector<std::string> problems;
    for (const auto& path : files) {
        const std::string rel = path.substr(root.size() + 5); // past "<root>/src/"
        const std::string folder = folder_of(rel);
        const int layer = layer_of(folder);
        if (layer < 0) {
            problems.push_back("src/" + rel + ": folder '" + folder + "' has no place in the layering");
            continue;
        }
        for (const auto& inc : includes_of(path)) {
            const std::string where = "src/" + rel + ":" + std::to_string(inc.line) + " includes \"" + inc.target + "\"";
            const std::string target_folder = folder_of(inc.target);
            if (target_folder.empty()) {
                if (is_dir(root + "/kernels") && std::ifstream(root + "/kernels/" + inc.target).good()) {
                    if (!may_include_kernels(folder, inc.target)) problems.push_back(where + ": only backend/cuda launches kernels");
                } else {
                    problems.push_back(where + ": not a header of src/ or kernels/");
                }
                continue;
            }
            const int target_layer = layer_of(target_folder);
            if (target_layer < 0) problems.push_back(where + ": '" + target_folder + "' is not a folder of src/");
            else if (target_layer > layer)
                problems.push_back(where + ": " + folder + " sits below " + target_folder);
            // The two backends are siblings: neither builds on the other, except that the CUDA
            // engine attends a KV cache in host memory with the CPU's kernel, where it lives.
            else if (target_layer == layer && folder != target_folder && k_layers[size_t(layer)] == "backend" &&
                     !(folder == "backend/cuda" && inc.target == "backend/cpu/kv_attention.h"))
                problems.push_back(where + ": the CPU and CUDA backends do not include each other");
        }
    }
    std::vector<std::string> kernel_files;
    list_sources(root + "/kernels", kernel_files);
    for (const auto& path : kernel_files)
        for (const auto& inc : includes_of(path))
            if (inc.target.find('/') != std::string::npos)
                problems.push_back(path.substr(root.size() + 1) + ":" + std::to_string(inc.line) + " includes \"" + inc.target +
                                   "\": kernels include only kernels/ and CUDA");
    for (const auto& p : problems) UNSCOPED_INFO(p);
    CHECK(problems.empty());
}

} // namespace rabbit::test
