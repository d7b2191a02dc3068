// SPDX-License-Identifier: Apache-2.0
// Which experts of a MoE model stay in memory between passes: least recently used first out,
// within a byte capacity. A token of Qwen3-30B-A3B routes to 8 of each layer's 128 experts;
// trained routers use some experts much more than others, so the recently used ones are
// likely to be used again, and keeping them saves their reads. (Random routers, as in
// rabbit-genmodel's models, spread tokens evenly: there the hit rate is about capacity /
// all experts, a lower bound.) The cache decides; the engine keeps or drops the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace rabbit {

class ExpertCache {
public:
    struct Key {
        uint32_t layer = 0, expert = 0;
        bool operator==(const Key& o) const { return layer == o.layer && expert == o.expert; }
    };

    explicit ExpertCache(uint64_t capacity_bytes = 0) : capacity_(capacity_bytes) {}

    // The expert is about to run. Returns whether it was held (a hit: nothing to read). On a
    // miss it is held from now on if it fits the capacity at all, evicting the least recently
    // used; their keys are appended to `evicted` for the engine to drop their bytes.
    bool use(Key key, uint64_t bytes, std::vector<Key>& evicted);
    // Whether the expert is held (after use(): whether the engine should keep its bytes).
    bool holds(Key key) const { return index_.count(pack(key)) != 0; }

    uint64_t capacity() const { return capacity_; }
    uint64_t held_bytes() const { return held_; }
    size_t held() const { return lru_.size(); }

private:
    struct Entry {
        Key key;
        uint64_t bytes;
    };
    static uint64_t pack(Key k) { return uint64_t(k.layer) << 32 | k.expert; }

    uint64_t capacity_ = 0, held_ = 0;
    std::list<Entry> lru_; // most recently used first
    std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
};

} // namespace rabbit
