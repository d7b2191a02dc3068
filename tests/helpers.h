// SPDX-License-Identifier: Apache-2.0
// Test helpers: temporary directories, running the rabbit binary, poking at files; fresh random
// inputs and the one comparison of results with their references.
#pragma once

#include "common/dtype.h"

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace rabbit::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

struct RunResult {
    int exit_code = -1;  // when the process exited
    int signal = 0;      // when a signal ended it
    long max_rss_kib = 0; // peak resident memory
    std::string out, err;
};

// Runs a program with arguments (no shell), extra environment variables and what it reads
// on stdin.
RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {}, const std::string& stdin_text = "");
RunResult run_rabbit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
                     const std::string& stdin_text = "");

// Where the tests find the binaries, the repository and ../shared: where they were built,
// unless RABBIT_TEST_BIN_DIR, RABBIT_TEST_SOURCE_DIR or RABBIT_TEST_SHARED_DIR say otherwise
// (scripts/gpu_check.sh runs a bundled build on another machine).
std::string rabbit_bin();
std::string genmodel_bin();
std::string source_dir();
std::string shared_dir();          // ../shared beside the repository
std::string tinystories_dir();     // shared/models/tinystories-656k
// Whether ../shared's models and tokenizers are there. A clone without them (a user's) skips
// the test cases that need them, each with a visible WARN("SKIPPED: ..."), instead of failing.
bool have_shared();
// SmolLM2-135M-Instruct as a Q4_1 GGUF (scripts/setup.sh fetches it): $RABBIT_SMOLLM2, else
// ${XDG_CACHE_HOME:-~/.cache}/rabbit/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf.
std::string smollm2_gguf();
// Whether that file is there; when not, a visible WARN("SKIPPED: ...") saying how to fetch it.
bool have_smollm2();

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& contents);
void copy_dir(const std::string& from, const std::string& to); // flat: files only
std::vector<std::string> list_files(const std::string& dir);   // sorted names
bool exists(const std::string& path);
void remove_path(const std::string& path);
// Modification time in nanoseconds and inode, to tell whether a file was rewritten.
struct FileId {
    uint64_t inode = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileId& o) const { return inode == o.inode && mtime_ns == o.mtime_ns; }
};
FileId file_id(const std::string& path);

// ---- inputs and comparisons ------------------------------------------------------------------

// n fresh random values, uniform in [lo, hi): never a buffer of zeros, so that a kernel that
// skips an element, or reads the wrong one, shows.
std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f);

// |got - want| <= atol + rtol * |want| for every element.
struct Tol {
    double atol, rtol;
    bool atol_of_rms = false; // atol is a share of the reference's RMS (16-bit types)
};
// The tolerance for a kernel's output stored in `type`, accumulated in f32 against a reference
// accumulated in double:
//   f32  1e-5 + 1e-4 |ref|: relative error ~1e-6 for these lengths;
//   f16  2e-3 rms + 2e-3 |ref|: rounding the result to f16 alone costs up to 2^-11 = 4.9e-4
//        relative, plus the f32 error, with margin;
//   bf16 1e-2 rms + 1e-2 |ref|: rounding to bf16 costs up to 2^-8 = 3.9e-3 relative.
// For the 16-bit types the absolute term is a share of the reference's RMS: the rounding of
// inputs stored in them (a KV cache) errs in proportion to the values' scale, so that a fixed
// term would be too loose for small outputs and too tight for large ones.
Tol tol_for(DType type);

// How got compares with want: the elements outside the tolerance (a NaN or an infinity on
// either side is always one, as are sizes that differ), the first of them, and the largest
// |got - want| / (atol + rtol |want|) (infinite for a non-finite element).
struct Comparison {
    size_t bad = 0, first_bad = 0;
    double worst = 0;
    std::string what() const; // "3 of 769 off; first: element 5: 1.5 vs 1.25", or "sizes differ"
    bool size_mismatch = false;
};
Comparison compare(const std::vector<float>& got, const std::vector<double>& want, Tol tol);
// One REQUIRE for the whole vector (per element would be slow), naming the first bad element.
void require_close(const std::vector<float>& got, const std::vector<double>& want, Tol tol);
// The same, bit for bit (equal values and signs of zero; NaN only where the reference has NaN).
void require_same(const std::vector<float>& got, const std::vector<float>& want);

// compare(got, want, {atol, rtol}).worst: the logit checks of the engine tests.
double worst_error(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol);
// The root mean square of v (the scale of logits, for an absolute tolerance relative to it).
double rms(const std::vector<float>& v);

} // namespace rabbit::test
