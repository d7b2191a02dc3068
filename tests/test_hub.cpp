// SPDX-License-Identifier: Apache-2.0
// Hub ids, the Hugging Face cache layout and its resolution, the checksums, and the fake hub's
// answers; `rabbit pull` itself is in test_hub_pull.cpp.
#include "hub_helpers.h"

#include "common/file_io.h"
#include "hub/digest.h"
#include "hub/hf_cache.h"
#include "hub/hub_id.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace rabbit::test {

using Catch::Contains;

TEST_CASE("hub ids: ORG/NAME, @REVISION and :QUANT; paths are not ids", "[hub]") {
    const auto a = parse_hub_id("Qwen/Qwen2.5-0.5B-Instruct");
    REQUIRE(a);
    CHECK(a->repo == "Qwen/Qwen2.5-0.5B-Instruct");
    CHECK(a->revision == "main");
    CHECK(a->quant.empty());
    const auto b = parse_hub_id("bartowski/Qwen2.5-7B-Instruct-GGUF@v1.0:Q4_K_M");
    REQUIRE(b);
    CHECK(b->repo == "bartowski/Qwen2.5-7B-Instruct-GGUF");
    CHECK(b->revision == "v1.0");
    CHECK(b->quant == "Q4_K_M");
    CHECK(b->text() == "bartowski/Qwen2.5-7B-Instruct-GGUF@v1.0:Q4_K_M");
    for (const char* not_id : {"model", "./a/b", "/abs/dir", "a/b/c", "../x", "a/", "/b", "a/b.gguf", "org/-x", "a b/c", "a/b@", "a/b:"})
        CHECK_FALSE(parse_hub_id(not_id));
    CHECK(is_commit_hash(std::string(40, 'a')));
    CHECK_FALSE(is_commit_hash("main"));
}

TEST_CASE("sha256 and git blob sha1 match known vectors", "[hub]") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    // `git hash-object` of an empty file and of "hello\n"
    CHECK(git_blob_sha1_hex("") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    CHECK(git_blob_sha1_hex("hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a");
    TempDir dir;
    std::string big(3u << 20, 'x');
    for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 7919 % 251);
    std::ofstream(dir / "f", std::ios::binary) << big;
    CHECK(sha256_file(dir / "f") == sha256_hex(big));
    CHECK(git_blob_sha1_file(dir / "f") == git_blob_sha1_hex(big));
}

TEST_CASE("a GGUF is chosen by its quant tag; none or several is an error naming the choices", "[hub]") {
    const std::vector<std::string> files = {"README.md", "m-Q4_K_M.gguf", "m-Q8_0.gguf", "m-Q4_K_S.gguf",
                                            "big-Q2_K-00001-of-00002.gguf", "big-Q2_K-00002-of-00002.gguf"};
    CHECK(choose_gguf(files, "Q4_K_M", "r") == "m-Q4_K_M.gguf");
    CHECK(choose_gguf(files, "q8_0", "r") == "m-Q8_0.gguf");
    CHECK(choose_gguf(files, "Q2_K", "r") == "big-Q2_K-00001-of-00002.gguf");
    CHECK_THROWS_WITH(choose_gguf(files, "Q5_K_M", "r"), Contains("no .gguf file tagged Q5_K_M") && Contains("m-Q8_0.gguf"));
    CHECK_THROWS_WITH(choose_gguf(files, "", "r"), Contains("several"));
    CHECK(choose_gguf({"only.gguf"}, "", "r") == "only.gguf");
    CHECK_THROWS_WITH(has_loadable_weights({"config.json", "pytorch_model.bin"}, "r"), Contains("pickle"));
    CHECK(has_loadable_weights({"model.safetensors", "pytorch_model.bin"}, "r"));
}

TEST_CASE("the cache directory follows huggingface_hub's variables", "[hub]") {
    const auto with = [](std::map<std::string, std::string> vars) {
        std::map<std::string, std::string> saved;
        for (const char* k : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"}) {
            const char* v = std::getenv(k);
            saved[k] = v ? v : "";
            if (vars.count(k)) ::setenv(k, vars[k].c_str(), 1);
            else ::unsetenv(k);
        }
        const std::string dir = hf_hub_cache_dir();
        for (const auto& [k, v] : saved)
            if (v.empty()) ::unsetenv(k.c_str());
            else ::setenv(k.c_str(), v.c_str(), 1);
        return dir;
    };
    CHECK(with({{"HF_HUB_CACHE", "/c"}, {"HF_HOME", "/h"}}) == "/c");
    CHECK(with({{"HF_HOME", "/h"}, {"HOME", "/home/u"}}) == "/h/hub");
    CHECK(with({{"XDG_CACHE_HOME", "/x"}}) == "/x/huggingface/hub");
    CHECK(with({{"HOME", "/home/u"}}) == "/home/u/.cache/huggingface/hub");
}

// A cache laid out by hand as huggingface_hub lays it out: -m ORG/NAME finds the snapshot
// through refs/main, a commit directly, and a local path of the same name wins.
TEST_CASE("a hub id (-m ORG/NAME) resolves from a huggingface_hub cache; a local path wins", "[hub][cli]") {
    TempDir tmp;
    const std::string model = make_served_model(tmp, "src", 1);
    const std::string commit(40, 'c');
    const std::string repo = tmp / "hub/models--acme--tiny";
    const HfCacheRepo cache(tmp / "hub", "acme/tiny");
    REQUIRE(cache.dir() == repo);
    make_directories(repo + "/blobs");
    for (const std::string name : {"config.json", "generation_config.json", "model.safetensors"}) {
        const std::string data = read_file(model + "/" + name);
        const std::string etag = sha256_hex(data);
        std::ofstream(cache.blob(etag), std::ios::binary) << data;
        cache.link(commit, name, etag);
    }
    cache.write_ref("main", commit);
    const std::map<std::string, std::string> env = {{"HF_HUB_CACHE", tmp / "hub"}, {"RABBIT_CACHE", tmp / "rc"}};
    const RunResult r = run_rabbit({"inspect", "acme/tiny", "--json"}, env);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Contains("qwen2") || Contains("Qwen2"));
    CHECK(run_rabbit({"inspect", "acme/tiny@" + commit}, env).exit_code == 0);
    const RunResult missing = run_rabbit({"inspect", "acme/other"}, env);
    CHECK(missing.exit_code == 3);
    CHECK_THAT(missing.err, Contains("rabbit pull acme/other"));
    const RunResult no_rev = run_rabbit({"inspect", "acme/tiny@v2"}, env);
    CHECK(no_rev.exit_code == 3);
    // A directory acme/tiny under the working directory is a path, not the repo.
    make_directories(tmp / "cwd/acme");
    const RunResult local = run_program("/bin/sh", {"-c", "cd " + tmp / "cwd" + " && mkdir -p acme/tiny && exec " + rabbit_bin() + " inspect acme/tiny"}, env);
    CHECK(local.exit_code == 3);
    CHECK_THAT(local.err, Contains("acme/tiny: holds neither manifest.json"));
}

} // namespace rabbit::test
