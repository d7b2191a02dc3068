// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the safetensors header parser must reject any input with an Error, never
// crash, hang or read out of bounds, and every header it accepts must hold its invariants.
#include "common/error.h"
#include "format/safetensors.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        rabbit::SafetensorsHeader h = rabbit::parse_safetensors(data, size, size, "fuzz.safetensors");
        if (h.data_start != 8 + h.header_size || h.data_start + h.data_size != size) std::abort();
        uint64_t prev_end = 0;
        for (const auto& t : h.tensors) {
            if (t.end < t.begin || t.end > h.data_size) std::abort();
            if (t.numel() * rabbit::dtype_size(t.dtype) != t.nbytes()) std::abort();
            if (t.nbytes() > 0) {
                if (t.begin < prev_end) std::abort(); // overlap
                prev_end = t.end;
            }
        }
    } catch (const rabbit::Error& e) {
        if (e.code() == rabbit::ExitCode::internal) std::abort(); // an invariant broke: a bug
    }
    return 0;
}
