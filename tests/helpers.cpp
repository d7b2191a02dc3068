// SPDX-License-Identifier: Apache-2.0
#include "helpers.h"

#include "common/file_io.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace rabbit::test {

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/rabbit-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
}

TempDir::~TempDir() { remove_path(path_); }

void remove_path(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        for (const auto& n : list_files(path)) remove_path(path + "/" + n);
        ::rmdir(path.c_str());
    } else {
        ::unlink(path.c_str());
    }
}

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env, const std::string& stdin_text) {
    TempDir io;
    const std::string out_path = io / "stdout", err_path = io / "stderr", in_path = io / "stdin";
    write_file(in_path, stdin_text);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = ::open(in_path.c_str(), O_RDONLY);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(program.c_str()));
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    int status = 0;
    struct rusage usage = {};
    while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    RunResult r;
    r.max_rss_kib = usage.ru_maxrss;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

RunResult run_rabbit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                     const std::string& stdin_text) {
    return run_program(rabbit_bin(), args, env, stdin_text);
}

namespace {

std::string from_env(const char* name, const std::string& built) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : built;
}

} // namespace

std::string rabbit_bin() {
    const char* dir = std::getenv("RABBIT_TEST_BIN_DIR");
    return dir && *dir ? std::string(dir) + "/rabbit" : std::string(RABBIT_BIN);
}
std::string genmodel_bin() {
    const char* dir = std::getenv("RABBIT_TEST_BIN_DIR");
    return dir && *dir ? std::string(dir) + "/rabbit-genmodel" : std::string(RABBIT_GENMODEL_BIN);
}
std::string source_dir() { return from_env("RABBIT_TEST_SOURCE_DIR", RABBIT_SOURCE_DIR); }
std::string shared_dir() { return from_env("RABBIT_TEST_SHARED_DIR", RABBIT_SHARED_DIR); }
std::string tinystories_dir() { return shared_dir() + "/models/tinystories-656k"; }

bool have_shared() {
    if (exists(tinystories_dir() + "/model.safetensors") && exists(shared_dir() + "/tokenizers/qwen3/tokenizer.json"))
        return true;
    WARN("SKIPPED: needs the shared models and tokenizers in " << shared_dir()
                                                                 << " (not in this clone; RABBIT_TEST_SHARED_DIR names another place)");
    return false;
}

std::string smollm2_gguf() {
    if (const char* p = std::getenv("RABBIT_SMOLLM2"); p && *p) return p;
    std::string cache;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
        cache = x;
    else if (const char* h = std::getenv("HOME"); h && *h)
        cache = std::string(h) + "/.cache";
    return cache + "/rabbit/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
}

bool have_smollm2() {
    if (exists(smollm2_gguf())) return true;
    WARN("SKIPPED: needs SmolLM2-135M-Instruct's GGUF at " << smollm2_gguf()
                                                            << " (scripts/setup.sh fetches it; RABBIT_SMOLLM2 names another file)");
    return false;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const std::string& path, const std::string& contents) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << contents;
}

void copy_dir(const std::string& from, const std::string& to) {
    ::mkdir(to.c_str(), 0755);
    for (const auto& n : list_files(from)) write_file(to + "/" + n, read_file(from + "/" + n));
}

std::vector<std::string> list_files(const std::string& dir) {
    return is_directory(dir) ? list_directory(dir) : std::vector<std::string>{};
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

FileId file_id(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
    return {uint64_t(st.st_ino), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

// ---- inputs and comparisons ------------------------------------------------------------------

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

Tol tol_for(DType type) { // see helpers.h
    switch (type) {
    case DType::f16: return {2e-3, 2e-3, true};
    case DType::bf16: return {1e-2, 1e-2, true};
    default: return {1e-5, 1e-4, false};
    }
}

namespace {

template <typename W>
Comparison compare_values(const std::vector<float>& got, const std::vector<W>& want, Tol tol) {
    Comparison c;
    if (got.size() != want.size()) {
        c.size_mismatch = true;
        c.bad = std::max(got.size(), want.size());
        c.worst = INFINITY;
        return c;
    }
    double atol = tol.atol;
    if (tol.atol_of_rms) {
        double ss = 0;
        for (W w : want) ss += double(w) * double(w);
        atol *= want.empty() ? 0.0 : std::sqrt(ss / double(want.size()));
    }
    for (size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = double(want[i]);
        const double ratio = std::fabs(g - w) / (atol + tol.rtol * std::fabs(w));
        // !(ratio <= 1) fails a NaN; a non-finite side fails even where both are the same infinity.
        if (!(ratio <= 1.0) || !std::isfinite(g) || !std::isfinite(w)) {
            if (c.bad++ == 0) c.first_bad = i;
        }
        c.worst = std::isfinite(g) && std::isfinite(w) ? std::max(c.worst, ratio) : INFINITY; // inf stays
    }
    return c;
}

} // namespace

std::string Comparison::what() const {
    if (size_mismatch) return "the sizes differ";
    return std::to_string(bad) + " elements off; first: element " + std::to_string(first_bad);
}

Comparison compare(const std::vector<float>& got, const std::vector<double>& want, Tol tol) {
    return compare_values(got, want, tol);
}

void require_close(const std::vector<float>& got, const std::vector<double>& want, Tol tol) {
    const Comparison c = compare(got, want, tol);
    INFO(c.what() << " of " << got.size() << ": "
                  << (c.bad && !c.size_mismatch ? got[c.first_bad] : 0.0f) << " vs "
                  << (c.bad && !c.size_mismatch ? want[c.first_bad] : 0.0));
    REQUIRE(c.bad == 0);
}

void require_same(const std::vector<float>& got, const std::vector<float>& want) {
    REQUIRE(got.size() == want.size());
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const bool same = std::isnan(want[i]) ? std::isnan(got[i])
                                              : got[i] == want[i] && std::signbit(got[i]) == std::signbit(want[i]);
        if (!same && bad++ == 0) first = i;
    }
    INFO(bad << " of " << got.size() << " differ; first: element " << first << ": " << (bad ? got[first] : 0.0f)
              << " vs " << (bad ? want[first] : 0.0f));
    REQUIRE(bad == 0);
}

double worst_error(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol) {
    return compare_values(got, want, Tol{atol, rtol, false}).worst;
}

double rms(const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

} // namespace rabbit::test
