// SPDX-License-Identifier: Apache-2.0
// Splits into one directory take turns: concurrent first `rabbit run`s of an unsplit model,
// concurrent `rabbit split`s into one OUT, and a lock whose holder was killed. These run the
// real binary, several at once, as users would.
#include "common/error.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "helpers.h"
#include "split/splitter.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace rabbit;
using Catch::Contains;

namespace {

// A rabbit started and not yet waited for; its stdout and stderr go to files in `io`.
struct Started {
    pid_t pid = -1;
    std::string out_path, err_path;
};

Started start_rabbit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                     const std::string& io, int n) {
    Started s{-1, io + "/stdout." + std::to_string(n), io + "/stderr." + std::to_string(n)};
    const std::string program = test::rabbit_bin();
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    s.pid = ::fork();
    if (s.pid < 0) FAIL("fork failed");
    if (s.pid == 0) {
        const int out = ::open(s.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open(s.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int in = ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    return s;
}

test::RunResult wait_for(const Started& s) {
    int status = 0;
    while (::waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
    }
    test::RunResult r;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    r.out = test::read_file(s.out_path);
    r.err = test::read_file(s.err_path);
    return r;
}

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// Waits until the file holds `what` (true), or 60 s pass (false).
bool wait_for_text(const std::string& path, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
        if (test::exists(path) && test::read_file(path).find(what) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

// A model of a few MiB, so that a split lasts long enough for others to arrive during it.
std::string make_lock_model(const test::TempDir& dir) {
    GenSpec spec = preset_spec("tiny-llama3");
    spec.shards = 2;
    spec.dtype = DType::bf16;
    spec.seed = 7;
    const std::string path = dir / "model";
    generate_model(spec, path);
    return path;
}

const char* const k_waiting = "another rabbit is splitting into ";

} // namespace

TEST_CASE("concurrent first runs of an unsplit model split it once and all use it", "[split][lock]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    test::copy_dir(test::tinystories_dir(), dir / "tinystories");
    const std::vector<std::string> args = {"run", "-m", dir / "tinystories", "-p", "Once upon a time", "-n", "12"};
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round);
        const std::string cache = dir / ("cache" + std::to_string(round));
        std::vector<Started> started;
        for (int i = 0; i < 4; ++i) started.push_back(start_rabbit(args, {{"RABBIT_CACHE", cache}}, dir.path(), i));
        std::vector<test::RunResult> results;
        for (const auto& s : started) results.push_back(wait_for(s));
        size_t splitting = 0;
        for (const auto& r : results) {
            INFO("stderr: " << r.err);
            REQUIRE(r.exit_code == 0);
            REQUIRE(!r.out.empty());
            REQUIRE(r.out == results[0].out);
            splitting += count(r.err, "is not split yet: splitting it into");
            // The one that split says nothing of waiting; the others say it at most once.
            REQUIRE(count(r.err, k_waiting) <= 1);
        }
        REQUIRE(splitting == 1);
        // One split, and no lock file left beside it.
        const std::vector<std::string> splits = test::list_files(cache + "/splits");
        REQUIRE(splits.size() == 1);
        REQUIRE(is_split_dir(cache + "/splits/" + splits[0]));
    }
}

TEST_CASE("two rabbit split into one OUT: one writes and the other finds it complete", "[split][lock]") {
    test::TempDir dir;
    const std::string src = make_lock_model(dir);
    const std::string out = dir / "out";
    for (int round = 0; round < 3; ++round) {
        INFO("round " << round);
        test::remove_path(out);
        const std::vector<std::string> args = {"split", src, "-o", out};
        const Started a = start_rabbit(args, {}, dir.path(), 0), b = start_rabbit(args, {}, dir.path(), 1);
        const test::RunResult ra = wait_for(a), rb = wait_for(b);
        INFO("first: " << ra.err << "\nsecond: " << rb.err);
        REQUIRE(ra.exit_code == 0);
        REQUIRE(rb.exit_code == 0);
        REQUIRE(count(ra.err + rb.err, "already holds this split") == 1);
        REQUIRE(count(ra.err + rb.err, "split " + src + " into " + out) == 1);
        SplitModel s = SplitModel::open(out);
        for (const auto& u : s.manifest().units) s.verify_checksum(u);
        REQUIRE(!test::exists(split_lock_path(out)));
    }
}

TEST_CASE("a killed lock holder is no deadlock: the next split proceeds", "[split][lock]") {
    test::TempDir dir;
    const std::string src = make_lock_model(dir);
    const std::string out = dir / "out";
    const std::string lock = split_lock_path(out);
    REQUIRE(lock == out + ".lock");

    SECTION("killed while another waits for it") {
        // A holder that takes the lock as rabbit does and then sleeps; its child side uses
        // only system calls (the test process may have threads).
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        const pid_t holder = ::fork();
        REQUIRE(holder >= 0);
        if (holder == 0) {
            const int fd = ::open(lock.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0 || ::flock(fd, LOCK_EX) != 0) ::_exit(1);
            const char c = 1;
            if (::write(ready[1], &c, 1) != 1) ::_exit(1);
            for (;;) ::pause();
        }
        ::close(ready[1]);
        char c = 0;
        REQUIRE(::read(ready[0], &c, 1) == 1);
        ::close(ready[0]);

        const Started waiter = start_rabbit({"split", src, "-o", out}, {}, dir.path(), 0);
        const bool waiting = wait_for_text(waiter.err_path, k_waiting);
        int status = 0;
        const bool still_running = ::waitpid(waiter.pid, &status, WNOHANG) == 0;
        ::kill(holder, SIGKILL);
        ::waitpid(holder, &status, 0);
        const test::RunResult r = wait_for(waiter);
        INFO("stderr: " << r.err);
        REQUIRE(waiting);
        REQUIRE(still_running);
        REQUIRE_THAT(r.err, Contains(std::string(k_waiting) + out + ": waiting for it to finish (lock " + lock + ")"));
        REQUIRE(r.exit_code == 0);
        REQUIRE_THAT(r.err, Contains("split " + src + " into " + out));
        REQUIRE(!test::exists(lock));
        REQUIRE_NOTHROW(SplitModel::open(out));
    }

    SECTION("killed mid-split: the next run resumes from its journal") {
        const test::RunResult killed = test::run_rabbit({"-q", "split", src, "-o", out}, {{"RABBIT_FAULT", "kill-after=140000"}});
        REQUIRE(killed.signal == 9);
        REQUIRE(test::exists(lock)); // the file stays; its lock died with the process
        REQUIRE(!test::exists(out + "/manifest.json"));
        // Two at once after the kill: one resumes, the other finds the split complete.
        const Started a = start_rabbit({"split", src, "-o", out}, {}, dir.path(), 0);
        const Started b = start_rabbit({"split", src, "-o", out}, {}, dir.path(), 1);
        const test::RunResult ra = wait_for(a), rb = wait_for(b);
        INFO("first: " << ra.err << "\nsecond: " << rb.err);
        REQUIRE(ra.exit_code == 0);
        REQUIRE(rb.exit_code == 0);
        REQUIRE(count(ra.err + rb.err, "kept from an earlier run") == 1);
        REQUIRE(count(ra.err + rb.err, "already holds this split") == 1);
        REQUIRE(!test::exists(lock));
        SplitModel s = SplitModel::open(out);
        for (const auto& u : s.manifest().units) s.verify_checksum(u);
    }
}

TEST_CASE("a lock that cannot be taken is one error naming the lock file", "[split][lock][bad-input]") {
    test::TempDir dir;
    GenSpec spec = preset_spec("tiny-qwen2");
    spec.seed = 5;
    const std::string src = dir / "model";
    generate_model(spec, src);
    auto expect_lock_error = [&](const std::string& out, const std::string& what) {
        const test::RunResult r = test::run_rabbit({"-q", "split", src, "-o", out});
        INFO("stderr: " << r.err);
        REQUIRE(r.exit_code == int(ExitCode::output));
        REQUIRE(r.err == "error: " + out + ".lock: cannot create the lock file: " + what + "\n");
        REQUIRE(!test::exists(out));
    };
    // Where a directory holds the lock file's name.
    REQUIRE(::mkdir((dir / "taken.lock").c_str(), 0755) == 0);
    expect_lock_error(dir / "taken", "Is a directory (EISDIR)");
    // In a read-only parent (root may write anywhere).
    if (::geteuid() != 0) {
        REQUIRE(::mkdir((dir / "ro").c_str(), 0555) == 0);
        expect_lock_error(dir / "ro/out", "Permission denied (EACCES)");
        ::chmod((dir / "ro").c_str(), 0755);
    }
}
