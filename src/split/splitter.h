// SPDX-License-Identifier: Apache-2.0
// `rabbit split`: executes a split plan, unit by unit, with bounded memory, crash-safe
// outputs (temporary name, fsync, rename), resumption from the journal, and optional removal
// of source shards as soon as everything read from them is written and verified.
#pragma once

#include "common/file_io.h"
#include "split/plan.h"

#include <cstdint>
#include <functional>
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
    // Called before the first read of each source shard, with its path: `rabbit pull --split`
    // downloads a shard's data there only then (planning read its header, fetched first).
    std::function<void(const std::string& shard_path)> before_reading_shard;
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

// The lock that makes splits into one OUT take turns, across processes: `rabbit split`s,
// and `rabbit run`s splitting an unsplit model into the cache on first use.
//
// It lives beside OUT, as "OUT.lock", not inside it: there it can be taken before OUT exists
// (a split that fails on bad input still leaves no OUT behind), no file of it ever shows in
// OUT (where a directory with a name a split does not write is refused as "not empty and
// holds no rabbit split"), and no rename of the split's files touches it.
std::string split_lock_path(const std::string& out_dir);

class SplitLock {
public:
    // Blocks while another process splits into out_dir, saying so in one log line; creates
    // out_dir's parent if needed. A killed holder's lock dies with it (flock).
    explicit SplitLock(const std::string& out_dir);
    const std::string& out_dir() const { return out_dir_; }

private:
    std::string out_dir_;
    FileLock lock_;
};

// Takes OUT's lock, then splits. What another process finished while this one waited is
// found as a re-run finds it: kept when its files verify, resumed from its journal.
SplitResult run_split(const SplitOptions& opt, SplitProgress& progress);
// The same, under a lock the caller took (to look at OUT itself first, once the lock is held).
SplitResult run_split(const SplitOptions& opt, SplitProgress& progress, const SplitLock& held);

} // namespace rabbit
