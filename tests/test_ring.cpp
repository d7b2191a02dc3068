// SPDX-License-Identifier: Apache-2.0
// The streaming ring on its own: pieces cut for slot sizes that do not divide the units,
// random bytes cycled through 1, 2 and 3 slots for several passes, arriving intact and in
// order; a slot is never overwritten before the consumer releases it; a loader failure
// reaches the consumer. The transport here is plain memory, with the copies delayed at
// random so that the loader and the consumer interleave differently on every run; the CUDA
// transport is exercised by the [gpu] engine tests.
#include "common/thread_pool.h"
#include "common/error.h"
#include "format/manifest.h"
#include "stream/pieces.h"
#include "stream/ring.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <cstring>
#include <random>
#include <thread>

using namespace rabbit;

namespace {

ManifestUnit layer_unit(const std::string& name, uint64_t hidden, uint64_t inter, uint64_t kv, DType dt) {
    std::vector<UnitTensor> t = {
        {"attn_norm", DType::f32, {hidden}, 0, 0},
        {"qkv", dt, {hidden + 2 * kv, hidden}, 0, 0},
        {"qkv_bias", DType::f32, {hidden + 2 * kv}, 0, 0},
        {"o", dt, {hidden, hidden}, 0, 0},
        {"ffn_norm", DType::f32, {hidden}, 0, 0},
        {"gate_up", dt, {2 * inter, hidden}, 0, 0},
        {"down", dt, {hidden, inter}, 0, 0},
    };
    ManifestUnit u;
    u.layout = layout_unit(name, t);
    u.kind = UnitKind::layer;
    return u;
}

ManifestUnit head_unit(uint64_t vocab, uint64_t hidden, DType dt) {
    ManifestUnit u;
    u.layout = layout_unit("lm_head", {{"lm_head", dt, {vocab, hidden}, 0, 0}});
    u.kind = UnitKind::lm_head;
    return u;
}

// Memory standing in for pinned and device buffers, and a thread standing in for the copy
// stream: copies run in order, each after a random delay, reading their source only when they
// run, as a DMA does. So a ring that refilled a staging slot before its copy left, or handed
// out a slot before its copy landed, delivers wrong bytes; one that copied over a slot the
// consumer still held is counted.
class MemoryTransport : public RingTransport {
public:
    MemoryTransport(size_t slots, uint64_t bytes, uint32_t seed)
        : staging_(slots, std::vector<uint8_t>(bytes)), device_(slots, std::vector<uint8_t>(bytes)), held_(slots, false),
          queued_(slots, 0), landed_(slots, 0), rng_(seed), worker_([this] { run(); }) {}
    ~MemoryTransport() override {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        cv_.notify_all();
        worker_.join();
    }
    size_t slots() const override { return staging_.size(); }
    uint64_t slot_bytes() const override { return staging_[0].size(); }
    uint8_t* staging(size_t s) override { return staging_[s].data(); }
    uint8_t* device(size_t s) override { return device_[s].data(); }
    void wait_staging_free(size_t s) override { wait_landed(s); }
    void copy(size_t s, const uint8_t* src, uint64_t bytes, const std::string&) override {
        std::lock_guard<std::mutex> lock(m_);
        if (held_[s]) ++overwrites; // the consumer has not released this slot
        held_[s] = true;
        ++queued_[s];
        jobs_.push_back({s, src, bytes});
        cv_.notify_all();
    }
    void arrival_wanted() override { ++wanted; }
    void wait_arrival(size_t s) override { wait_landed(s); }
    void release(size_t s) override {
        std::lock_guard<std::mutex> lock(m_);
        held_[s] = false;
    }

    std::atomic<int> overwrites{0};
    std::atomic<int> wanted{0}; // arrival_wanted() calls

private:
    struct Job {
        size_t slot;
        const uint8_t* src;
        uint64_t bytes;
    };
    void wait_landed(size_t s) {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return landed_[s] == queued_[s]; });
    }
    void run() {
        for (;;) {
            Job j;
            unsigned delay;
            {
                std::unique_lock<std::mutex> lock(m_);
                cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
                if (jobs_.empty()) return;
                j = jobs_.front();
                jobs_.pop_front();
                delay = unsigned(rng_() % 300);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(delay));
            std::memcpy(device_[j.slot].data(), j.src, j.bytes);
            {
                std::lock_guard<std::mutex> lock(m_);
                ++landed_[j.slot];
            }
            cv_.notify_all();
        }
    }
    std::vector<std::vector<uint8_t>> staging_, device_;
    std::vector<bool> held_;
    std::vector<uint64_t> queued_, landed_;
    std::deque<Job> jobs_;
    bool stop_ = false;
    std::mutex m_;
    std::condition_variable cv_;
    std::mt19937 rng_;
    std::thread worker_;
};

// The units' bytes; every third unit counts as pinned (copied without staging).
class MemorySource : public PieceSource {
public:
    explicit MemorySource(const std::vector<std::vector<uint8_t>>& data) : data_(data) {}
    const uint8_t* bytes(const RingPiece& p) override {
        if (fail_at >= 0 && reads++ == fail_at) throw Error(ExitCode::bad_input, "unit file went away");
        return data_[p.unit].data() + p.offset;
    }
    bool pinned(const RingPiece& p) override { return p.unit % 3 == 0; }
    void prefetch(const RingPiece&) override { ++prefetches; }
    void done(const RingPiece&) override { ++dones; }
    int fail_at = -1;
    std::atomic<int> reads{0}, prefetches{0}, dones{0};

private:
    const std::vector<std::vector<uint8_t>>& data_;
};

} // namespace

TEST_CASE("pieces cover every matrix row once and fit the slot", "[ring]") {
    const ManifestUnit layer = layer_unit("layer.0", 96, 200, 32, DType::bf16);
    const ManifestUnit head = head_unit(1001, 96, DType::f32);
    // Whole when the unit fits.
    auto whole = plan_pieces(layer, 4, layer.layout.data_size);
    REQUIRE(whole.size() == 1);
    REQUIRE((whole[0].unit == 4 && whole[0].offset == 0 && whole[0].bytes == layer.layout.data_size && whole[0].tensor.empty()));
    // Row blocks otherwise, for slot sizes that divide nothing evenly.
    for (uint64_t slot : {uint64_t(192 * 3 + 17), uint64_t(400 * 7 + 1), uint64_t(layer.layout.data_size - 1), uint64_t(50000)}) {
        for (const ManifestUnit* u : {&layer, &head}) {
            INFO(u->layout.name << ", slot " << slot);
            if (u->layout.data_size <= slot) continue;
            auto pieces = plan_pieces(*u, 0, slot);
            auto mats = matrices_in_use_order(*u);
            REQUIRE(mats.size() == (u == &layer ? 4u : 1u));
            size_t i = 0;
            for (const UnitTensor* t : mats) {
                const uint64_t row_bytes = t->nbytes / t->shape[0];
                uint64_t next_row = 0;
                for (; i < pieces.size() && pieces[i].tensor == t->name; ++i) {
                    const RingPiece& p = pieces[i];
                    REQUIRE(p.bytes <= slot);
                    REQUIRE(p.row0 == next_row);
                    REQUIRE(p.bytes == p.rows * row_bytes);
                    REQUIRE(p.offset == t->offset + p.row0 * row_bytes);
                    next_row += p.rows;
                }
                REQUIRE(next_row == t->shape[0]);
            }
            REQUIRE(i == pieces.size());
        }
    }
    // A slot that cannot hold one row.
    REQUIRE_THROWS_AS(plan_pieces(head, 0, 96 * 4 - 1), Error);
}

TEST_CASE("the ring delivers random bytes intact, in order, through 1, 2 and 3 slots", "[ring]") {
    std::mt19937 rng(11);
    std::vector<ManifestUnit> units = {head_unit(77, 40, DType::f32)}; // unit 0 stands for the embedding
    for (int l = 0; l < 5; ++l) units.push_back(layer_unit("layer." + std::to_string(l), 64, 150 + 7 * l, 16, DType::f16));
    units.push_back(head_unit(1001, 64, DType::bf16));
    units.push_back(layer_unit("layer.5", 1024, 1536, 256, DType::f32)); // 24 MiB: pieces the fill threads share
    std::vector<std::vector<uint8_t>> data;
    for (const auto& u : units) {
        std::vector<uint8_t> d(u.layout.data_size);
        for (auto& b : d) b = uint8_t(rng());
        data.push_back(std::move(d));
    }
    ThreadPool fill(3);
    for (size_t slots : {size_t(1), size_t(2), size_t(3)}) {
        for (uint64_t slot_bytes : {uint64_t(units.back().layout.data_size), uint64_t(4096 * 11 + 5), uint64_t(9ull << 20)}) {
            INFO(slots << " slots of " << slot_bytes << " bytes");
            std::vector<RingPiece> seq;
            for (size_t i = 1; i < units.size(); ++i) {
                auto p = plan_pieces(units[i], i, slot_bytes);
                seq.insert(seq.end(), p.begin(), p.end());
            }
            MemoryTransport transport(slots, slot_bytes, uint32_t(slots * 100 + slot_bytes));
            MemorySource source(data);
            size_t checked = 0;
            {
                Ring ring(transport, source, seq, slot_bytes > (4 << 20) ? &fill : nullptr);
                for (int pass = 0; pass < 3; ++pass)
                    for (size_t k = 0; k < seq.size(); ++k) {
                        const RingPiece& p = ring.next_piece();
                        REQUIRE((p.unit == seq[k].unit && p.offset == seq[k].offset && p.bytes == seq[k].bytes));
                        const uint8_t* got = ring.acquire();
                        if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
                        REQUIRE(std::memcmp(got, data[p.unit].data() + p.offset, p.bytes) == 0);
                        ring.release();
                        ++checked;
                    }
                const RingStats st = ring.stats();
                REQUIRE(st.pieces >= checked);
                // What came from the files (not pinned) is counted apart, at least the pieces
                // consumed, at most those queued; the loader may be a few pieces ahead.
                uint64_t from_files = 0, all = 0;
                for (const RingPiece& p : seq) {
                    from_files += p.unit % 3 ? p.bytes : 0;
                    all += p.bytes;
                }
                REQUIRE(st.file_bytes >= 3 * from_files);
                REQUIRE(st.file_bytes < st.bytes);
                REQUIRE(st.bytes >= 3 * all);
                REQUIRE(st.disk_s >= 0);
                REQUIRE(st.fill_s > 0);
                REQUIRE(transport.wanted == int(checked)); // once per acquire, before any wait
            }
            REQUIRE(checked == 3 * seq.size());
            REQUIRE(transport.overwrites == 0);
            REQUIRE(source.prefetches >= int(checked));
        }
    }
}

TEST_CASE("a loader failure reaches the consumer as the error it was", "[ring]") {
    std::vector<ManifestUnit> units = {layer_unit("layer.0", 32, 64, 8, DType::f32), layer_unit("layer.1", 32, 64, 8, DType::f32)};
    std::vector<std::vector<uint8_t>> data;
    for (const auto& u : units) data.emplace_back(u.layout.data_size, uint8_t(7));
    std::vector<RingPiece> seq;
    for (size_t i = 0; i < units.size(); ++i) {
        auto p = plan_pieces(units[i], i, 2000);
        seq.insert(seq.end(), p.begin(), p.end());
    }
    MemoryTransport transport(2, 2000, 1);
    MemorySource source(data);
    source.fail_at = 5;
    Ring ring(transport, source, seq, nullptr);
    bool failed = false;
    for (int i = 0; i < 20 && !failed; ++i) {
        try {
            ring.acquire();
            ring.release();
        } catch (const Error& e) {
            failed = true;
            REQUIRE(std::string(e.what()) == "unit file went away");
            REQUIRE(i == 5);
        }
    }
    REQUIRE(failed);
}

TEST_CASE("routed places: the pieces the consumer names stream there, in order, through 1, 2 and 3 slots", "[ring][moe]") {
    // A MoE model's sequence: per layer a dense piece, then the place of its routed experts,
    // named only when the consumer is there (several, one, or none: all in a cache).
    std::mt19937 rng(16);
    std::vector<std::vector<uint8_t>> data(4, std::vector<uint8_t>(64 * 1024 + 300));
    for (auto& d : data)
        for (auto& b : d) b = uint8_t(rng());
    std::vector<RingPiece> seq;
    for (size_t u = 1; u < 3; ++u) {
        seq.push_back({u, 0, 4096 + 17 * u, "", 0, 0, "dense", false});
        seq.push_back({u, 0, 0, "", 0, 0, "experts", true});
    }
    seq.push_back({3, 128, 9000, "", 0, 0, "lm_head", false});
    for (size_t slots : {size_t(1), size_t(2), size_t(3)}) {
        INFO(slots << " slots");
        MemoryTransport transport(slots, 12000, uint32_t(slots));
        MemorySource source(data);
        uint64_t acquired = 0, want = 0;
        {
            Ring ring(transport, source, seq, nullptr);
            auto take = [&](const RingPiece& want_piece) {
                const RingPiece& p = ring.next_piece();
                REQUIRE((p.unit == want_piece.unit && p.offset == want_piece.offset && p.bytes == want_piece.bytes));
                const uint8_t* got = ring.acquire();
                if (rng() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
                REQUIRE(std::memcmp(got, data[p.unit].data() + p.offset, p.bytes) == 0);
                want += p.bytes;
            };
            for (int pass = 0; pass < 6; ++pass) {
                for (size_t k = 0; k < seq.size(); ++k) {
                    if (!seq[k].routed) {
                        if (k + 1 < seq.size() && seq[k + 1].routed) { // the dense piece, held while routing
                            take(seq[k]);
                            continue;
                        }
                        take(seq[k]);
                        ring.release();
                        continue;
                    }
                    std::vector<RingPiece> experts;
                    const size_t n = (pass + k) % 4; // 0 to 3 experts
                    for (size_t e = 0; e < n; ++e)
                        experts.push_back({seq[k].unit, 8192 + 11000 * e + rng() % 64, 5000 + rng() % 6000, "", 0, 0, "expert", false});
                    REQUIRE(ring.next_piece().routed);
                    ring.route(experts);
                    ring.release(); // the dense piece, after routing: its slot then takes an expert
                    for (const RingPiece& x : experts) {
                        take(x);
                        ring.release();
                    }
                }
            }
            acquired = ring.stats().acquired_bytes;
            REQUIRE_THROWS_AS(ring.route({}), Error); // not at a routed place
        }
        CHECK(acquired == want);
        CHECK(transport.overwrites == 0);
    }
}
