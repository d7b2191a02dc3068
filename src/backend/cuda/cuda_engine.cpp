// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's Engine interface; its setup, forward pass and sampling are in
// cuda_engine_setup.cpp, cuda_engine_forward.cpp and cuda_engine_sample.cpp.
#include "backend/cuda/cuda_engine_impl.h"

#include "common/error.h"
#include "engine/memory_plan.h"

#include <algorithm>

namespace rabbit {

CudaEngine::CudaEngine(const SplitModel& model, const CudaEngineOptions& options)
    : impl_(std::make_unique<Impl>(model, options)) {
    impl_->on_layer = [this](size_t m, size_t layer, size_t layers) { layer_done(m, layer, layers); };
    impl_->init();
}

CudaEngine::~CudaEngine() = default;

const ModelConfig& CudaEngine::config() const { return impl_->c; }
uint64_t CudaEngine::context() const { return impl_->ctx; }
size_t CudaEngine::position() const { return impl_->seq[0].pos; }
void CudaEngine::reset() { reset_slot(0); }
void CudaEngine::truncate(size_t n) {
    impl_->seq[0].pos = std::min(impl_->seq[0].pos, n);
    impl_->tree.cut(impl_->seq[0].pos);
}

size_t CudaEngine::slots() const { return impl_->used_slots; }
size_t CudaEngine::max_slots() const { return impl_->seq.size(); }
void CudaEngine::set_slots(size_t n) {
    if (n == 0 || n > impl_->seq.size())
        throw Error(ExitCode::usage, "the CUDA engine planned KV caches for " + std::to_string(impl_->seq.size()) +
                                         " sequences, not " + std::to_string(n));
    impl_->used_slots = n;
}
size_t CudaEngine::slot_position(size_t slot) const {
    RABBIT_CHECK(slot < impl_->used_slots, "no such sequence slot");
    return impl_->seq[slot].pos;
}
void CudaEngine::reset_slot(size_t slot) {
    RABBIT_CHECK(slot < impl_->used_slots, "no such sequence slot");
    impl_->seq[slot].pos = 0;
    impl_->seq[slot].rope.reset();
    if (slot == 0) impl_->tree.close(); // slot 0 holds speculative decoding's draft trees
}
uint64_t CudaEngine::resident_share() const {
    const MemoryPlan& p = impl_->plan;
    return p.device_bytes - p.overhead_bytes + impl_->runtime_overhead;
}
const MemoryPlanInput& CudaEngine::plan_input() const { return impl_->plan_in; }
const MemoryPlan& CudaEngine::plan() const { return impl_->plan; }

void CudaEngine::forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) {
    RABBIT_CHECK(n > 0 && n_logits <= n, "forward with no tokens or more logits than tokens");
    forward_slots({SlotTokens{0, tokens, n, n_logits}}, logits);
}

void CudaEngine::forward_slots(const std::vector<SlotTokens>& seqs, std::vector<float>& logits) {
    Impl& e = *impl_;
    RABBIT_CHECK(!e.tree.open(), "a plain forward over a draft tree; keep_rows first");
    size_t rows = 0;
    for (const SlotTokens& s : seqs) rows += s.n_logits;
    logits.assign(rows * e.c.vocab_size, 0.0f);
    e.forward_passes(seqs, logits.data(), [this](size_t first, size_t total) { begin_part(first, total); });
    e.flush_logits();
    e.track_memory();
}

void CudaEngine::forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) {
    Impl& e = *impl_;
    Impl::SeqSlot& s = e.seq[0];
    RABBIT_CHECK(n > 0 && n <= e.batch, "a draft tree of no tokens, or of more than --batch");
    const std::vector<SlotPass> passes = slot_passes(e.c, {SlotTokens{0, tokens, n, n}}, {s.pos}, e.batch, e.ctx);
    RABBIT_CHECK(passes.size() == 1, "a draft tree in more than one pass");
    e.tree.add(s.pos, parents, n);
    if (e.tree.end() - e.tree.base() > k_tree_rows) {
        e.tree.cut(s.pos);
        throw Error(ExitCode::usage, "a draft tree of more than " + std::to_string(k_tree_rows) +
                                         " rows on the CUDA engine; lower --draft-budget");
    }
    size_t last = 0;
    for (size_t t = 0; t < n; ++t) last = std::max(last, e.tree.position(s.pos + t));
    s.rope.begin_forward(last + 1);
    logits.assign(n * e.c.vocab_size, 0.0f);
    begin_part(0, n);
    e.tree_pass = true;
    try {
        e.pass(passes[0], logits.data());
    } catch (...) {
        e.tree_pass = false;
        e.tree.cut(s.pos);
        throw;
    }
    e.tree_pass = false;
    e.flush_logits();
    e.track_memory();
}

void CudaEngine::keep_rows(size_t base, const std::vector<size_t>& rows) {
    Impl& e = *impl_;
    if (e.tree.check_keep(base, rows, e.seq[0].pos))
        for (size_t i = 0; i < rows.size(); ++i)
            if (rows[i] != i) e.move_kv_row(base + rows[i], base + i); // towards the front: read before written over
    e.seq[0].pos = base + rows.size();
}

CudaEngineStats CudaEngine::stats() const {
    CudaEngineStats s;
    s.device = impl_->device_name;
    s.budget = impl_->budget;
    s.peak_device_bytes = impl_->peak_held;
    s.device_used_growth = impl_->used_growth;
    s.pinned_bytes = impl_->pinned_bytes;
    s.kv_attend = impl_->attend;
    s.cudnn = impl_->cudnn != nullptr;
    s.cudnn_parts = impl_->cudnn_parts;
    if (impl_->ring) s.ring = impl_->ring->stats();
    s.expert_cache_bytes = impl_->expert_buf.bytes();
    s.expert_cache_held = impl_->expert_cache.held();
    return s;
}

StreamStats CudaEngine::stream_stats() const {
    StreamStats s;
    s.experts_run = impl_->experts_run;
    s.expert_hits = impl_->expert_hits;
    if (!impl_->ring) return s; // everything resident: nothing streams
    const RingStats r = impl_->ring->stats();
    s.disk_s = r.disk_s;
    s.host_copy_s = r.fill_s;
    s.h2d_s = impl_->transport->copy_seconds();
    s.wait_s = impl_->transport->stall_seconds();
    s.file_bytes = r.file_bytes;
    s.link_bytes = r.bytes;
    return s;
}

} // namespace rabbit
