// SPDX-License-Identifier: Apache-2.0
// GPU time spans: a pair of events recorded on a stream around some of its work (a copy, a
// wait), whose elapsed times are added up once both have happened. Finished spans are
// collected as later ones begin, and when the total is asked for; the host waits for one only
// when more than 256 are pending (then for the oldest half), which keeps it 128 pieces ahead
// of the GPU: more than the ring ever needs.
#pragma once

#include "backend/cuda/events.h"

#include <cuda_runtime.h>

#include <deque>
#include <mutex>
#include <utility>
#include <vector>

namespace rabbit {

class GpuSpans {
public:
    GpuSpans() = default;
    GpuSpans(const GpuSpans&) = delete;
    GpuSpans& operator=(const GpuSpans&) = delete;

    // On one thread at a time, in pairs: begin, then the work on `stream`, then end.
    void begin(cudaStream_t stream);
    void end(cudaStream_t stream);
    // Seconds in the spans that have ended on the GPU so far.
    double seconds() const;

private:
    void collect(bool all) const; // with the mutex held
    CudaEvent take();

    mutable std::mutex mutex_;
    mutable std::deque<std::pair<CudaEvent, CudaEvent>> pending_; // begun and ended, not yet read
    mutable std::vector<CudaEvent> spare_;                        // read: recorded again by later spans
    mutable double total_ = 0;
    CudaEvent open_; // begun, not yet ended
};

} // namespace rabbit
