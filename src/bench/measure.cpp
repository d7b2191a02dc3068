// SPDX-License-Identifier: Apache-2.0
#include "bench/measure.h"

#include "common/error.h"
#include "common/system.h"
#include "common/timing.h"
#include "stream/unit_source.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace rabbit {

namespace {

struct Fd {
    int fd = -1;
    explicit Fd(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
        if (fd < 0) throw bad_input(path, "cannot open: " + errno_text(errno));
    }
    ~Fd() { ::close(fd); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

uint64_t file_size(const Fd& f, const std::string& path) {
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) throw bad_input(path, "cannot stat: " + errno_text(errno));
    return uint64_t(st.st_size);
}

// Pages of the file in the page cache, and pages in all.
std::pair<uint64_t, uint64_t> cached_pages(const std::string& path) {
    Fd f(path);
    const uint64_t size = file_size(f, path);
    if (size == 0) return {0, 0};
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, f.fd, 0);
    if (p == MAP_FAILED) throw bad_input(path, "cannot map: " + errno_text(errno));
    std::vector<unsigned char> in((size + page - 1) / page);
    const int rc = ::mincore(p, size, in.data());
    ::munmap(p, size);
    if (rc != 0) return {0, in.size()};
    uint64_t cached = 0;
    for (unsigned char c : in) cached += c & 1;
    return {cached, in.size()};
}

// "key: value" from a /proc file; empty when absent.
std::string proc_field(const char* file, const std::string& key) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) {
            size_t i = line.find(':');
            if (i == std::string::npos) continue;
            ++i;
            while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
            return line.substr(i);
        }
    return {};
}

uint64_t proc_kib(const char* file, const std::string& key) {
    const std::string v = proc_field(file, key);
    return v.empty() ? 0 : std::strtoull(v.c_str(), nullptr, 10) * 1024;
}

} // namespace

double page_cache_fraction(const std::vector<std::string>& files) {
    uint64_t cached = 0, all = 0;
    for (const auto& f : files) {
        const auto [c, n] = cached_pages(f);
        cached += c;
        all += n;
    }
    return all ? double(cached) / double(all) : 0;
}

ReadBandwidth measure_file_read(const std::vector<std::string>& files, uint64_t max_bytes, bool cold, ThreadPool* pool) {
    // The files that max_bytes reaches, in order.
    std::vector<std::string> used;
    uint64_t planned = 0;
    for (const auto& path : files) {
        if (planned >= max_bytes) break;
        Fd f(path);
        planned += file_size(f, path);
        used.push_back(path);
        if (cold) ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    ReadBandwidth r;
    r.cached_before = page_cache_fraction(used);
    const auto t0 = Clock::now();
    for (const auto& path : used) {
        Fd f(path);
        const uint64_t bytes = std::min(file_size(f, path), max_bytes - r.bytes);
        if (bytes == 0) {
            if (r.bytes >= max_bytes) break;
            continue; // an empty file
        }
        void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, f.fd, 0);
        if (p == MAP_FAILED) throw bad_input(path, "cannot map: " + errno_text(errno));
        ::madvise(p, bytes, MADV_WILLNEED);
        read_in(pool, p, bytes);
        ::munmap(p, bytes);
        r.bytes += bytes;
    }
    r.seconds = seconds_since(t0);
    return r;
}

uint64_t current_rss() { return proc_kib("/proc/self/status", "VmRSS:"); }
uint64_t peak_rss() { return proc_kib("/proc/self/status", "VmHWM:"); }

bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    out.flush();
    return bool(out);
}

MachineInfo machine_info() {
    MachineInfo m;
    m.cpu = proc_field("/proc/cpuinfo", "model name");
    if (m.cpu.empty()) m.cpu = proc_field("/proc/cpuinfo", "Model"); // arm64
    if (m.cpu.empty()) m.cpu = "unknown processor";
    m.cpus = usable_cpus();
    m.memory = proc_kib("/proc/meminfo", "MemTotal:");
    struct utsname u {};
    if (::uname(&u) == 0) m.kernel = u.release;
    return m;
}

std::optional<double> overlap_efficiency(const TokenSplit& t) {
    const double loader = t.disk + t.host_copy, link = t.h2d, compute = t.compute();
    if (loader <= 0 && link <= 0) return std::nullopt; // nothing streamed beside the compute
    const double sum = loader + link + compute, busiest = std::max({loader, link, compute});
    if (sum - busiest <= 1e-3 * t.wall) return std::nullopt; // one stage holds all the time
    return std::clamp((sum - t.wall) / (sum - busiest), 0.0, 1.0);
}

std::optional<double> streaming_bound(double file_bytes, double read_bps, double link_bytes, double link_bps) {
    double bound = 0;
    if (file_bytes > 0 && read_bps > 0) bound = std::max(bound, file_bytes / read_bps);
    if (link_bytes > 0 && link_bps > 0) bound = std::max(bound, link_bytes / link_bps);
    if (bound <= 0) return std::nullopt;
    return bound;
}

} // namespace rabbit
