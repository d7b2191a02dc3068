// SPDX-License-Identifier: Apache-2.0
#include "common/system.h"

#include <algorithm>
#include <fstream>
#include <string>
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
