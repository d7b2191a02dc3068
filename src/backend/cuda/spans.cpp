// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/spans.h"

#include "backend/cuda/check.h"

#include <utility>

namespace rabbit {

namespace {
// Spans not yet read beyond this make the host wait for the oldest half to end: a bound on
// events. The host is then still 128 pieces ahead of the GPU, more than the ring ever needs.
constexpr size_t k_most_pending = 256;

// The GPU's place on the trace's clock: an event recorded and waited for once, at a host
// time taken just after; a span's times are its events' distances from it.
struct TraceOrigin {
    std::mutex mutex;
    CudaEvent event;
    double host_us = 0;
};

TraceOrigin& trace_origin() {
    static TraceOrigin o;
    return o;
}

// The origin event, recorded on `stream` the first time (null when recording fails).
cudaEvent_t origin_event(cudaStream_t stream) {
    TraceOrigin& o = trace_origin();
    std::lock_guard<std::mutex> lock(o.mutex);
    if (!o.event) {
        // The host's clock at the event is known to within the time from recording it to
        // seeing it done: the tightest of a few tries, so that a preempted thread does not
        // shift every GPU span of the timeline.
        double best = 1e300;
        for (int i = 0; i < 8 && best > 50; ++i) {
            CudaEvent e(cudaEventDefault);
            const double before = trace::now_us();
            RABBIT_CUDA_CHECK(cudaEventRecord(e.get(), stream));
            RABBIT_CUDA_CHECK(cudaEventSynchronize(e.get()));
            const double after = trace::now_us();
            if (after - before >= best) continue;
            best = after - before;
            o.host_us = (before + after) / 2; // it completed somewhere between
            o.event = std::move(e);
        }
    }
    return o.event.get();
}

} // namespace

GpuSpans::~GpuSpans() {
    if (!traced_ || !trace::enabled()) return;
    try {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const Pending& p : pending_) RABBIT_CUDA_CHECK(cudaEventSynchronize(p.b.get()));
        collect(false);
    } catch (...) { // a device that failed: its last spans are lost, the trace keeps the rest
    }
}

CudaEvent GpuSpans::take() {
    std::lock_guard<std::mutex> lock(mutex_);
    collect(false);
    if (!spare_.empty()) {
        CudaEvent e = std::move(spare_.back());
        spare_.pop_back();
        return e;
    }
    return CudaEvent(cudaEventDefault); // timed
}

void GpuSpans::begin(cudaStream_t stream, const std::string& label) {
    open_label_.clear();
    if (traced_ && trace::enabled()) {
        origin_event(stream);
        open_label_ = label.empty() ? "span" : label;
    }
    if (open_) { // a span begun and never ended (an error came between): not counted
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(std::move(open_));
    }
    CudaEvent e = take();
    if (const cudaError_t err = cudaEventRecord(e.get(), stream); err != cudaSuccess) {
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(std::move(e));
        RABBIT_CUDA_CHECK(err);
    }
    open_ = std::move(e);
}

void GpuSpans::end(cudaStream_t stream) {
    if (!open_) return;
    CudaEvent e = take();
    const cudaError_t err = cudaEventRecord(e.get(), stream);
    std::lock_guard<std::mutex> lock(mutex_);
    if (err != cudaSuccess) {
        spare_.push_back(std::move(e));
        spare_.push_back(std::move(open_));
        RABBIT_CUDA_CHECK(err);
    }
    pending_.push_back({std::move(open_), std::move(e), std::move(open_label_)});
    if (pending_.size() > k_most_pending) collect(true);
}

void GpuSpans::collect(bool all) const {
    while (!pending_.empty()) {
        auto& [a, b, label] = pending_.front();
        if (all && pending_.size() > k_most_pending / 2) {
            RABBIT_CUDA_CHECK(cudaEventSynchronize(b.get()));
        } else {
            const cudaError_t e = cudaEventQuery(b.get());
            if (e == cudaErrorNotReady) {
                cudaGetLastError(); // the runtime records it as this thread's last error: clear it, or the
                return;             // next launcher's cudaGetLastError() would report it
            }
            RABBIT_CUDA_CHECK(e);
        }
        float ms = 0;
        RABBIT_CUDA_CHECK(cudaEventElapsedTime(&ms, a.get(), b.get()));
        total_ += double(ms) / 1e3;
        if (!label.empty() && trace::enabled()) {
            float from_origin = 0;
            RABBIT_CUDA_CHECK(cudaEventElapsedTime(&from_origin, trace_origin().event.get(), a.get()));
            trace::complete(track_, label, trace_origin().host_us + 1e3 * double(from_origin), 1e3 * double(ms));
        }
        spare_.push_back(std::move(a));
        spare_.push_back(std::move(b));
        pending_.pop_front();
    }
}

double GpuSpans::seconds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    collect(false);
    return total_;
}

} // namespace rabbit
