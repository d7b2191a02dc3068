// SPDX-License-Identifier: Apache-2.0
// POSIX file access with errors that name the file: reading whole or by range, mapping,
// and writing outputs that appear under their final name only once complete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rabbit {

// A file opened for reading. Short reads are errors that name the file (it was truncated
// or changed while we read it).
class InputFile {
public:
    explicit InputFile(const std::string& path);
    ~InputFile();
    InputFile(InputFile&& other) noexcept;
    InputFile& operator=(InputFile&& other) noexcept;
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }
    int fd() const { return fd_; }

    // Reads exactly n bytes at offset, or throws bad_input naming the file.
    void read_at(void* dst, size_t n, uint64_t offset) const;
    // Tells the kernel we read front to back, or that a range is no longer needed.
    void advise_sequential() const;
    void drop_cache(uint64_t offset, uint64_t len) const;

private:
    std::string path_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

// A read-only mapping of a whole file. An empty file maps to {nullptr, 0}.
class MappedFile {
public:
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::string& path() const { return path_; }
    const uint8_t* data() const { return static_cast<const uint8_t*>(map_); }
    uint64_t size() const { return size_; }

private:
    std::string path_;
    void* map_ = nullptr; // the read-only mapping, as mmap gave it (munmap takes it so)
    uint64_t size_ = 0;
};

// An output written under "<final>.tmp" and renamed to its final name by commit(), after
// fsync. Destroyed without commit (an exception, Ctrl-C), it removes the temporary file, so
// a final name always holds a complete file.
class OutputFile {
public:
    explicit OutputFile(const std::string& final_path);
    ~OutputFile();
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    const std::string& final_path() const { return final_path_; }
    const std::string& temp_path() const { return temp_path_; }
    uint64_t written() const { return offset_; }

    // Reserves the blocks up front, so a full disk shows before any data is written.
    void preallocate(uint64_t size);
    void write(const void* src, size_t n);
    // Grows the file to `size` without writing: the rest reads as zeros (a hole on disk).
    void extend_to(uint64_t size);
    // Pushes what was written so far towards the disk and drops it from the page cache,
    // keeping dirty memory bounded by about one chunk however large the file is.
    void flush_behind();
    void commit();

private:
    std::string final_path_;
    std::string temp_path_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    uint64_t flushed_ = 0;   // everything before this offset is on its way to the disk
    uint64_t synced_ = 0;    // everything before this offset is on the disk and uncached
    bool committed_ = false;
};

// An exclusive flock(2) on a lock file, created when missing, held until destruction. The
// kernel drops it with its holder's last descriptor, so a killed holder leaves no deadlock,
// only the file, which the next holder reuses. The holder removes the file before letting
// go; a waiter that then gets the lock on the removed file sees that the path names another
// file (or none) and locks again, so two processes never both believe they hold it.
class FileLock {
public:
    // Blocks until the lock is ours; `on_wait` runs once, before the first wait, when another
    // process holds it. Throws output_error naming the file when the file cannot be created
    // or locked, and Error(interrupted) on Ctrl-C while waiting.
    FileLock(const std::string& path, const std::function<void()>& on_wait);
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

std::string read_text_file(const std::string& path, uint64_t max_bytes = 64ull << 20);
void write_file_atomic(const std::string& path, const std::string& contents);
// Throws output_error unless a file could be written at path (its directory exists and is
// writable, and path is not a directory): for outputs written only after long work.
void check_writable_path(const std::string& path);
void copy_file_atomic(const std::string& from, const std::string& to);

// The names in a directory, sorted, without "." and "..".
std::vector<std::string> list_directory(const std::string& dir);
// mkdir -p
void make_directories(const std::string& dir);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
uint64_t file_size(const std::string& path); // throws bad_input if it cannot be read
uint64_t free_space(const std::string& dir);
void fsync_directory(const std::string& dir);
std::string join_path(const std::string& dir, const std::string& name);
// Same file or directory (same device and inode); false when either does not exist.
bool same_file(const std::string& a, const std::string& b);

class ThreadPool;

// Brings bytes [p, p + bytes) of a file mapping into memory now (from the page cache, or
// from the drive), so that what reads them next does not stop on page faults; the threads of
// `pool` (may be null) share the work, which lets the drive serve several reads at once.
void read_in(ThreadPool* pool, const void* p, uint64_t bytes);

} // namespace rabbit
