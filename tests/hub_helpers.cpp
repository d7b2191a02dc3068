// SPDX-License-Identifier: Apache-2.0
#include "hub_helpers.h"

#include "genmodel.h"
#include "hub/digest.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace rabbit::test {

namespace {

void walk(const std::string& dir, const std::string& prefix, const std::function<void(const std::string&, const struct stat&)>& f) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        const std::string path = dir + "/" + name;
        struct stat st{};
        if (::lstat(path.c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) walk(path, prefix + name + "/", f);
        else f(prefix + name, st);
    }
    ::closedir(d);
}

} // namespace

std::map<std::string, std::string> HubFixture::env() const {
    return {{"HF_ENDPOINT", hub.url()},
            {"HF_HUB_CACHE", hf_cache()},
            {"HF_HOME", tmp / "hf"},
            {"HF_TOKEN", ""},
            {"HF_HUB_OFFLINE", ""},
            {"RABBIT_CACHE", rabbit_cache()},
            {"RABBIT_HUB_BACKOFF_S", "0.01"},
            {"RABBIT_HUB_ATTEMPTS", "4"}};
}

const fakehub::Repo& HubFixture::serve(const std::string& id, const std::string& dir, const std::string& token) {
    fakehub::Repo r = fakehub::repo_from_directory(id, dir);
    r.token = token;
    hub.add_repo(r);
    return served[id] = r;
}

std::string make_served_model(const TempDir& dir, const std::string& name, uint32_t shards, uint64_t seed) {
    GenSpec spec = preset_spec("tiny-qwen2");
    spec.shards = shards;
    spec.seed = seed;
    const std::string path = dir / name;
    generate_model(spec, path);
    return path;
}

std::vector<std::string> cache_problems(const std::string& hf_cache, const fakehub::Repo& repo, bool check_ref) {
    std::vector<std::string> problems;
    std::string folder = "models--" + repo.id;
    folder.replace(folder.find('/'), 1, "--");
    const std::string root = hf_cache + "/" + folder;
    if (check_ref && read_file(root + "/refs/main") != repo.commit) problems.push_back("refs/main is not " + repo.commit);
    for (const auto& f : repo.files) {
        const std::string path = root + "/snapshots/" + repo.commit + "/" + f.path;
        char target[4096];
        const ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
        std::string expected = "../../blobs/" + etag_of(f);
        for (char c : f.path)
            if (c == '/') expected = "../" + expected;
        if (n < 0 || std::string(target, size_t(n)) != expected) problems.push_back(f.path + ": not a symlink to " + expected);
        else if (read_file(path) != f.content) problems.push_back(f.path + ": differs from the served bytes");
    }
    walk(root + "/blobs", "", [&](const std::string& name, const struct stat&) {
        if (name.find(".incomplete") != std::string::npos) problems.push_back("left behind: blobs/" + name);
    });
    return problems;
}

pid_t spawn_rabbit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    std::vector<std::string> argv_s = {rabbit_bin()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::map<std::string, std::string> all;
    for (char** e = environ; *e; ++e) {
        const std::string kv = *e;
        all[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    }
    for (const auto& [k, v] : env) all[k] = v;
    std::vector<std::string> env_s;
    for (const auto& [k, v] : all) env_s.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    for (auto& s : argv_s) argv.push_back(s.data());
    for (auto& s : env_s) envp.push_back(s.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    return pid;
}

bool kill_after_bytes(pid_t pid, const fakehub::FakeHub& hub, uint64_t at_bytes) {
    bool killed = false;
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) return killed;
        if (!killed && hub.body_bytes_served() >= at_bytes) {
            ::kill(pid, SIGKILL);
            killed = true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

uint64_t disk_usage(const std::string& dir) {
    uint64_t total = 0;
    walk(dir, "", [&](const std::string&, const struct stat& st) { total += uint64_t(st.st_blocks) * 512; });
    return total;
}

std::map<std::string, std::string> tree_contents(const std::string& dir) {
    std::map<std::string, std::string> out;
    walk(dir, "", [&](const std::string& name, const struct stat& st) {
        if (S_ISREG(st.st_mode)) out[name] = read_file(dir + "/" + name);
    });
    return out;
}

} // namespace rabbit::test
