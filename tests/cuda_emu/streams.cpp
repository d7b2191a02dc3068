// SPDX-License-Identifier: Apache-2.0
// The emulated streams, each a worker thread, and events.
//
// Streams. Each stream has a thread that runs its operations in order, so work queued on two
// streams really overlaps, and only events order them. The legacy stream (0) waits for the
// other blocking streams and they for it. An async copy with a pageable host side runs
// synchronously, as on a GPU, and is counted and reported. Delays before kernels and copies
// (the settings) shift the streams against each other.
#include "runtime_state.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

struct CUstream_st {};
struct CUevent_st {};

namespace cuda_emu {

// ---- streams ---------------------------------------------------------------------------------

Stream::Stream(int device, unsigned flags, bool legacy) : device_(device), flags_(flags), legacy_(legacy) {
    thread_ = std::thread([this] {
        t_device = device_;
        worker();
    });
}

Stream::~Stream() {
    {
        std::lock_guard<std::mutex> lock(m_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Stream::enqueue(OpKind kind, std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> lock(m_);
        queue_.emplace_back(kind, std::move(fn));
        ++enqueued_;
    }
    cv_.notify_all();
}

void Stream::worker() {
    for (;;) {
        std::pair<OpKind, std::function<void()>> op;
        {
            std::unique_lock<std::mutex> lock(m_);
            cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;
            op = std::move(queue_.front());
            queue_.pop_front();
        }
        if (sticky_error() == cudaSuccess) {
            const Settings s = current_settings();
            const unsigned delay = op.first == OpKind::kernel ? s.kernel_delay_us : op.first == OpKind::copy ? s.copy_delay_us : 0;
            if (delay) std::this_thread::sleep_for(std::chrono::microseconds(delay));
            op.second();
        }
        op.second = nullptr; // what it holds goes before it counts as done
        {
            std::lock_guard<std::mutex> lock(m_);
            ++done_;
        }
        cv_.notify_all();
    }
}

uint64_t Stream::enqueued() {
    std::lock_guard<std::mutex> lock(m_);
    return enqueued_;
}

void Stream::wait_done(uint64_t count) {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return done_ >= count; });
}

void Stream::wait_idle() { wait_done(enqueued()); }

bool Stream::idle() {
    std::lock_guard<std::mutex> lock(m_);
    return done_ == enqueued_;
}

std::shared_ptr<Stream> stream_of(cudaStream_t s) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    if (!s) {
        Device& d = st.devices[size_t(t_device)];
        if (!d.legacy) {
            d.legacy = std::make_shared<Stream>(t_device, cudaStreamDefault, true);
            st.legacy_streams.push_back(d.legacy);
        }
        return d.legacy;
    }
    const auto it = st.streams.find(s);
    return it == st.streams.end() ? nullptr : it->second;
}

void submit(const std::shared_ptr<Stream>& s, OpKind kind, std::function<void()> fn) {
    // The legacy stream's rule: it waits for the other blocking streams of its device, and they for it.
    std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> before;
    if (s->blocking()) {
        State& st = state();
        std::vector<std::shared_ptr<Stream>> others;
        {
            std::lock_guard<std::mutex> lock(st.m);
            if (s->legacy()) {
                for (const auto& [h, o] : st.streams)
                    if (o->device() == s->device() && o->blocking()) others.push_back(o);
            } else if (const auto& l = st.devices[size_t(s->device())].legacy) {
                others.push_back(l);
            }
        }
        for (const auto& o : others) before.emplace_back(o, o->enqueued());
    }
    if (before.empty()) return s->enqueue(kind, std::move(fn));
    s->enqueue(kind, [before, f = std::move(fn)] {
        for (const auto& [o, n] : before) o->wait_done(n);
        f();
    });
}

void host_wait(int device, bool blocking_event) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    if (!blocking_event && !(st.devices[size_t(device)].flags & cudaDeviceScheduleBlockingSync)) ++st.counters.spinning_waits;
}

} // namespace cuda_emu

using namespace cuda_emu;

// ---- the runtime API: streams and events -----------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
    if (!stream || (flags & ~cudaStreamNonBlocking) != 0) return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    auto s = std::make_shared<Stream>(t_device, flags, false);
    std::lock_guard<std::mutex> lock(state().m);
    state().streams[s.get()] = s;
    *stream = reinterpret_cast<cudaStream_t>(s.get());
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::shared_ptr<Stream> s;
    {
        std::lock_guard<std::mutex> lock(state().m);
        const auto it = state().streams.find(stream);
        if (!stream || it == state().streams.end()) return set_error(cudaErrorInvalidResourceHandle);
        s = it->second;
        state().streams.erase(it);
    }
    s->wait_idle(); // its work still runs, as on a GPU; then its thread ends
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    EMU_STICKY();
    const auto s = stream_of(stream);
    if (!s) return set_error(cudaErrorInvalidResourceHandle);
    if (!s->idle()) host_wait(s->device(), false);
    s->wait_idle();
    EMU_STICKY();
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    EMU_STICKY();
    const auto s = stream_of(stream);
    if (!s) return set_error(cudaErrorInvalidResourceHandle);
    return s->idle() ? cudaSuccess : set_error(cudaErrorNotReady);
}

namespace {

std::shared_ptr<EventState> event_of(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(state().m);
    const auto it = state().events.find(e);
    return it == state().events.end() ? nullptr : it->second;
}

} // namespace

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
    if (!event || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming)) != 0) return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    auto ev = std::make_shared<EventState>();
    ev->flags = flags;
    ev->device = t_device;
    std::lock_guard<std::mutex> lock(state().m);
    state().events[ev.get()] = ev;
    *event = reinterpret_cast<cudaEvent_t>(ev.get());
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(state().m);
    if (!event || state().events.erase(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
    return cudaSuccess; // an operation still waiting for it keeps it alive
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    EMU_STICKY();
    const auto ev = event_of(event);
    const auto s = stream_of(stream);
    if (!ev || !s) return set_error(cudaErrorInvalidResourceHandle);
    uint64_t gen;
    {
        std::lock_guard<std::mutex> lock(ev->m);
        gen = ++ev->recorded;
    }
    submit(s, OpKind::other, [ev, gen] {
        {
            std::lock_guard<std::mutex> lock(ev->m);
            ev->completed = std::max(ev->completed, gen);
            ev->when = std::chrono::steady_clock::now();
        }
        ev->cv.notify_all();
    });
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    EMU_STICKY();
    const auto ev = event_of(event);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::mutex> lock(ev->m);
    return ev->completed >= ev->recorded ? cudaSuccess : set_error(cudaErrorNotReady);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    EMU_STICKY();
    const auto ev = event_of(event);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    {
        std::unique_lock<std::mutex> lock(ev->m);
        const uint64_t gen = ev->recorded;
        if (ev->completed < gen) {
            lock.unlock();
            host_wait(ev->device, (ev->flags & cudaEventBlockingSync) != 0);
            lock.lock();
        }
        // A fault leaves the event unrecorded forever: wait for it or for the fault.
        while (ev->completed < gen && sticky_error() == cudaSuccess) ev->cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    EMU_STICKY();
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    EMU_STICKY();
    const auto a = event_of(start), b = event_of(end);
    if (!ms || !a || !b) return set_error(!ms ? cudaErrorInvalidValue : cudaErrorInvalidResourceHandle);
    if ((a->flags | b->flags) & cudaEventDisableTiming) return set_error(cudaErrorInvalidResourceHandle);
    // One event at a time: holding both would order their locks differently from call to call.
    auto read = [](EventState& e, bool* recorded, bool* done) {
        std::lock_guard<std::mutex> lock(e.m);
        *recorded = e.recorded > 0;
        *done = e.completed >= e.recorded;
        return e.when;
    };
    bool ra = false, da = false, rb = false, db = false;
    const auto ta = read(*a, &ra, &da), tb = read(*b, &rb, &db);
    if (!ra || !rb) return set_error(cudaErrorInvalidResourceHandle);
    if (!da || !db) return set_error(cudaErrorNotReady);
    *ms = float(std::chrono::duration<double, std::milli>(tb - ta).count());
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
    EMU_STICKY();
    const auto ev = event_of(event);
    const auto s = stream_of(stream);
    if (!ev || !s || flags != 0) return set_error(!ev || !s ? cudaErrorInvalidResourceHandle : cudaErrorInvalidValue);
    uint64_t gen;
    {
        std::lock_guard<std::mutex> lock(ev->m);
        gen = ev->recorded;
    }
    if (gen == 0) return cudaSuccess; // never recorded: nothing to wait for
    submit(s, OpKind::other, [ev, gen] {
        std::unique_lock<std::mutex> lock(ev->m);
        while (ev->completed < gen && sticky_error() == cudaSuccess) ev->cv.wait_for(lock, std::chrono::milliseconds(20));
    });
    return cudaSuccess;
}
