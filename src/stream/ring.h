// SPDX-License-Identifier: Apache-2.0
// The ring: N slots, each a pinned host buffer and a device buffer of the same size, through
// which the pieces of the streamed units cycle, token after token, in the order the forward
// pass uses them. A loader thread copies piece k from the mapped unit file into host slot
// k % N (several threads share the memcpy) and queues its copy to the device on the copy
// stream; the consumer (the forward pass) makes its compute stream wait for that copy,
// computes, and releases the slot, after which piece k + N may be copied over it. Piece k + 1
// is read and copied while piece k computes. The consumer never waits on the GPU; it waits
// on the loader only when the disk is slower than the layers.
//
// A MoE layer's sequence holds its dense piece (attention, norms, router) and then a `routed`
// place: when the consumer's router has chosen the pass's experts it names their pieces
// (route), and the loader, which waits at that place, streams them there, one after another
// through the same slots, before it goes on with the sequence. So the copy of expert i + 1
// overlaps expert i's products as the copy of layer l + 1 overlaps layer l's.
//
// What moves the bytes is a RingTransport: CUDA's (pinned memory, a copy stream, events), or
// plain memory in the tests, which exercise exactly this class.
#pragma once

#include "stream/pieces.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rabbit {

class ThreadPool;

class RingTransport {
public:
    virtual ~RingTransport() = default;
    virtual size_t slots() const = 0;
    virtual uint64_t slot_bytes() const = 0;
    virtual uint8_t* staging(size_t slot) = 0;      // the host side (pinned)
    virtual uint8_t* device(size_t slot) = 0;       // the device side
    virtual void loader_started() {}                 // on the loader thread, first (CUDA: select the device)
    // Loader thread:
    virtual void wait_staging_free(size_t slot) = 0; // blocks until the last copy out of staging(slot) is done
    // Queues src -> device(slot), ordered after the consumer's last release of the slot.
    // label: the piece's, for the trace's copy-engine track.
    virtual void copy(size_t slot, const uint8_t* src, uint64_t bytes, const std::string& label) = 0;
    // Consumer thread (never blocks the host):
    virtual void arrival_wanted() {}                 // first: the compute will need the next piece after what it has queued
    virtual void wait_arrival(size_t slot) = 0;      // the consumer's stream waits for the last copy into the slot
    virtual void release(size_t slot) = 0;           // the consumer's stream is done with device(slot) after what it has queued
};

// Where a piece's bytes are on the host, and what to tell the page cache about them.
class PieceSource {
public:
    virtual ~PieceSource() = default;
    virtual const uint8_t* bytes(const RingPiece& p) = 0;  // valid while the ring lives
    virtual bool pinned(const RingPiece& p) = 0;           // already in pinned memory: copied without staging
    virtual void prefetch(const RingPiece& p) = 0;         // will be read soon (read-ahead)
    virtual void done(const RingPiece& p) = 0;             // read for this token (may be dropped from memory)
};

struct RingStats {
    double consumer_wait_s = 0; // the forward pass waiting for the loader to queue a piece
    double disk_s = 0;          // the loader reading pieces in from the unit files (page cache or drive)
    double fill_s = 0;          // the loader copying pieces into staging
    uint64_t file_bytes = 0;    // bytes read from the unit files (not in pinned memory already)
    uint64_t bytes = 0;         // bytes queued to the device
    uint64_t acquired_bytes = 0; // of them, those of the pieces the consumer acquired (bytes runs
                                 // ahead of it by the loader's look-ahead, which timing decides)
    uint64_t pieces = 0;
};

class Ring {
public:
    // sequence: the pieces of one forward pass (and `routed` places), repeated for every pass.
    // fill: the threads that share a piece's memcpy into staging (may be null: the loader alone).
    Ring(RingTransport& transport, PieceSource& source, std::vector<RingPiece> sequence, ThreadPool* fill);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    const std::vector<RingPiece>& sequence() const { return sequence_; }
    // The next piece of the sequence: which it is (next_piece), and its bytes on the device
    // (acquire), which the consumer's stream will wait for. They are the consumer's until
    // release: it may rewrite them in place (bf16 to f16 on a GPU without bf16). acquire
    // rethrows the loader's error, if it failed.
    // At a `routed` place, once route() named its pieces, the next of them.
    const RingPiece& next_piece() const { return in_route_ ? route_[route_at_] : sequence_[at_ % sequence_.size()]; }
    uint8_t* acquire();
    void release(); // the piece acquire() returned
    // The next piece is a `routed` place: these pieces stream there (none: it is passed over).
    void route(std::vector<RingPiece> pieces);
    RingStats stats() const;

private:
    void loader();
    // Piece p as the loader's k-th: staged when it must be, then its copy queued into slot k
    // % slots once the consumer has released that slot. False: the ring is stopping.
    bool load(const RingPiece& p, uint64_t k, const RingPiece* next);

    RingTransport& transport_;
    PieceSource& source_;
    std::vector<RingPiece> sequence_;
    ThreadPool* pool_;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    uint64_t produced_ = 0;  // pieces whose copy is queued
    uint64_t released_ = 0;  // pieces the consumer released
    uint64_t consumed_ = 0;  // pieces the consumer acquired
    // The consumer's place in the sequence (a routed place counts once) and, at a routed
    // place, its pieces and how many it acquired.
    uint64_t at_ = 0;
    bool in_route_ = false;
    std::vector<RingPiece> route_;
    size_t route_at_ = 0;
    // The pieces route() named for the loader (taken at its next routed place), and how many
    // times it did.
    std::vector<RingPiece> routed_;
    uint64_t routes_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
    RingStats stats_;
    std::thread thread_;
};

} // namespace rabbit
