// SPDX-License-Identifier: Apache-2.0
// The shape of one fused-attention call, as the key of the cache of cuDNN execution plans
// (backend/cuda/cudnn_attention.cpp), and that cache. Plain C++ (no cuDNN), so that the cache's
// logic is tested in every build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <tuple>
#include <utility>

namespace rabbit {

// Everything a cuDNN graph bakes in: its tensors' dimensions and strides. The causal offset
// (the part's first position) is kv_len - tokens, so it is in the key too. The scale and the
// pointers are not: they go with each execution.
struct SdpaShape {
    int64_t tokens = 0;    // query rows, s_q
    int64_t kv_len = 0;    // positions attended, s_kv: the earlier positions plus this part's
    int64_t cache_len = 0; // rows of the cache per KV head (the K/V strides)
    int heads = 0, kv_heads = 0, head_dim = 0;
    int elem = 0;          // the kernels' Elem of Q, K, V and O (bf16 or f16)

    auto tie() const { return std::tie(tokens, kv_len, cache_len, heads, kv_heads, head_dim, elem); }
    bool operator<(const SdpaShape& o) const { return tie() < o.tie(); }
    bool operator==(const SdpaShape& o) const { return tie() == o.tie(); }
};

// At most `capacity` values by shape, the least recently used dropped first. A prompt in parts
// makes a new kv_len per part, each used by every layer of that part and then never again, so
// a few entries are enough; the bound keeps a long prompt from holding every part's plan.
template <class Value>
class ShapeCache {
public:
    explicit ShapeCache(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

    // The value for s, or null; a hit becomes the most recently used.
    Value* find(const SdpaShape& s) {
        auto it = index_.find(s);
        if (it == index_.end()) return nullptr;
        order_.splice(order_.begin(), order_, it->second);
        return &it->second->second;
    }
    // v as the value for s (replacing any), the most recently used; returns it where it lies.
    Value& put(const SdpaShape& s, Value v) {
        auto it = index_.find(s);
        if (it != index_.end()) {
            order_.erase(it->second);
            index_.erase(it);
        }
        order_.emplace_front(s, std::move(v));
        index_[s] = order_.begin();
        while (order_.size() > capacity_) {
            index_.erase(order_.back().first);
            order_.pop_back();
        }
        return order_.front().second;
    }
    void clear() {
        index_.clear();
        order_.clear();
    }
    size_t size() const { return order_.size(); }
    size_t capacity() const { return capacity_; }

private:
    size_t capacity_;
    std::list<std::pair<SdpaShape, Value>> order_; // most recently used first
    std::map<SdpaShape, typename std::list<std::pair<SdpaShape, Value>>::iterator> index_;
};

} // namespace rabbit
