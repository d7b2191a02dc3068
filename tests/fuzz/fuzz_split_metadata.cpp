// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for what a split directory holds besides data: unit file headers,
// manifest.json and the split journal. The first byte picks the parser. Any input must be
// refused with an Error or accepted with its invariants intact; never a crash.
#include "common/error.h"
#include "format/manifest.h"
#include "format/unit_file.h"
#include "split/journal.h"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t which = data[0] % 3;
    ++data;
    --size;
    try {
        if (which == 0) {
            // A unit file whose first `size` bytes are the input and which is that long.
            rabbit::UnitLayout l = rabbit::decode_unit_header(data, size, size, "fuzz.rbt");
            if (l.data_offset + l.data_size != size || l.data_offset % rabbit::k_unit_align) std::abort();
            for (const auto& t : l.tensors)
                if (t.offset + t.nbytes > l.data_size || t.offset % rabbit::k_tensor_align) std::abort();
        } else if (which == 1) {
            rabbit::Manifest m = rabbit::Manifest::parse(std::string(reinterpret_cast<const char*>(data), size), "manifest.json");
            for (const auto& u : m.units)
                if (u.layout.data_offset + u.layout.data_size != u.size()) std::abort();
            (void)m.to_json();
        } else {
            rabbit::SplitJournal j =
                rabbit::SplitJournal::parse(std::string(reinterpret_cast<const char*>(data), size), "journal.json");
            (void)j.to_json();
        }
    } catch (const rabbit::Error& e) {
        if (e.code() == rabbit::ExitCode::internal) std::abort();
    }
    return 0;
}
