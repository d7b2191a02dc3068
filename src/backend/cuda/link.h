// SPDX-License-Identifier: Apache-2.0
// The host-to-device link as rabbit uses it: copies of `bytes` from pinned memory (what the
// ring does) and from pageable memory (what a plain cudaMemcpy of a mapped file would do),
// timed with events, the median of `repeats` after one untimed copy.
#pragma once

#include <cstdint>

namespace rabbit {

struct LinkBandwidth {
    uint64_t bytes = 0;
    double pinned_bps = 0, pageable_bps = 0; // bytes per second
};

LinkBandwidth measure_link(int device, uint64_t bytes, int repeats);

} // namespace rabbit
