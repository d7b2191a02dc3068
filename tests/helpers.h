// SPDX-License-Identifier: Apache-2.0
// Test helpers: temporary directories, running the rabbit binary, poking at files.
#pragma once

#include <cstdint>
#include <map>
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

} // namespace rabbit::test
