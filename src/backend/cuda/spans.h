// SPDX-License-Identifier: Apache-2.0
// GPU time spans: a pair of events recorded on a stream around some of its work (a copy, a
// wait), whose elapsed times are added up once both have happened. Finished spans are
// collected as later ones begin, and when the total is asked for; the host waits for one only
// when more than 256 are pending (then for the oldest half), which keeps it 128 pieces ahead
// of the GPU: more than the ring ever needs. Spans given a trace track (set_trace) also go to
// the timeline trace when it is on (common/trace.h), placed on its clock through an event
// recorded once at a known host time.
#pragma once

#include "backend/cuda/events.h"
#include "common/trace.h"

#include <cuda_runtime.h>

#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rabbit {

class GpuSpans {
public:
    GpuSpans() = default;
    explicit GpuSpans(trace::Track track) : track_(track), traced_(true) {}
    ~GpuSpans(); // traced spans still on the GPU are waited for and go to the trace
    GpuSpans(const GpuSpans&) = delete;
    GpuSpans& operator=(const GpuSpans&) = delete;

    // The trace track these spans are drawn on (none by default).
    void set_trace(trace::Track track) { track_ = track, traced_ = true; }
    // On one thread at a time, in pairs: begin, then the work on `stream`, then end.
    // label: the span's name in the trace.
    void begin(cudaStream_t stream, const std::string& label = {});
    void end(cudaStream_t stream);
    // Seconds in the spans that have ended on the GPU so far.
    double seconds() const;

private:
    void collect(bool all) const; // with the mutex held
    CudaEvent take();

    mutable std::mutex mutex_;
    struct Pending {
        CudaEvent a, b;
        std::string label; // empty: not traced
    };
    mutable std::deque<Pending> pending_;  // begun and ended, not yet read
    mutable std::vector<CudaEvent> spare_; // read: recorded again by later spans
    mutable double total_ = 0;
    CudaEvent open_; // begun, not yet ended
    std::string open_label_;
    trace::Track track_ = trace::Track::compute;
    bool traced_ = false;
};

} // namespace rabbit
