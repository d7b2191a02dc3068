// SPDX-License-Identifier: Apache-2.0
#include "stream/unit_source.h"

#include "common/error.h"
#include "common/file_io.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace rabbit {

MmapUnitSource::MmapUnitSource(const SplitModel& model, uint64_t ram_budget) {
    const auto& units = model.manifest().units;
    maps_.resize(units.size());
    resident_.assign(units.size(), false);
    for (size_t i = 0; i < units.size(); ++i) {
        const std::string path = model.unit_path(units[i]);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw bad_input(path, "cannot open: " + errno_text(errno));
        void* p = ::mmap(nullptr, units[i].size(), PROT_READ, MAP_SHARED, fd, 0);
        const int e = errno;
        ::close(fd);
        if (p == MAP_FAILED) throw bad_input(path, "cannot map: " + errno_text(e));
        maps_[i] = {static_cast<uint8_t*>(p), units[i].size(), units[i].layout.data_offset, units[i].layout.data_size,
                    units[i].layout.data_size};
        for (const UnitTensor& t : units[i].layout.tensors)
            if (t.name.rfind("expert.", 0) == 0) maps_[i].ahead = std::min(maps_[i].ahead, t.offset);
    }
    // Resident units, in streaming order, while the budget lasts: those every token reads
    // whole (streams_per_token).
    for (size_t i = 0; i < units.size(); ++i) {
        if (!model.streams_per_token(i)) continue;
        // A MoE layer is never kept whole: a token reads a few of its experts, and the
        // engine's expert cache keeps the used ones within what the budget leaves.
        if (maps_[i].ahead < maps_[i].data_size) continue;
        if (resident_bytes_ + units[i].layout.data_size > ram_budget) continue; // a smaller one may still fit
        resident_[i] = true;
        resident_bytes_ += units[i].layout.data_size;
    }
    // Read the resident units in now, at load time, so the first token does not pay for it.
    for (size_t i = 0; i < units.size(); ++i)
        if (resident_[i]) populate(i);
}

void MmapUnitSource::populate(size_t i) const {
    const Mapping& m = maps_[i];
    read_in(nullptr, m.base + m.data_offset, m.data_size);
}

MmapUnitSource::~MmapUnitSource() {
    for (auto& m : maps_)
        if (m.base) ::munmap(m.base, m.size);
}

void MmapUnitSource::advise(size_t i, int advice) const {
    // madvise wants a page-aligned start; data sections are aligned to 4 KiB, which is not a
    // page on kernels with 16 or 64 KiB pages. The mapping itself starts on a page.
    const Mapping& m = maps_[i];
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
    const uint64_t begin = m.data_offset / page * page;
    ::madvise(m.base + begin, m.data_offset + m.ahead - begin, advice);
}

const uint8_t* MmapUnitSource::acquire(size_t i, Access access) {
    RABBIT_CHECK(i < maps_.size(), "acquire of an unknown unit");
    // Resident units were read in at load; asking again would only walk the page cache.
    if (access == Access::whole && !resident_[i]) advise(i, MADV_WILLNEED);
    if (i + 1 < maps_.size() && !resident_[i + 1]) advise(i + 1, MADV_WILLNEED); // read ahead while this one computes
    return maps_[i].base + maps_[i].data_offset;
}

void MmapUnitSource::done_with(size_t i, const void* p, uint64_t bytes) {
    if (resident_[i] || bytes == 0) return;
    // The whole pages inside the range; the edges are shared with neighbouring tensors.
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
    if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void MmapUnitSource::will_need(const void* p, uint64_t bytes) const {
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
    ::madvise(reinterpret_cast<void*>(begin), reinterpret_cast<uintptr_t>(p) + bytes - begin, MADV_WILLNEED);
}

void MmapUnitSource::release(size_t i) {
    // Unmapping the pages keeps resident memory near the budget: the page cache may still
    // hold them, but they no longer count against this process. A MoE layer's experts are
    // not unmapped here: the engine drops each as it is done with it, unless its expert
    // cache keeps it.
    if (!resident_[i]) advise(i, MADV_DONTNEED);
}

} // namespace rabbit
