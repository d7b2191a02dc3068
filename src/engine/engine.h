// SPDX-License-Identifier: Apache-2.0
// What the generation loop needs of a backend: run tokens through the model, appending them
// to its KV cache, and give back logits or the next token. The CPU engine and the CUDA engine
// implement it over the same split files and the same streaming order.
#pragma once

#include "engine/sampler.h"
#include "model/config.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rabbit {

// Where the time of the weights' journey went, counted since the engine was made; `rabbit
// bench` takes differences around what it measures. Each is the busy time of one stage of
// the pipeline, whether or not another stage hid it:
struct StreamStats {
    double disk_s = 0;      // bringing streamed weights from the unit files into memory (page cache or drive)
    double host_copy_s = 0; // copying them into pinned staging buffers (GPU)
    double h2d_s = 0;       // the copy engine moving weights to the device (GPU)
    double wait_s = 0;      // the compute idle for want of weights
    uint64_t file_bytes = 0; // weight bytes read from the unit files (not kept in memory)
    uint64_t link_bytes = 0; // weight bytes copied to the device
    // MoE models: experts run (one per routed expert of each MoE layer of each pass), and of
    // those, how many the expert cache already held (no read, no copy).
    uint64_t experts_run = 0;
    uint64_t expert_hits = 0;
};

StreamStats operator-(const StreamStats& a, const StreamStats& b);

// Where a forward of many tokens (a prompt) is, after each layer of each of its passes: for
// a display of a long prefill (a 72B model streams every layer once per --batch tokens).
struct PrefillProgress {
    size_t tokens_done = 0, tokens = 0; // of the forward: tokens whose passes are complete
    size_t layer = 0, layers = 0;       // layers done of the current pass
};
using PrefillReporter = std::function<void(const PrefillProgress&)>;

// One sequence's share of a pass over many (batched generation): n tokens at positions
// [slot_position(slot), + n) of that slot's KV cache, the logits of the last n_logits wanted.
struct SlotTokens {
    size_t slot = 0;
    const int32_t* tokens = nullptr;
    size_t n = 0;
    size_t n_logits = 0;
};

class Engine {
public:
    virtual ~Engine() = default;

    // Called on the engine's thread after each layer of a forward of more than one token.
    void set_prefill_progress(PrefillReporter r) { prefill_reporter_ = std::move(r); }

    virtual const ModelConfig& config() const = 0;
    virtual uint64_t context() const = 0; // positions the KV cache may hold
    virtual size_t position() const = 0;  // tokens in the KV cache
    virtual void reset() = 0;             // empties the KV cache
    // Keeps the first n positions of the KV cache, dropping the rest (a chat whose history
    // was rendered differently from there on). n at most position().
    virtual void truncate(size_t n) = 0;

    // Runs `n` tokens at positions [position(), position() + n), all at once, matrix by
    // matrix (a prompt) or one (a decode step), and appends them to the KV cache. Writes the
    // logits of the last `n_logits` of them.
    //   logits [n_logits, vocab_size] f32
    virtual void forward(const int32_t* tokens, size_t n, size_t n_logits, std::vector<float>& logits) = 0;

    // Speculative decoding's draft trees (engine/speculative.h), in one pass. Token i goes to
    // row position() + i of the KV cache; parents[i] is the row of its parent: an earlier row
    // of the same tree (this call's or an earlier forward_tree's since the last plain forward),
    // or -1 for a root, whose parent is the last row before the tree. A token attends to the
    // rows before the tree, its ancestors and itself, and its RoPE position is the tree's first
    // row plus its depth (roots: 0), as if its path alone had been decoded. Writes the logits of
    // all n. Until keep_rows, forward() is not called.   logits [n, vocab_size] f32
    // The default runs a chain (each token's parent the row before it) through forward().
    virtual void forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits);
    // Keeps the cache's first `base` positions, then rows base + rows[i] (increasing, rows[0] = 0)
    // moved to positions base + i; drops the rest. After a tree: its accepted path put in place,
    // the rejected branches gone. The default keeps rows that are already in place.
    virtual void keep_rows(size_t base, const std::vector<size_t>& rows);

    // For timing decode at a long context without its prefill (`rabbit bench --fill-ctx`):
    // empties slot 0, fills its first n positions with synthetic keys and values drawn from
    // `seed` (the same seed, the same cache) and sets its position to n. No prompt produced
    // them, so what is decoded after is noise; but each step after attends n + i positions,
    // as it would after a prompt of n, and a step's time does not depend on the values. The
    // default refuses in one line (an engine that cannot fill its cache).
    virtual void fill_cache(size_t n, uint64_t seed);

    // Runs `n` tokens as forward does and chooses the next token from the last one's logits.
    // With all_logits, the logits of all n are appended to it. A backend may choose without
    // bringing the vocabulary's logits back (the CUDA engine's greedy and top-k paths).
    //   history: the tokens so far, these n included (for the repetition penalty)
    virtual int32_t step(const int32_t* tokens, size_t n, Sampler& sampler, const std::vector<int32_t>& history,
                         std::vector<float>* all_logits);

    // Counted since the engine was made; complete for the passes that have returned.
    virtual StreamStats stream_stats() const = 0;

    // Sequence slots, for many sequences per pass: each slot has its own KV cache and
    // position. Slot 0 is the sequence of forward(), position(), reset() and truncate(). An
    // engine without slots has one.
    virtual size_t slots() const { return 1; }
    // The most slots set_slots takes (the CUDA engine's are planned at its start).
    virtual size_t max_slots() const { return 1; }
    // n slots (at least 1), the new ones empty; slots past n are dropped.
    virtual void set_slots(size_t n);
    virtual size_t slot_position(size_t slot) const;
    virtual void reset_slot(size_t slot);
    // Runs every sequence's tokens through the model together: each layer's weights are used
    // once for all of them (in passes of at most --batch tokens), attention per sequence. At
    // most one entry per slot. Logits: each entry's rows, in the entries' order.
    //   logits [sum of n_logits, vocab_size] f32
    virtual void forward_slots(const std::vector<SlotTokens>& seqs, std::vector<float>& logits);

protected:
    // For the engines: a pass over tokens [first, first + m) of a forward of `total` begins;
    // then each of its layers is done.
    void begin_part(size_t first, size_t total) { part_first_ = first, part_total_ = total; }
    void layer_done(size_t m, size_t layer, size_t layers) const {
        if (prefill_reporter_ && part_total_ > 1)
            prefill_reporter_({part_first_ + (layer + 1 == layers ? m : 0), part_total_, layer + 1, layers});
    }

private:
    PrefillReporter prefill_reporter_;
    size_t part_first_ = 0, part_total_ = 0;
};

// What every engine checks, with one wording.
// --ctx: more than the model's maximum is a usage error; 0 means the maximum.
uint64_t checked_context(const ModelConfig& c, uint64_t requested);
// n more tokens at position pos must fit the context ctx.
void check_room(const ModelConfig& c, size_t pos, size_t n, uint64_t ctx);
// Every id must be a row of the embedding (rows of them); else the tokenizer and the model
// in dir disagree.
void check_token_ids(const int32_t* tokens, size_t n, uint64_t rows, const std::string& dir);

// n tokens in parts of at most `batch`, the logits of the last n_logits wanted:
// fn(first token of the part, its tokens, its logit rows).
void for_each_part(size_t n, size_t n_logits, size_t batch, const std::function<void(size_t, size_t, size_t)>& fn);

} // namespace rabbit
