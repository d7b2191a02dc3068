// SPDX-License-Identifier: Apache-2.0
// Streaming XXH3-64, the checksum of unit files.
#pragma once

#include <cstddef>
#include <cstdint>

struct XXH3_state_s;

namespace rabbit {

class Hasher {
public:
    Hasher();
    ~Hasher();
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;

    void update(const void* data, size_t n);
    uint64_t digest() const;

private:
    XXH3_state_s* state_;
};

uint64_t hash_bytes(const void* data, size_t n);

} // namespace rabbit
