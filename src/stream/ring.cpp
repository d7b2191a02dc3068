// SPDX-License-Identifier: Apache-2.0
#include "stream/ring.h"

#include "common/thread_pool.h"
#include "common/error.h"
#include "common/timing.h"
#include "common/trace.h"
#include "stream/unit_source.h"

namespace rabbit {

Ring::Ring(RingTransport& transport, PieceSource& source, std::vector<RingPiece> sequence, ThreadPool* fill)
    : transport_(transport), source_(source), sequence_(std::move(sequence)), pool_(fill) {
    RABBIT_CHECK(!sequence_.empty() && transport_.slots() > 0, "a ring without pieces or slots");
    for (const RingPiece& p : sequence_) RABBIT_CHECK(p.bytes <= transport_.slot_bytes(), "a piece larger than a ring slot");
    thread_ = std::thread([this] { loader(); });
}

Ring::~Ring() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Ring::loader() {
    const size_t n = sequence_.size(), slots = transport_.slots();
    try {
        transport_.loader_started();
        for (uint64_t k = 0;; ++k) {
            const RingPiece& p = sequence_[k % n];
            const size_t s = size_t(k % slots);
            source_.prefetch(sequence_[(k + 1) % n]); // the disk reads it while this one is copied
            const uint8_t* src = source_.bytes(p);
            const bool from_file = !source_.pinned(p);
            if (from_file) {
                // Pageable memory cannot be copied to the GPU asynchronously: stage it in the
                // slot's pinned buffer, once the slot's previous copy has left it.
                // First the pages from the file (the disk's time), then the copy (the host's).
                const auto t0 = Clock::now();
                {
                    trace::Span span(trace::Track::loader, p.label);
                    read_in(pool_, src, p.bytes);
                }
                const double read = seconds_since(t0);
                transport_.wait_staging_free(s);
                const auto t1 = Clock::now();
                {
                    trace::Span span(trace::Track::host_copy, p.label);
                    parallel_memcpy(pool_, transport_.staging(s), src, p.bytes);
                }
                const double copied = seconds_since(t1);
                source_.done(p);
                src = transport_.staging(s);
                std::lock_guard<std::mutex> lock(mutex_);
                stats_.disk_s += read;
                stats_.fill_s += copied;
            }
            {
                // The device side of slot s holds piece k - slots until the consumer releases it.
                std::unique_lock<std::mutex> lock(mutex_);
                cv_.wait(lock, [&] { return stop_ || released_ + slots > k; });
                if (stop_) return;
            }
            transport_.copy(s, src, p.bytes, p.label);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                produced_ = k + 1;
                stats_.bytes += p.bytes; // counted together, so that they agree at any moment
                if (from_file) stats_.file_bytes += p.bytes;
                stats_.pieces += 1;
            }
            cv_.notify_all();
        }
    } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        cv_.notify_all();
    }
}

uint8_t* Ring::acquire() {
    RABBIT_CHECK(released_ == consumed_, "Ring::acquire before the last piece was released");
    transport_.arrival_wanted(); // before any wait for the loader: the compute may run dry during it
    {
        std::unique_lock<std::mutex> lock(mutex_);
        if (produced_ <= consumed_ && !error_) {
            const auto t0 = Clock::now();
            cv_.wait(lock, [&] { return error_ || produced_ > consumed_; });
            stats_.consumer_wait_s += seconds_since(t0);
        }
        if (produced_ <= consumed_) std::rethrow_exception(error_);
    }
    const size_t s = size_t(consumed_ % transport_.slots());
    transport_.wait_arrival(s);
    ++consumed_;
    return transport_.device(s);
}

void Ring::release() {
    RABBIT_CHECK(released_ + 1 == consumed_, "Ring::release without an acquired piece");
    transport_.release(size_t(released_ % transport_.slots()));
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++released_;
    }
    cv_.notify_all();
}

RingStats Ring::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

} // namespace rabbit
