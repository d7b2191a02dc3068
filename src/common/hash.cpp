// SPDX-License-Identifier: Apache-2.0
#include "common/hash.h"

#include "common/error.h"

#include <new>
#include <xxhash.h>

namespace rabbit {

Hasher::Hasher() : state_(XXH3_createState()) {
    if (!state_) throw std::bad_alloc();
    XXH3_64bits_reset(state_);
}

Hasher::~Hasher() { XXH3_freeState(state_); }

void Hasher::update(const void* data, size_t n) { XXH3_64bits_update(state_, data, n); }

uint64_t Hasher::digest() const { return XXH3_64bits_digest(state_); }

uint64_t hash_bytes(const void* data, size_t n) { return XXH3_64bits(data, n); }

} // namespace rabbit
