// SPDX-License-Identifier: Apache-2.0
// The streaming interface the engines share: ask for unit i, use it, release it. The CPU
// implementation maps the unit files and lets the kernel page them in, reading the next
// unit ahead and dropping each released unit from memory unless the RAM budget keeps it;
// the units the budget keeps are read in when the source is made.
#pragma once

#include "common/file_io.h"
#include "format/split_model.h"

#include <cstdint>
#include <vector>

namespace rabbit {

class ThreadPool;

enum class Access {
    whole,  // every byte will be read (a layer, lm_head)
    sparse, // a few rows will be read (the embedding lookup): do not read it all ahead
};

class UnitSource {
public:
    virtual ~UnitSource() = default;
    // The unit's data section, valid until release(i).
    virtual const uint8_t* acquire(size_t i, Access access = Access::whole) = 0;
    virtual void release(size_t i) = 0;
    // Whether unit i stays in memory across tokens (else it is read again for every token).
    virtual bool resident(size_t i) const = 0;
    // The engine has finished with bytes [p, p + bytes) of acquired unit i: a source that
    // streams the unit may drop them now rather than at release.
    virtual void done_with(size_t i, const void* p, uint64_t bytes) = 0;
};

class MmapUnitSource : public UnitSource {
public:
    // ram_budget: bytes of units to keep resident once read (0: none; streamed every time).
    MmapUnitSource(const SplitModel& model, uint64_t ram_budget);
    ~MmapUnitSource() override;
    MmapUnitSource(const MmapUnitSource&) = delete;
    MmapUnitSource& operator=(const MmapUnitSource&) = delete;

    const uint8_t* acquire(size_t i, Access access = Access::whole) override;
    void release(size_t i) override;
    bool resident(size_t i) const override { return resident_[i]; }
    void done_with(size_t i, const void* p, uint64_t bytes) override;

    uint64_t resident_bytes() const { return resident_bytes_; }
    // The mapped data section of unit i, without advice (the CUDA loader reads it itself).
    const uint8_t* data(size_t i) const { return maps_[i].base + maps_[i].data_offset; }
    // Bytes [p, p + bytes) of unit i will be read soon: start reading them from the disk.
    void will_need(const void* p, uint64_t bytes) const;

private:
    struct Mapping {
        uint8_t* base = nullptr; // the whole file
        uint64_t size = 0;
        uint64_t data_offset = 0, data_size = 0;
        // Bytes of the data section a pass reads whatever the tokens: all of it, but for a
        // MoE layer only those before its experts (a token reads only the experts it routes
        // to, so reading the others ahead would read the whole layer). Read ahead and
        // dropped at release; a MoE layer's experts only by done_with.
        uint64_t ahead = 0;
    };
    void advise(size_t i, int advice) const;
    void populate(size_t i) const;

    std::vector<Mapping> maps_;
    std::vector<bool> resident_;
    uint64_t resident_bytes_ = 0;
};

} // namespace rabbit
