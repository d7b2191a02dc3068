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
    for (size_t i = 0; i < sequence_.size(); ++i) // two places in a row would have the loader take one's pieces for both
        RABBIT_CHECK(!sequence_[i].routed || !sequence_[(i + 1) % sequence_.size()].routed,
                     "a ring sequence with two routed places in a row");
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
    const size_t n = sequence_.size();
    try {
        transport_.loader_started();
        uint64_t k = 0, routes = 0;
        for (uint64_t at = 0;; ++at) {
            const RingPiece& p = sequence_[at % n];
            if (!p.routed) {
                const RingPiece& next = sequence_[(at + 1) % n];
                if (!load(p, k++, next.routed ? nullptr : &next)) return;
                continue;
            }
            // The consumer names this place's pieces once its router has run: wait for them.
            std::vector<RingPiece> pieces;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                cv_.wait(lock, [&] { return stop_ || routes_ > routes; });
                if (stop_) return;
                pieces = routed_;
                ++routes;
            }
            for (size_t i = 0; i < pieces.size(); ++i)
                if (!load(pieces[i], k++, i + 1 < pieces.size() ? &pieces[i + 1] : nullptr)) return;
        }
    } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        cv_.notify_all();
    }
}

bool Ring::load(const RingPiece& p, uint64_t k, const RingPiece* next) {
    const size_t slots = transport_.slots(), s = size_t(k % slots);
    if (next) source_.prefetch(*next); // the disk reads it while this one is copied
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
        if (stop_) return false;
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
    return true;
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
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.acquired_bytes += next_piece().bytes;
    }
    ++consumed_;
    if (!in_route_) ++at_;
    else if (++route_at_ == route_.size()) in_route_ = false, ++at_;
    return transport_.device(s);
}

void Ring::route(std::vector<RingPiece> pieces) {
    RABBIT_CHECK(!in_route_ && sequence_[at_ % sequence_.size()].routed, "Ring::route where the sequence has no routed place");
    for (const RingPiece& p : pieces) RABBIT_CHECK(p.bytes <= transport_.slot_bytes() && !p.routed, "a routed piece larger than a ring slot");
    if (pieces.empty()) ++at_;
    else in_route_ = true, route_ = pieces, route_at_ = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        routed_ = std::move(pieces);
        ++routes_;
    }
    cv_.notify_all();
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
