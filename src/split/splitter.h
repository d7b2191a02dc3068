// SPDX-License-Identifier: Apache-2.0
// `rabbit split`: executes a split plan, unit by unit, with bounded memory, crash-safe
// outputs (temporary name, fsync, rename), resumption from the journal, and optional removal
// of source shards as soon as everything read from them is written and verified.
#pragma once

#include "split/plan.h"

#include <cstdint>
#include <string>

namespace rabbit {

// Receives progress; the command line draws a bar on a terminal and plain lines elsewhere.
class SplitProgress {
public:
    virtual ~SplitProgress() = default;
    virtual void start(uint64_t /*total_bytes*/, size_t /*units*/) {}
    virtual void advance(uint64_t /*bytes*/) {}
    virtual void unit_done(const std::string& /*unit*/, uint64_t /*bytes*/, bool /*reused*/) {}
    virtual void finish() {}
};

struct SplitOptions {
    std::string model_dir;
    std::string out_dir;
    DTypeChoice dtype = DTypeChoice::automatic;
    bool force = false;           // rewrite every unit, even those a previous run finished
    bool delete_original = false; // remove each source shard once its units are written and verified
    size_t chunk_bytes = 16u << 20; // read/convert/write granularity: bounds memory use
};

struct SplitResult {
    bool up_to_date = false; // OUT already held this split, verified; nothing written
    size_t units_total = 0;
    size_t units_written = 0;
    size_t units_reused = 0; // finished by an earlier run, verified by size and checksum
    uint64_t bytes_written = 0;
    uint64_t bytes_total = 0;
    double seconds = 0;
    std::vector<std::string> deleted_shards;
    std::vector<std::string> files; // companion files copied
    std::string dtype;
};

SplitResult run_split(const SplitOptions& opt, SplitProgress& progress);

} // namespace rabbit
