// SPDX-License-Identifier: Apache-2.0
#include "common/system.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sched.h>
#include <string>
#include <thread>
#include <unistd.h>

namespace rabbit {

namespace {

// One number from a file like /sys/fs/cgroup/memory.max; 0 when absent or "max".
uint64_t read_number(const std::string& path) {
    std::ifstream in(path);
    std::string text;
    if (!(in >> text) || text == "max") return 0;
    try {
        return std::stoull(text);
    } catch (...) {
        return 0;
    }
}

uint64_t meminfo_available() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t value = 0;
    std::string unit;
    while (in >> key >> value) {
        std::getline(in, unit);
        if (key == "MemAvailable:") return value * 1024;
    }
    const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
}

// The cgroup (v2) this process belongs to: "0::/path" in /proc/self/cgroup.
std::string cgroup_dir() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
    return {};
}

} // namespace

unsigned usable_cpus() {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) n = std::max(1, CPU_COUNT(&set));
    const std::string cg = cgroup_dir();
    if (!cg.empty()) {
        // "max 100000" (no limit) or "<quota> <period>" in microseconds.
        std::ifstream in(cg + "/cpu.max");
        std::string quota;
        uint64_t period = 0;
        if (in >> quota >> period && quota != "max" && period > 0) {
            const uint64_t q = std::strtoull(quota.c_str(), nullptr, 10);
            if (q > 0) n = std::min<unsigned>(n, unsigned(std::max<uint64_t>(1, (q + period - 1) / period)));
        }
    }
    return n;
}

uint64_t available_memory() {
    uint64_t avail = meminfo_available();
    const std::string cg = cgroup_dir();
    if (!cg.empty()) {
        const uint64_t limit = read_number(cg + "/memory.max");
        const uint64_t used = read_number(cg + "/memory.current");
        if (limit > 0) {
            const uint64_t left = limit > used ? limit - used : 0;
            avail = avail ? std::min(avail, left) : left;
        }
    }
    return avail;
}

} // namespace rabbit
