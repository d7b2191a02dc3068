// SPDX-License-Identifier: Apache-2.0
// What `rabbit bench` measures besides the engines themselves: how fast the shard files read
// (cold and warm), how much of them the page cache holds, this process's peak memory, the
// machine; and the figures derived from a run's times (the streaming bound, the overlap).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

class ThreadPool;

struct ReadBandwidth {
    uint64_t bytes = 0;
    double seconds = 0;
    double cached_before = 0; // fraction of the bytes in the page cache when the read began
    double bytes_per_second() const { return seconds > 0 ? double(bytes) / seconds : 0; }
};

// Reads up to max_bytes of the files, in order, as the engines read weights: mapped, read
// ahead (MADV_WILLNEED) and brought in by the threads of `pool` (read_in). cold: first asks the
// kernel to drop them from the page cache (posix_fadvise DONTNEED; it drops only the pages no
// process maps, so cached_before says how cold the read really was).
ReadBandwidth measure_file_read(const std::vector<std::string>& files, uint64_t max_bytes, bool cold, ThreadPool* pool);

// Fraction of the files' bytes in the page cache now (mincore).
double page_cache_fraction(const std::vector<std::string>& files);

// This process's resident memory: now (VmRSS) and at most since start or the last reset (VmHWM).
uint64_t current_rss();
uint64_t peak_rss();
// Starts the peak over from the current size (/proc/self/clear_refs); false where the kernel
// does not let us, when the peak stays the process's.
bool reset_peak_rss();

struct MachineInfo {
    std::string cpu;        // "AMD EPYC 9454 48-Core Processor"
    unsigned cpus = 0;      // usable by this process
    uint64_t memory = 0;    // MemTotal
    std::string kernel;     // uname -r
};
MachineInfo machine_info();

// One decoded token's time, split by where it went (seconds), as bench reports it.
struct TokenSplit {
    double wall = 0;      // the token, end to end
    double disk = 0;      // the busy times of the stages (StreamStats), per token
    double host_copy = 0;
    double h2d = 0;
    double wait = 0;
    double compute() const { return wall > wait ? wall - wait : 0; }
};

// How much of the pipeline's work ran side by side: 1 when the token took only as long as its
// busiest stage (loader: disk and host copy; link; compute), 0 when it took their sum. None
// when there was nothing to overlap (one stage only, or a backend without a loader).
std::optional<double> overlap_efficiency(const TokenSplit& t);

// The fastest a token can go when its streamed bytes must cross the disk and the link: the
// slower of file_bytes at read_bps and link_bytes at link_bps (a rate of 0 is not counted).
// None when nothing streams.
std::optional<double> streaming_bound(double file_bytes, double read_bps, double link_bytes, double link_bps);

} // namespace rabbit
