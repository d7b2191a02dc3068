// SPDX-License-Identifier: Apache-2.0
#include "engine/expert_cache.h"

namespace rabbit {

bool ExpertCache::use(Key key, uint64_t bytes, std::vector<Key>& evicted) {
    auto it = index_.find(pack(key));
    if (it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return true;
    }
    if (bytes > capacity_) return false; // never held: it streams every time
    while (held_ + bytes > capacity_) {
        const Entry& last = lru_.back();
        evicted.push_back(last.key);
        held_ -= last.bytes;
        index_.erase(pack(last.key));
        lru_.pop_back();
    }
    lru_.push_front({key, bytes});
    index_[pack(key)] = lru_.begin();
    held_ += bytes;
    return false;
}

} // namespace rabbit
