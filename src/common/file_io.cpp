// SPDX-License-Identifier: Apache-2.0
#include "common/file_io.h"

#include "common/error.h"
#include "common/fault.h"
#include "common/interrupt.h"
#include "common/thread_pool.h"

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace rabbit {

namespace {

std::string dir_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

int open_for_reading(const std::string& path, uint64_t* size) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        throw bad_input(path, e == ENOENT ? std::string("no such file") : "cannot open: " + errno_text(e));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw bad_input(path, "cannot stat: " + errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw bad_input(path, "expected a regular file");
    }
    *size = uint64_t(st.st_size);
    return fd;
}

} // namespace

// ---- InputFile ----------------------------------------------------------------------------

InputFile::InputFile(const std::string& path) : path_(path) { fd_ = open_for_reading(path, &size_); }

InputFile::~InputFile() {
    if (fd_ >= 0) ::close(fd_);
}

InputFile::InputFile(InputFile&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_), size_(o.size_) {
    o.fd_ = -1;
}

InputFile& InputFile::operator=(InputFile&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(o.path_);
        fd_ = o.fd_;
        size_ = o.size_;
        o.fd_ = -1;
    }
    return *this;
}

void InputFile::read_at(void* dst, size_t n, uint64_t offset) const {
    auto* p = static_cast<uint8_t*>(dst);
    size_t done = 0;
    while (done < n) {
        ssize_t r = ::pread(fd_, p + done, n - done, off_t(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            throw bad_input(path_, "read failed at offset " + std::to_string(offset + done) + ": " +
                                       errno_text(errno));
        }
        if (r == 0)
            throw bad_input(path_, "truncated: expected " + std::to_string(n) + " bytes at offset " +
                                       std::to_string(offset) + ", the file ends at " +
                                       std::to_string(offset + done));
        done += size_t(r);
    }
}

void InputFile::advise_sequential() const { ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL); }

void InputFile::drop_cache(uint64_t offset, uint64_t len) const {
    ::posix_fadvise(fd_, off_t(offset), off_t(len), POSIX_FADV_DONTNEED);
}

// ---- MappedFile ---------------------------------------------------------------------------

MappedFile::MappedFile(const std::string& path) : path_(path) {
    int fd = open_for_reading(path, &size_);
    if (size_ > 0) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
        int e = errno;
        ::close(fd);
        if (p == MAP_FAILED) throw bad_input(path, "cannot map: " + errno_text(e));
        map_ = p;
    } else {
        ::close(fd);
    }
}

MappedFile::~MappedFile() {
    if (map_) ::munmap(map_, size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept : path_(std::move(o.path_)), map_(o.map_), size_(o.size_) {
    o.map_ = nullptr;
    o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
    if (this != &o) {
        if (map_) ::munmap(map_, size_);
        path_ = std::move(o.path_);
        map_ = o.map_;
        size_ = o.size_;
        o.map_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

// ---- OutputFile ---------------------------------------------------------------------------

OutputFile::OutputFile(const std::string& final_path)
    : final_path_(final_path), temp_path_(final_path + ".tmp") {
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw output_error(temp_path_, "cannot create: " + errno_text(errno));
}

OutputFile::~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_path_.c_str());
}

void OutputFile::preallocate(uint64_t size) {
    int r = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, off_t(size));
    if (r != 0 && (errno == ENOSPC || errno == EDQUOT))
        throw output_error(temp_path_, "cannot reserve " + std::to_string(size) + " bytes: " + errno_text(errno));
    // Other failures (a file system without fallocate) only lose the early warning.
}

void OutputFile::write(const void* src, size_t n) {
    const auto* p = static_cast<const uint8_t*>(src);
    while (n > 0) {
        int fault_err = 0;
        size_t allowed = fault_allow_write(n, &fault_err);
        ssize_t w;
        if (allowed == 0) {
            errno = fault_err;
            w = -1;
        } else {
            w = ::write(fd_, p, allowed);
        }
        if (w < 0) {
            if (errno == EINTR) continue;
            throw output_error(temp_path_, "write failed after " + std::to_string(offset_) +
                                               " bytes: " + errno_text(errno));
        }
        p += w;
        n -= size_t(w);
        offset_ += uint64_t(w);
    }
}

void OutputFile::extend_to(uint64_t size) {
    RABBIT_CHECK(size >= offset_, "extend_to shrinks " + temp_path_);
    if (::ftruncate(fd_, off_t(size)) != 0) throw output_error(temp_path_, "cannot extend: " + errno_text(errno));
    // Holes, not the blocks preallocate reserved: a sparse 29 GB model must not take 29 GB of
    // disk. A file system that cannot punch keeps them, which only costs space.
    if (size > offset_) (void)::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(offset_), off_t(size - offset_));
    offset_ = size;
}

void OutputFile::flush_behind() {
    // Start write-back of the newest range, then wait for the one before it and drop it
    // from the page cache: the classic streaming-writer pattern, dirty data stays bounded.
    // A write-back error reported here may not be reported again by fsync, so it is fatal
    // here; a file system that cannot do this (EINVAL, ENOSYS) only loses the bound.
    auto check = [&](int r) {
        if (r == 0) return;
        const int e = errno;
        if (e == EIO || e == ENOSPC || e == EDQUOT) throw output_error(temp_path_, "write-back failed: " + errno_text(e));
    };
    if (offset_ > flushed_) check(::sync_file_range(fd_, off_t(flushed_), off_t(offset_ - flushed_), SYNC_FILE_RANGE_WRITE));
    if (flushed_ > synced_) {
        check(::sync_file_range(fd_, off_t(synced_), off_t(flushed_ - synced_),
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER));
        ::posix_fadvise(fd_, off_t(synced_), off_t(flushed_ - synced_), POSIX_FADV_DONTNEED);
        synced_ = flushed_;
    }
    flushed_ = offset_;
}

void OutputFile::commit() {
    RABBIT_CHECK(!committed_, "commit twice: " + final_path_);
    if (::fsync(fd_) != 0) throw output_error(temp_path_, "fsync failed: " + errno_text(errno));
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw output_error(temp_path_, "close failed: " + errno_text(errno));
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
        throw output_error(final_path_, "cannot rename from " + temp_path_ + ": " + errno_text(errno));
    committed_ = true;
    fsync_directory(dir_of(final_path_));
}

// ---- FileLock -----------------------------------------------------------------------------

namespace {

// Whether the descriptor's file is still the one `path` names: false once a holder that
// finished removed it (and maybe another process created a new one under that name).
bool still_named(int fd, const std::string& path) {
    struct stat held, named;
    return ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
           held.st_ino == named.st_ino;
}

} // namespace

FileLock::FileLock(const std::string& path, const std::function<void()>& on_wait) : path_(path) {
    bool waited = false;
    for (;;) {
        // Writable: on NFS, flock is a POSIX lock, whose exclusive form needs a writable descriptor.
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) throw output_error(path, "cannot create the lock file: " + errno_text(errno));
        int r = ::flock(fd, LOCK_EX | LOCK_NB);
        if (r != 0 && errno == EWOULDBLOCK) {
            if (!waited && on_wait) on_wait();
            waited = true;
            // Our signal handlers are installed without SA_RESTART: Ctrl-C ends the wait (and one
            // that came before it began is seen first).
            do {
                try {
                    throw_if_interrupted();
                } catch (...) {
                    ::close(fd);
                    throw;
                }
            } while ((r = ::flock(fd, LOCK_EX)) != 0 && errno == EINTR);
        }
        if (r != 0) {
            const int e = errno;
            ::close(fd);
            throw output_error(path, "cannot lock: " + errno_text(e));
        }
        if (still_named(fd, path)) {
            fd_ = fd;
            return;
        }
        ::close(fd); // locked a file its holder removed on release: lock the current one
    }
}

FileLock::~FileLock() {
    // Removed while still held, so nobody can lock this file and believe it current.
    ::unlink(path_.c_str());
    ::close(fd_);
}

// ---- whole files --------------------------------------------------------------------------

std::string read_text_file(const std::string& path, uint64_t max_bytes) {
    InputFile f(path);
    if (f.size() > max_bytes)
        throw bad_input(path, "is " + std::to_string(f.size()) + " bytes, more than the " +
                                  std::to_string(max_bytes) + " expected of this file");
    std::string s(size_t(f.size()), '\0');
    f.read_at(s.data(), s.size(), 0);
    return s;
}

void write_file_atomic(const std::string& path, const std::string& contents) {
    OutputFile out(path);
    out.write(contents.data(), contents.size());
    out.commit();
}

void check_writable_path(const std::string& path) {
    if (is_directory(path)) throw output_error(path, "is a directory, not a file");
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    if (!is_directory(dir)) throw output_error(path, "its directory " + dir + " does not exist");
    if (::access(dir.c_str(), W_OK) != 0) throw output_error(path, "cannot write in " + dir + ": " + errno_text(errno));
}

void copy_file_atomic(const std::string& from, const std::string& to) {
    InputFile in(from);
    OutputFile out(to);
    out.preallocate(in.size());
    std::vector<uint8_t> buf(std::min<uint64_t>(in.size(), 8ull << 20));
    for (uint64_t off = 0; off < in.size();) {
        size_t n = size_t(std::min<uint64_t>(buf.size(), in.size() - off));
        in.read_at(buf.data(), n, off);
        out.write(buf.data(), n);
        off += n;
    }
    out.commit();
}

std::vector<std::string> list_directory(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw bad_input(dir, "cannot list: " + errno_text(errno));
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

void make_directories(const std::string& dir) {
    for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
        const std::string partial = dir.substr(0, pos);
        if (!partial.empty() && !is_directory(partial)) {
            if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
                throw output_error(partial, "cannot create directory: " + errno_text(errno));
            fsync_directory(dir_of(partial)); // the new entry survives a crash
        }
        if (pos == std::string::npos) break;
    }
}

bool path_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

uint64_t file_size(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        throw bad_input(path, errno == ENOENT ? std::string("no such file") : "cannot stat: " + errno_text(errno));
    return uint64_t(st.st_size);
}

uint64_t free_space(const std::string& dir) {
    struct statvfs sv;
    if (::statvfs(dir.c_str(), &sv) != 0) throw output_error(dir, "cannot query free space: " + errno_text(errno));
    return fault_free_space(uint64_t(sv.f_bavail) * uint64_t(sv.f_frsize));
}

void fsync_directory(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd); // some file systems refuse fsync on directories; the rename is still done
    ::close(fd);
}

std::string join_path(const std::string& dir, const std::string& name) {
    if (dir.empty()) return name;
    if (dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

bool same_file(const std::string& a, const std::string& b) {
    struct stat sa, sb;
    if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

namespace {

void read_in_range(const uint8_t* p, uint64_t bytes) {
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
    const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
#ifdef MADV_POPULATE_READ
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ) == 0) return;
#endif
    // Kernels before 5.14: touch a byte of every page.
    volatile uint8_t sink = 0;
    for (uintptr_t a = begin; a < end; a += page)
        sink = sink + *reinterpret_cast<const uint8_t*>(std::max(a, reinterpret_cast<uintptr_t>(p)));
}

} // namespace

void read_in(ThreadPool* pool, const void* p, uint64_t bytes) {
    const auto* b = static_cast<const uint8_t*>(p);
    parallel_blocks(pool, bytes, [&](uint64_t from, uint64_t to) { read_in_range(b + from, to - from); });
}

} // namespace rabbit
